"""Re-deriving a committed episode's outbound messages and instance state from its events.

The checkpoint protocol (ARCHITECTURE.md §5) commits history *before* sending; a crash in
between must not lose the episode's messages. No outbox row is written: every outbound
message follows from a committed event (TaskScheduled → activity request, TimerCreated →
delayed TimerFired, SubOrchestrationInstanceCreated → child start, EventSent → event,
ExecutionCompleted → parent notice, a new generation's ExecutionStarted → wake-up). Recovery
re-sends them (at-least-once; replay ignores duplicates) and repairs the Instances row from
the same events.

The rules are ``model.outbound``'s, the same ones ``replay.apply`` uses when the episode runs
(``test_outbound`` checks both agree on real episodes). A child start derived here carries
the execution id the original carried (``model.outbound.child_execution_id``), so the child
discards the re-sent start as a duplicate.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

from durable_azstorage.azure.tracking.history_rows import RecordedCustomStatus
from durable_azstorage.model.history import (
    EventSent,
    ExecutionCompleted,
    ExecutionStarted,
    ExecutionTerminated,
    GenericEvent,
    HistoryEvent,
    SubOrchestrationInstanceCreated,
    TaskScheduled,
    TimerCreated,
)
from durable_azstorage.model.messages import TaskMessage
from durable_azstorage.model.outbound import WAKE_UP, Outbound
from durable_azstorage.model.state import InstanceState
from durable_azstorage.model.status import OrchestrationStatus


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
    episode = history[episode_start:]
    for event in episode:
        out.add_for(event, started=started, history=history)
    ran = any(isinstance(e, _DECISIONS) for e in episode)
    if continued_as_new and not ran:
        # A continue-as-new generation recorded but not run yet (replay defers after many
        # back-to-back generations): it is woken by a message to itself.
        wake = GenericEvent(timestamp=started.timestamp, data=WAKE_UP)
        out.orchestrator.append(
            TaskMessage(instance=started.instance, event=wake, sender=started.instance)
        )
    return out


_DECISIONS = (
    TaskScheduled,
    TimerCreated,
    SubOrchestrationInstanceCreated,
    EventSent,
    ExecutionCompleted,
)


def state_from_history(
    instance_id: str,
    history: Sequence[HistoryEvent],
    *,
    status: OrchestrationStatus,
    completed_at: datetime | None,
    previous: InstanceState | None,
    custom_status: RecordedCustomStatus | None = None,
) -> InstanceState | None:
    """The Instances row the committed ``history`` implies (repair after a crash).

    Custom status is not in history: ``custom_status`` is what the last episode recorded
    with it (the sentinel's); without one it is kept from ``previous`` when that row
    describes the same execution.
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
        custom_status=(
            custom_status.value
            if custom_status is not None
            else previous.custom_status
            if previous is not None and same
            else None
        ),
    )
    for event in history:
        if isinstance(event, ExecutionCompleted):
            state = replace(state, output=event.result, failure_details=event.failure_details)
        elif isinstance(event, ExecutionTerminated):
            state = replace(state, output=event.input)
    return state


def visible_fields(state: InstanceState) -> InstanceState:
    """``state`` without the fields a query cannot tell apart between episodes."""
    return replace(state, last_updated_at=state.created_at)
