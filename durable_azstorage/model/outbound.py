"""The messages a recorded history event implies: one rule for replay and for crash recovery.

The checkpoint protocol (ARCHITECTURE.md §5) commits an episode's events *before* sending its
messages and writes no outbox, because every outbound message follows from an event recorded
in the same episode: TaskScheduled → activity request, TimerCreated → delayed TimerFired,
SubOrchestrationInstanceCreated → the child's start, EventSent → EventRaised at the target
(or, for a ``model.termination`` request, ExecutionTerminated),
ExecutionCompleted → the parent's notice (and, for a recursive terminate, terminations of the
running children; and releases of the entity locks it still holds). ``replay.apply`` applies these rules when an episode runs; the Azure
provider applies the same rules to re-send a committed episode's messages after a crash, so
the two can never disagree.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from durable_azstorage.model.entities import (
    ENTITY_REQUEST,
    EntityRequest,
    RequestKind,
    encode_request,
    held_entity_locks,
)
from durable_azstorage.model.errors import OrchestrationTerminatedError
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
    sent_event_id,
)
from durable_azstorage.model.messages import TaskMessage
from durable_azstorage.model.status import OrchestrationStatus
from durable_azstorage.model.termination import TERMINATION_REQUEST, TerminationRequest

WAKE_UP = "continue-as-new: run the next generation"
"""``GenericEvent.data`` of the message a generation that was recorded but not run yet
(after many back-to-back continue-as-new generations) sends itself."""


@dataclass(slots=True)
class Outbound:
    """Messages of one episode, by destination queue."""

    activity: list[TaskMessage] = field(default_factory=list)
    orchestrator: list[TaskMessage] = field(default_factory=list)
    timer: list[TaskMessage] = field(default_factory=list)

    @property
    def all(self) -> list[TaskMessage]:
        return [*self.activity, *self.orchestrator, *self.timer]

    def add_for(
        self,
        event: HistoryEvent,
        *,
        started: ExecutionStarted,
        history: Sequence[HistoryEvent],
    ) -> None:
        """Append the messages ``event`` implies.

        ``started`` opens the generation ``event`` belongs to; ``history`` is that generation's
        events up to and including the episode's incoming ones, or its whole committed
        history when recovery re-derives an episode (a recursive terminate looks there for
        running children; a child's execution id counts earlier attempts there).
        """
        me = started.instance
        if isinstance(event, TaskScheduled):
            self.activity.append(TaskMessage(instance=me, event=event, sender=me))
        elif isinstance(event, TimerCreated):
            fired = TimerFired(
                timer_id=event.event_id, fire_at=event.fire_at, timestamp=event.fire_at
            )
            self.timer.append(TaskMessage(instance=me, event=fired, sender=me))
        elif isinstance(event, SubOrchestrationInstanceCreated):
            child = OrchestrationInstance(
                instance_id=event.instance_id, execution_id=child_execution_id(me, event, history)
            )
            start = ExecutionStarted(
                timestamp=event.timestamp,
                name=event.name,
                instance=child,
                input=event.input,
                version=event.version,
                parent=ParentInstance(
                    name=started.name,
                    instance=me,
                    task_scheduled_id=event.event_id,
                    version=started.version,
                    schedule_index=event.schedule_index,
                ),
                trace_context=event.trace_context,
            )
            self.orchestrator.append(TaskMessage(instance=child, event=start, sender=me))
        elif isinstance(event, EventSent) and event.name == TERMINATION_REQUEST:
            request = TerminationRequest.decode(event.input)
            terminate = ExecutionTerminated(
                timestamp=event.timestamp, input=request.reason, recurse=request.recurse
            )
            target = OrchestrationInstance(instance_id=event.instance_id)
            self.orchestrator.append(TaskMessage(instance=target, event=terminate, sender=me))
        elif isinstance(event, EventSent):
            target = OrchestrationInstance(instance_id=event.instance_id)
            raised = EventRaised(
                timestamp=event.timestamp,
                name=event.name,
                input=event.input,
                source_id=sent_event_id(me, event),
                scheduled_time=event.scheduled_time,
            )
            self.orchestrator.append(TaskMessage(instance=target, event=raised, sender=me))
        elif isinstance(event, ExecutionCompleted):
            self.orchestrator.extend(_completion_messages(started, event, history))


_CHILD_EXECUTIONS = uuid.UUID("6f1c3e55-8d0b-4f7e-9a51-2f35a1f0c0de")


def child_execution_id(
    parent: OrchestrationInstance,
    created: SubOrchestrationInstanceCreated,
    history: Sequence[HistoryEvent],
) -> str:
    """The execution id a child start carries: the same every time the same creation is
    derived (recovery re-sends exactly the original start, so the child discards it as a
    duplicate), and new for each attempt that creates the same task id again (the portable
    SDKs retry a sub-orchestration under its original task id and child instance id)."""
    attempt = 0
    for event in history:
        if event is created:
            break
        if (
            isinstance(event, SubOrchestrationInstanceCreated)
            and event.event_id == created.event_id
        ):
            attempt += 1
    name = f"{parent.instance_id}\n{parent.execution_id}\n{created.event_id}\n{attempt}"
    return uuid.uuid5(_CHILD_EXECUTIONS, name).hex


def running_sub_orchestrations(history: Iterable[HistoryEvent]) -> list[str]:
    """Instance ids of sub-orchestrations created and not yet answered, in creation order."""
    created: dict[int, str] = {}
    for event in history:
        if isinstance(event, SubOrchestrationInstanceCreated):
            created[event.event_id] = event.instance_id
        elif isinstance(event, (SubOrchestrationInstanceCompleted, SubOrchestrationInstanceFailed)):
            created.pop(event.task_scheduled_id, None)
    return list(dict.fromkeys(created.values()))


def _completion_messages(
    started: ExecutionStarted, completed: ExecutionCompleted, history: Sequence[HistoryEvent]
) -> list[TaskMessage]:
    """Recursive terminations of running children, then the notice to the parent."""
    me = started.instance
    messages: list[TaskMessage] = [
        TaskMessage(instance=OrchestrationInstance(instance_id=entity), event=release, sender=me)
        for entity, release in lock_releases(me, completed.timestamp, history)
    ]
    if completed.status is OrchestrationStatus.TERMINATED and _terminates_recursively(history):
        for child_id in running_sub_orchestrations(history):
            terminate = ExecutionTerminated(
                timestamp=completed.timestamp, input=completed.result, recurse=True
            )
            target = OrchestrationInstance(instance_id=child_id)
            messages.append(TaskMessage(instance=target, event=terminate, sender=me))
    parent = started.parent
    if parent is None:
        return messages
    notice: HistoryEvent
    if completed.status is OrchestrationStatus.COMPLETED:
        notice = SubOrchestrationInstanceCompleted(
            timestamp=completed.timestamp,
            task_scheduled_id=parent.task_scheduled_id,
            result=completed.result,
            schedule_index=parent.schedule_index,
        )
    else:
        notice = SubOrchestrationInstanceFailed(
            timestamp=completed.timestamp,
            task_scheduled_id=parent.task_scheduled_id,
            failure_details=completed.failure_details
            or _terminated_details(me.instance_id, completed.result),
            schedule_index=parent.schedule_index,
        )
    messages.append(TaskMessage(instance=parent.instance, event=notice, sender=me))
    return messages


def lock_releases(
    me: OrchestrationInstance, at: datetime, history: Sequence[HistoryEvent]
) -> list[tuple[str, EventRaised]]:
    """The releases of the entity locks an ending orchestration still holds (or asked for)."""
    releases = []
    for entity in held_entity_locks(history):
        request = EntityRequest(
            kind=RequestKind.RELEASE, id=f"{me.execution_id}:end", parent=me.instance_id
        )
        raised = EventRaised(
            timestamp=at,
            name=ENTITY_REQUEST,
            input=encode_request(request),
            source_id=f"{me.instance_id}:{me.execution_id}:release:{entity}",
        )
        releases.append((entity, raised))
    return releases


def _terminates_recursively(history: Sequence[HistoryEvent]) -> bool:
    for event in reversed(history):
        if isinstance(event, ExecutionTerminated):
            return event.recurse
    return False


def _terminated_details(instance_id: str, reason: str | None) -> FailureDetails:
    because = f": {reason}" if reason is not None else ""
    return FailureDetails(
        message=f"sub-orchestration {instance_id!r} was terminated{because}",
        error_type=qualified_type_name(OrchestrationTerminatedError),
    )
