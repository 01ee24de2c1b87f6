"""Realistic messages, histories and commits built straight from model types."""

from __future__ import annotations

import uuid
from datetime import datetime

from durable_azstorage.backend.protocol import OrchestrationCommit, OrchestrationWorkItem
from durable_azstorage.model import history as h
from durable_azstorage.model.messages import TaskMessage
from durable_azstorage.model.state import InstanceState
from durable_azstorage.model.status import OrchestrationStatus


def instance(instance_id: str, execution_id: str | None = None) -> h.OrchestrationInstance:
    return h.OrchestrationInstance(instance_id=instance_id, execution_id=execution_id)


def start_message(
    instance_id: str,
    *,
    name: str = "Greeter",
    input: str | None = '"world"',
    execution_id: str | None = None,
    scheduled_start_time: datetime | None = None,
    tags: dict[str, str] | None = None,
) -> TaskMessage:
    execution_id = execution_id or uuid.uuid4().hex
    target = instance(instance_id, execution_id)
    return TaskMessage(
        instance=target,
        event=h.ExecutionStarted(
            name=name,
            instance=target,
            input=input,
            scheduled_start_time=scheduled_start_time,
            tags=tags,
        ),
    )


def event_message(instance_id: str, name: str = "Approval", data: str = '"yes"') -> TaskMessage:
    return TaskMessage(instance=instance(instance_id), event=h.EventRaised(name=name, input=data))


def execution_id_of(item: OrchestrationWorkItem) -> str:
    for event in item.history:
        if isinstance(event, h.ExecutionStarted):
            return event.instance.execution_id or ""
    for message in item.messages:
        if isinstance(message.event, h.ExecutionStarted):
            return message.instance.execution_id or ""
    raise AssertionError(f"no ExecutionStarted for {item.instance_id!r}")


def state(
    item: OrchestrationWorkItem,
    status: OrchestrationStatus,
    *,
    now: datetime,
    output: str | None = None,
    custom_status: str | None = None,
) -> InstanceState:
    started = next(
        e
        for e in (*item.history, *(m.event for m in item.messages))
        if isinstance(e, h.ExecutionStarted)
    )
    return InstanceState(
        instance_id=item.instance_id,
        execution_id=started.instance.execution_id,
        name=started.name,
        runtime_status=status,
        created_at=now,
        last_updated_at=now,
        completed_at=now if status.is_terminal else None,
        input=started.input,
        output=output,
        custom_status=custom_status,
        tags=started.tags,
    )


def episode(
    item: OrchestrationWorkItem,
    *,
    now: datetime,
    status: OrchestrationStatus = OrchestrationStatus.RUNNING,
    activities: tuple[str, ...] = (),
    timers: tuple[datetime, ...] = (),
    send_to: tuple[TaskMessage, ...] = (),
    first_id: int | None = None,
    output: str | None = None,
) -> OrchestrationCommit:
    """A commit as a worker would build it: the delivered events between OrchestratorStarted
    and OrchestratorCompleted, plus scheduling events and the matching outbound messages."""
    execution = instance(item.instance_id, execution_id_of(item))
    next_id = first_id if first_id is not None else _next_event_id(item)
    events: list[h.HistoryEvent] = [h.OrchestratorStarted(timestamp=now)]
    events += [m.event for m in item.messages]
    activity_messages = []
    for name in activities:
        scheduled = h.TaskScheduled(event_id=next_id, name=name, input=f'"{name}-input"')
        events.append(scheduled)
        activity_messages.append(TaskMessage(instance=execution, event=scheduled))
        next_id += 1
    timer_messages = []
    for fire_at in timers:
        events.append(h.TimerCreated(event_id=next_id, fire_at=fire_at))
        fired = h.TimerFired(timer_id=next_id, fire_at=fire_at)
        timer_messages.append(TaskMessage(instance=execution, event=fired))
        next_id += 1
    if status.is_terminal:
        events.append(h.ExecutionCompleted(status=status, result=output))
    events.append(h.OrchestratorCompleted(timestamp=now))
    return OrchestrationCommit(
        new_events=tuple(events),
        state=state(item, status, now=now, output=output),
        activity_messages=tuple(activity_messages),
        orchestrator_messages=send_to,
        timer_messages=tuple(timer_messages),
    )


def activity_result(
    item_instance: h.OrchestrationInstance, task_id: int, result: str
) -> TaskMessage:
    return TaskMessage(
        instance=item_instance,
        event=h.TaskCompleted(task_scheduled_id=task_id, result=result),
    )


def _next_event_id(item: OrchestrationWorkItem) -> int:
    ids = [e.event_id for e in item.history if e.event_id >= 0]
    return max(ids, default=-1) + 1


def event_types(events: object) -> list[str]:
    return [type(e).__name__ for e in events]  # type: ignore[attr-defined]
