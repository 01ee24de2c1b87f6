"""Actions -> new history events, and the outbound messages those events imply.

The messages come from ``model.outbound``: the same rule the Azure provider uses to re-send a
committed episode's messages after a crash (ARCHITECTURE.md §5), so an episode's messages are
always derivable from its recorded events.

``CONTINUED_AS_NEW`` completions are not recorded here: ``replay.episode`` starts the next
generation instead.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import datetime

from durable_azstorage.model.actions import (
    CompleteOrchestration,
    CreateSubOrchestration,
    CreateTimer,
    OrchestratorAction,
    ScheduleTask,
    SendEvent,
    TerminateOrchestration,
)
from durable_azstorage.model.history import (
    EventSent,
    ExecutionCompleted,
    ExecutionStarted,
    HistoryEvent,
    SubOrchestrationInstanceCreated,
    TaskScheduled,
    TimerCreated,
)
from durable_azstorage.model.outbound import Outbound
from durable_azstorage.model.status import OrchestrationStatus
from durable_azstorage.model.termination import TERMINATION_REQUEST, TerminationRequest
from durable_azstorage.model.trace import TraceContext


def apply_actions(
    actions: Iterable[OrchestratorAction],
    *,
    started: ExecutionStarted,
    history: Sequence[HistoryEvent],
    now: datetime,
    outbox: Outbound,
) -> list[HistoryEvent]:
    """Record ``actions`` as events stamped ``now`` and add the messages they imply to ``outbox``.

    ``history`` is the generation's events so far (a recursive terminate looks there for
    running sub-orchestrations; a task id scheduled again there gets its ``schedule_index``).
    """
    scheduled = Counter(
        e.event_id
        for e in history
        if isinstance(e, (TaskScheduled, SubOrchestrationInstanceCreated))
    )
    traced = started.orchestration_trace_context()
    events = [
        event
        for action in actions
        if (event := _record(action, now, scheduled, _TraceNaming(traced, started))) is not None
    ]
    for event in events:
        outbox.add_for(event, started=started, history=history)
    return events


class _TraceNaming:
    """The trace context each recorded scheduling carries: the one a remote SDK chose, else
    one derived from the orchestration's (so recovery re-derives the very same), else none."""

    def __init__(self, orchestration: TraceContext | None, started: ExecutionStarted) -> None:
        self._orchestration = orchestration
        self._execution = started.instance.execution_id

    def context(
        self, chosen: TraceContext | None, kind: str, task_id: int, attempt: int
    ) -> TraceContext | None:
        if chosen is not None or self._orchestration is None:
            return chosen
        return self._orchestration.derive(kind, self._execution, task_id, attempt)


def _record(
    action: OrchestratorAction, now: datetime, scheduled: Counter[int], tracing: _TraceNaming
) -> HistoryEvent | None:
    """The event recording ``action``; ``scheduled`` counts earlier schedulings per id."""
    if isinstance(action, ScheduleTask):
        return TaskScheduled(
            event_id=action.id,
            timestamp=now,
            name=action.name,
            input=action.input,
            version=action.version,
            tags=action.tags,
            schedule_index=scheduled[action.id] or None,
            trace_context=tracing.context(
                action.trace_context, "activity", action.id, scheduled[action.id]
            ),
        )
    if isinstance(action, CreateTimer):
        return TimerCreated(event_id=action.id, timestamp=now, fire_at=action.fire_at)
    if isinstance(action, CreateSubOrchestration):
        return SubOrchestrationInstanceCreated(
            event_id=action.id,
            timestamp=now,
            name=action.name,
            instance_id=action.instance_id,
            input=action.input,
            version=action.version,
            schedule_index=scheduled[action.id] or None,
            trace_context=tracing.context(
                action.trace_context, "sub_orchestration", action.id, scheduled[action.id]
            ),
        )
    if isinstance(action, SendEvent):
        return EventSent(
            event_id=action.id,
            timestamp=now,
            instance_id=action.instance_id,
            name=action.name,
            input=action.data,
            scheduled_time=action.scheduled_time,
            trace_context=tracing.context(action.trace_context, "event", action.id, 0),
        )
    if isinstance(action, TerminateOrchestration):
        request = TerminationRequest(reason=action.reason, recurse=action.recurse)
        return EventSent(
            event_id=action.id,
            timestamp=now,
            instance_id=action.instance_id,
            name=TERMINATION_REQUEST,
            input=request.encode(),
        )
    if isinstance(action, CompleteOrchestration):
        if action.status is OrchestrationStatus.CONTINUED_AS_NEW:
            return None
        return ExecutionCompleted(
            event_id=action.id,
            timestamp=now,
            status=action.status,
            result=action.result,
            failure_details=action.failure_details,
        )
    raise TypeError(
        f"cannot apply orchestrator action {type(action).__qualname__}"
    )  # pragma: no cover
