"""Commits built straight from model types, as a worker would build them."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone

from durable_azstorage.azure.provider import AzureStorageBackend
from durable_azstorage.backend.protocol import OrchestrationCommit, OrchestrationWorkItem
from durable_azstorage.model import history as h
from durable_azstorage.model.messages import TaskMessage
from durable_azstorage.model.state import InstanceState
from durable_azstorage.model.status import OrchestrationStatus

MakeBackend = Callable[..., Awaitable[AzureStorageBackend]]
"""The ``make_backend`` fixture: ``await make_backend(start=True, settings=None, **kwargs)``."""


def now() -> datetime:
    return datetime.now(timezone.utc)


def start_message(
    instance_id: str,
    *,
    name: str = "Flow",
    input: str | None = '"in"',
    scheduled_start_time: datetime | None = None,
) -> TaskMessage:
    target = h.OrchestrationInstance(instance_id=instance_id, execution_id=uuid.uuid4().hex)
    event = h.ExecutionStarted(
        name=name,
        instance=target,
        input=input,
        timestamp=now(),
        scheduled_start_time=scheduled_start_time,
    )
    return TaskMessage(instance=target, event=event)


def event_message(instance_id: str, name: str = "Go", data: str = '"yes"') -> TaskMessage:
    return TaskMessage(
        instance=h.OrchestrationInstance(instance_id=instance_id),
        event=h.EventRaised(name=name, input=data, timestamp=now()),
    )


def started_of(item: OrchestrationWorkItem) -> h.ExecutionStarted:
    return next(
        e
        for e in (*item.history, *(m.event for m in item.messages))
        if isinstance(e, h.ExecutionStarted)
    )


def episode(
    item: OrchestrationWorkItem,
    *,
    activities: tuple[str, ...] = (),
    timers: tuple[datetime, ...] = (),
    status: OrchestrationStatus = OrchestrationStatus.RUNNING,
    output: str | None = None,
    custom_status: str | None = None,
) -> OrchestrationCommit:
    started = started_of(item)
    me = started.instance
    t = now()
    next_id = max((e.event_id for e in item.history), default=-1) + 1
    events: list[h.HistoryEvent] = [h.OrchestratorStarted(timestamp=t)]
    events += [m.event for m in item.messages]
    activity_messages = []
    for name in activities:
        scheduled = h.TaskScheduled(
            event_id=next_id, name=name, input=f'"{name}-input"', timestamp=t
        )
        events.append(scheduled)
        activity_messages.append(TaskMessage(instance=me, event=scheduled, sender=me))
        next_id += 1
    timer_messages = []
    for fire_at in timers:
        events.append(h.TimerCreated(event_id=next_id, fire_at=fire_at, timestamp=t))
        fired = h.TimerFired(timer_id=next_id, fire_at=fire_at, timestamp=fire_at)
        timer_messages.append(TaskMessage(instance=me, event=fired, sender=me))
        next_id += 1
    if status.is_terminal:
        events.append(h.ExecutionCompleted(status=status, result=output, timestamp=t))
    events.append(h.OrchestratorCompleted(timestamp=t))
    state = InstanceState(
        instance_id=item.instance_id,
        execution_id=me.execution_id,
        name=started.name,
        runtime_status=status,
        created_at=started.timestamp,
        last_updated_at=t,
        completed_at=t if status.is_terminal else None,
        input=started.input,
        output=output,
        custom_status=custom_status,
    )
    return OrchestrationCommit(
        new_events=tuple(events),
        state=state,
        activity_messages=tuple(activity_messages),
        timer_messages=tuple(timer_messages),
    )


def completed(
    task: h.TaskScheduled, me: h.OrchestrationInstance, result: str = '"done"'
) -> TaskMessage:
    return TaskMessage(
        instance=me,
        event=h.TaskCompleted(task_scheduled_id=task.event_id, result=result, timestamp=now()),
    )


def kinds(events: object) -> list[str]:
    return [type(e).__name__ for e in events]  # type: ignore[attr-defined]
