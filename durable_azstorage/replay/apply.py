"""Actions -> new history events + outbound messages.

Every outbound message is derivable from the history event recorded next to it
(TaskScheduled -> activity request, SubOrchestrationInstanceCreated -> child start,
TimerCreated -> delayed TimerFired, EventSent -> EventRaised, ExecutionCompleted -> parent
notice), which is what lets the checkpoint protocol re-send an episode's messages after a
crash without an outbox (ARCHITECTURE.md §5).

``CONTINUED_AS_NEW`` completions are not applied here: ``replay.episode`` starts the next
generation instead.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from durable_azstorage.authoring.errors import OrchestrationTerminatedError
from durable_azstorage.model.actions import (
    CompleteOrchestration,
    CreateSubOrchestration,
    CreateTimer,
    OrchestratorAction,
    ScheduleTask,
    SendEvent,
)
from durable_azstorage.model.failure import FailureDetails, qualified_type_name
from durable_azstorage.model.history import (
    EventRaised,
    EventSent,
    ExecutionCompleted,
    ExecutionStarted,
    ExecutionTerminated,
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
from durable_azstorage.model.status import OrchestrationStatus


@dataclass(slots=True)
class Applied:
    """The history events and messages produced by a list of actions."""

    events: list[HistoryEvent] = field(default_factory=list)
    activity_messages: list[TaskMessage] = field(default_factory=list)
    orchestrator_messages: list[TaskMessage] = field(default_factory=list)
    timer_messages: list[TaskMessage] = field(default_factory=list)


def apply_actions(
    actions: Iterable[OrchestratorAction],
    *,
    started: ExecutionStarted,
    history: Sequence[HistoryEvent],
    now: datetime,
    new_execution_id: Callable[[], str],
) -> Applied:
    """Turn ``actions`` into events stamped ``now`` and the messages they imply.

    ``history`` is the generation's events so far (used to find running sub-orchestrations
    for a recursive terminate).
    """
    me = started.instance
    out = Applied()
    for action in actions:
        if isinstance(action, ScheduleTask):
            scheduled = TaskScheduled(
                event_id=action.id, timestamp=now, name=action.name, input=action.input,
                version=action.version, tags=action.tags,
            )
            out.events.append(scheduled)
            out.activity_messages.append(TaskMessage(instance=me, event=scheduled, sender=me))
        elif isinstance(action, CreateTimer):
            out.events.append(TimerCreated(event_id=action.id, timestamp=now, fire_at=action.fire_at))
            fired = TimerFired(timer_id=action.id, fire_at=action.fire_at, timestamp=action.fire_at)
            out.timer_messages.append(TaskMessage(instance=me, event=fired, sender=me))
        elif isinstance(action, CreateSubOrchestration):
            out.events.append(
                SubOrchestrationInstanceCreated(
                    event_id=action.id, timestamp=now, name=action.name,
                    instance_id=action.instance_id, input=action.input, version=action.version,
                )
            )
            child = OrchestrationInstance(instance_id=action.instance_id, execution_id=new_execution_id())
            start = ExecutionStarted(
                timestamp=now, name=action.name, instance=child, input=action.input,
                version=action.version,
                parent=ParentInstance(
                    name=started.name, instance=me, task_scheduled_id=action.id, version=started.version
                ),
            )
            out.orchestrator_messages.append(TaskMessage(instance=child, event=start, sender=me))
        elif isinstance(action, SendEvent):
            out.events.append(
                EventSent(
                    event_id=action.id, timestamp=now, instance_id=action.instance_id,
                    name=action.name, input=action.data,
                )
            )
            target = OrchestrationInstance(instance_id=action.instance_id)
            raised = EventRaised(timestamp=now, name=action.name, input=action.data)
            out.orchestrator_messages.append(TaskMessage(instance=target, event=raised, sender=me))
        elif isinstance(action, CompleteOrchestration):
            if action.status is OrchestrationStatus.CONTINUED_AS_NEW:
                continue
            out.events.append(
                ExecutionCompleted(
                    event_id=action.id, timestamp=now, status=action.status,
                    result=action.result, failure_details=action.failure_details,
                )
            )
            out.orchestrator_messages.extend(_completion_messages(action, started, history, now))
        else:  # pragma: no cover - a new action type without a rule here
            raise TypeError(f"cannot apply orchestrator action {type(action).__qualname__}")
    return out


def _completion_messages(
    action: CompleteOrchestration, started: ExecutionStarted, history: Sequence[HistoryEvent], now: datetime
) -> list[TaskMessage]:
    me = started.instance
    messages: list[TaskMessage] = []
    if action.status is OrchestrationStatus.TERMINATED and _terminate_recursively(history):
        for child_id in running_sub_orchestrations(history):
            terminate = ExecutionTerminated(timestamp=now, input=action.result, recurse=True)
            messages.append(
                TaskMessage(instance=OrchestrationInstance(instance_id=child_id), event=terminate, sender=me)
            )
    parent = started.parent
    if parent is None:
        return messages
    notice: HistoryEvent
    if action.status is OrchestrationStatus.COMPLETED:
        notice = SubOrchestrationInstanceCompleted(
            timestamp=now, task_scheduled_id=parent.task_scheduled_id, result=action.result
        )
    else:
        notice = SubOrchestrationInstanceFailed(
            timestamp=now, task_scheduled_id=parent.task_scheduled_id,
            failure_details=action.failure_details or _terminated_details(me.instance_id, action.result),
        )
    messages.append(TaskMessage(instance=parent.instance, event=notice, sender=me))
    return messages


def _terminated_details(instance_id: str, reason: str | None) -> FailureDetails:
    because = f": {reason}" if reason is not None else ""
    return FailureDetails(
        message=f"sub-orchestration {instance_id!r} was terminated{because}",
        error_type=qualified_type_name(OrchestrationTerminatedError),
    )


def _terminate_recursively(history: Sequence[HistoryEvent]) -> bool:
    for event in reversed(history):
        if isinstance(event, ExecutionTerminated):
            return event.recurse
    return False


def running_sub_orchestrations(history: Iterable[HistoryEvent]) -> list[str]:
    """Instance ids of sub-orchestrations created and not yet answered, in creation order."""
    created: dict[int, str] = {}
    for event in history:
        if isinstance(event, SubOrchestrationInstanceCreated):
            created[event.event_id] = event.instance_id
        elif isinstance(event, (SubOrchestrationInstanceCompleted, SubOrchestrationInstanceFailed)):
            created.pop(event.task_scheduled_id, None)
    return list(dict.fromkeys(created.values()))
