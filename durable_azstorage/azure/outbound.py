"""Re-deriving a committed episode's outbound messages and instance state from its events.

The checkpoint protocol (ARCHITECTURE.md §5) commits history *before* sending; a crash in
between must not lose the episode's messages. No outbox row is written: every outbound
message follows from a committed event (TaskScheduled → activity request, TimerCreated →
delayed TimerFired, SubOrchestrationInstanceCreated → child start, EventSent → event,
ExecutionCompleted → parent notice, a new generation's ExecutionStarted → wake-up). Recovery
re-sends them (at-least-once; replay ignores duplicates) and repairs the Instances row from
the same events.

The rules mirror ``replay.apply`` (which this layer may not import; ``test_outbound`` checks
that both agree on real episodes); a child start derived
here carries a fresh execution id, which is harmless: a start for an instance that already
has history is discarded as a duplicate by the provider.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from durable_azstorage.authoring.errors import OrchestrationTerminatedError
from durable_azstorage.model.failure import FailureDetails, qualified_type_name
from durable_azstorage.model.history import (
    EventRaised,
    EventSent,
    ExecutionCompleted,
    ExecutionResumed,
    ExecutionStarted,
    ExecutionSuspended,
    ExecutionTerminated,
    GenericEvent,
    HistoryEvent,
    OrchestrationInstance,
    ParentInstance,
    SubOrchestrationInstanceCompleted,
    SubOrchestrationInstanceCreated,
    SubOrchestrationInstanceFailed,
    TaskScheduled,
    TimerCreated,
    TimerFired,
)
from durable_azstorage.model.messages import TaskMessage
from durable_azstorage.model.state import InstanceState
from durable_azstorage.model.status import OrchestrationStatus

WAKE_UP = "continue-as-new: run the next generation"  # same text as replay.episode.WAKE_UP


@dataclass(slots=True)
class Outbound:
    """Messages of one episode, by destination."""

    activity: list[TaskMessage] = field(default_factory=list)
    orchestrator: list[TaskMessage] = field(default_factory=list)
    timer: list[TaskMessage] = field(default_factory=list)

    @property
    def all(self) -> list[TaskMessage]:
        return [*self.activity, *self.orchestrator, *self.timer]


def started_event(events: Sequence[HistoryEvent]) -> ExecutionStarted | None:
    for event in events:
        if isinstance(event, ExecutionStarted):
            return event
    return None


def derive_outbound(
    history: Sequence[HistoryEvent], episode_start: int, *, continued_as_new: bool
) -> Outbound:
    """Messages implied by ``history[episode_start:]`` (the last committed episode).

    ``continued_as_new``: the episode recorded a new generation (its events replaced the
    history); if that generation has not run yet, it needs a wake-up message.
    """
    out = Outbound()
    started = started_event(history)
    if started is None:
        return out
    me = started.instance
    for event in history[episode_start:]:
        if isinstance(event, TaskScheduled):
            out.activity.append(TaskMessage(instance=me, event=event, sender=me))
        elif isinstance(event, TimerCreated):
            fired = TimerFired(timer_id=event.event_id, fire_at=event.fire_at, timestamp=event.fire_at)
            out.timer.append(TaskMessage(instance=me, event=fired, sender=me))
        elif isinstance(event, SubOrchestrationInstanceCreated):
            child = OrchestrationInstance(instance_id=event.instance_id, execution_id=uuid.uuid4().hex)
            start = ExecutionStarted(
                timestamp=event.timestamp, name=event.name, instance=child, input=event.input,
                version=event.version,
                parent=ParentInstance(
                    name=started.name, instance=me, task_scheduled_id=event.event_id,
                    version=started.version,
                ),
            )
            out.orchestrator.append(TaskMessage(instance=child, event=start, sender=me))
        elif isinstance(event, EventSent):
            target = OrchestrationInstance(instance_id=event.instance_id)
            raised = EventRaised(timestamp=event.timestamp, name=event.name, input=event.input)
            out.orchestrator.append(TaskMessage(instance=target, event=raised, sender=me))
        elif isinstance(event, ExecutionCompleted):
            out.orchestrator.extend(_completion_messages(started, event, history))
    episode = history[episode_start:]
    ran = any(isinstance(e, _DECISIONS) for e in episode)
    if continued_as_new and not ran:
        # A continue-as-new generation recorded but not run yet (replay defers after many
        # back-to-back generations): it is woken by a message to itself.
        wake = GenericEvent(timestamp=started.timestamp, data=WAKE_UP)
        out.orchestrator.append(TaskMessage(instance=me, event=wake, sender=me))
    return out


_DECISIONS = (
    TaskScheduled, TimerCreated, SubOrchestrationInstanceCreated, EventSent, ExecutionCompleted
)


def _completion_messages(
    started: ExecutionStarted, completed: ExecutionCompleted, history: Sequence[HistoryEvent]
) -> list[TaskMessage]:
    """Recursive terminations of running children, then the notice to the parent."""
    me = started.instance
    messages: list[TaskMessage] = []
    if completed.status is OrchestrationStatus.TERMINATED and _terminate_recursively(history):
        for child_id in _running_children(history):
            terminate = ExecutionTerminated(
                timestamp=completed.timestamp, input=completed.result, recurse=True
            )
            target = OrchestrationInstance(instance_id=child_id)
            messages.append(TaskMessage(instance=target, event=terminate, sender=me))
    if started.parent is not None:
        messages.append(_parent_notice(started, completed))
    return messages


def _terminate_recursively(history: Sequence[HistoryEvent]) -> bool:
    for event in reversed(history):
        if isinstance(event, ExecutionTerminated):
            return event.recurse
    return False


def _running_children(history: Sequence[HistoryEvent]) -> list[str]:
    created: dict[int, str] = {}
    for event in history:
        if isinstance(event, SubOrchestrationInstanceCreated):
            created[event.event_id] = event.instance_id
        elif isinstance(event, (SubOrchestrationInstanceCompleted, SubOrchestrationInstanceFailed)):
            created.pop(event.task_scheduled_id, None)
    return list(dict.fromkeys(created.values()))


def _parent_notice(started: ExecutionStarted, completed: ExecutionCompleted) -> TaskMessage:
    parent = started.parent
    assert parent is not None
    notice: HistoryEvent
    if completed.status is OrchestrationStatus.COMPLETED:
        notice = SubOrchestrationInstanceCompleted(
            timestamp=completed.timestamp, task_scheduled_id=parent.task_scheduled_id,
            result=completed.result,
        )
    else:
        because = f": {completed.result}" if completed.result is not None else ""
        details = completed.failure_details or FailureDetails(
            message=f"sub-orchestration {started.instance.instance_id!r} was terminated{because}",
            error_type=qualified_type_name(OrchestrationTerminatedError),
        )
        notice = SubOrchestrationInstanceFailed(
            timestamp=completed.timestamp, task_scheduled_id=parent.task_scheduled_id,
            failure_details=details,
        )
    return TaskMessage(instance=parent.instance, event=notice, sender=started.instance)


def state_from_history(
    instance_id: str,
    history: Sequence[HistoryEvent],
    *,
    status: OrchestrationStatus,
    completed_at: datetime | None,
    previous: InstanceState | None,
) -> InstanceState | None:
    """The Instances row the committed ``history`` implies (repair after a crash).

    Custom status is not in history; it is kept from ``previous`` when that row describes
    the same execution.
    """
    started = started_event(history)
    if started is None:
        return None
    last = max((e.timestamp for e in history), default=started.timestamp)
    same = previous is not None and previous.execution_id == started.instance.execution_id
    state = InstanceState(
        instance_id=instance_id,
        execution_id=started.instance.execution_id,
        name=started.name,
        runtime_status=status,
        created_at=previous.created_at if previous is not None and same else started.timestamp,
        last_updated_at=last,
        completed_at=completed_at,
        input=started.input,
        version=started.version,
        tags=started.tags,
        parent_instance_id=started.parent.instance.instance_id if started.parent else None,
        scheduled_start_time=started.scheduled_start_time,
        generation=started.generation,
        custom_status=previous.custom_status if previous is not None and same else None,
    )
    for event in history:
        if isinstance(event, ExecutionCompleted):
            state = replace(state, output=event.result, failure_details=event.failure_details)
        elif isinstance(event, ExecutionTerminated):
            state = replace(state, output=event.input)
        elif isinstance(event, (ExecutionSuspended, ExecutionResumed)):
            state = replace(state, output=event.reason)
    return state


def visible_fields(state: InstanceState) -> InstanceState:
    """``state`` without the fields a query cannot tell apart between episodes."""
    return replace(state, last_updated_at=state.created_at)
