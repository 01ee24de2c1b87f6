"""History events: the event-sourced record of an orchestration.

Kinds and field names follow the Durable Task history model (``ExecutionStartedEvent``,
``TaskScheduledEvent`` ...), so histories read the same as in the .NET and Go engines.
Payload fields (``input``, ``result``, ``data``) hold already-serialized text produced by a
``DataConverter``; ``None`` means "no value".

``event_id`` is the sequence number the orchestrator assigned to a *scheduling* event
(TaskScheduled, TimerCreated, SubOrchestrationInstanceCreated, EventSent). Events that
answer one of those (TaskCompleted, TimerFired ...) point back at it with
``task_scheduled_id`` / ``timer_id`` and carry ``event_id = -1``, as in DTFx.

The events that start work (ExecutionStarted, TaskScheduled, SubOrchestrationInstanceCreated,
EventSent) may carry a W3C ``trace_context`` (``model.trace``); it travels in their messages,
and histories written before it existed simply have none.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone

from durable_azstorage.model.failure import FailureDetails
from durable_azstorage.model.status import OrchestrationStatus
from durable_azstorage.model.trace import TraceContext

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


@dataclass(frozen=True, slots=True, kw_only=True)
class OrchestrationInstance:
    """Identifies one execution (generation) of an instance."""

    instance_id: str
    execution_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ParentInstance:
    """The orchestration that started a sub-orchestration, and the task id it waits on
    (``schedule_index``: that of the ``SubOrchestrationInstanceCreated``, returned with the
    notice so that a late notice of an earlier attempt is not taken for the retry's)."""

    name: str
    instance: OrchestrationInstance
    task_scheduled_id: int
    version: str | None = None
    schedule_index: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class HistoryEvent:
    event_id: int = -1
    timestamp: datetime = field(default=_EPOCH)


@dataclass(frozen=True, slots=True, kw_only=True)
class ExecutionStarted(HistoryEvent):
    """Starts an execution. ``first_execution_id`` is set on the starts of continued-as-new
    generations: the execution id of the chain's first generation, which is what a parent's
    start message (also one re-sent by its crash recovery) carries."""

    name: str
    instance: OrchestrationInstance
    input: str | None = None
    version: str | None = None
    parent: ParentInstance | None = None
    scheduled_start_time: datetime | None = None
    tags: dict[str, str] | None = None
    generation: int = 0
    first_execution_id: str | None = None
    trace_context: TraceContext | None = None

    def orchestration_trace_context(self) -> TraceContext | None:
        """The context of this execution's one ``orchestration:{name}`` span (a child of the
        starter's ``trace_context``, its id derived from the execution), or None: untraced."""
        if self.trace_context is None:
            return None
        return self.trace_context.derive(
            "orchestration", self.instance.instance_id, self.instance.execution_id
        )

    def already_ran(self, start: ExecutionStarted) -> bool:
        """True if ``start`` must not start this instance again: it started this execution or
        the first generation of its continue-as-new chain (a parent's re-sent start), or it
        is a parent's start of an earlier attempt of the same task than this chain's (the
        portable SDKs retry under one task id; ``ParentInstance.schedule_index`` orders them).
        """
        execution_id = start.instance.execution_id
        if execution_id is not None and execution_id in (
            self.instance.execution_id,
            self.first_execution_id,
        ):
            return True
        mine, theirs = self.parent, start.parent
        return (
            mine is not None
            and theirs is not None
            and theirs.instance == mine.instance
            and theirs.task_scheduled_id == mine.task_scheduled_id
            and (theirs.schedule_index or 0) < (mine.schedule_index or 0)
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class ExecutionCompleted(HistoryEvent):
    status: OrchestrationStatus
    result: str | None = None
    failure_details: FailureDetails | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ExecutionTerminated(HistoryEvent):
    input: str | None = None
    recurse: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class ExecutionSuspended(HistoryEvent):
    reason: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ExecutionResumed(HistoryEvent):
    reason: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ContinueAsNew(HistoryEvent):
    """Ends the current generation; ``result`` is the new input."""

    result: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class OrchestratorStarted(HistoryEvent):
    """Opens an episode; its timestamp is the orchestration's ``current_utc_datetime``."""


@dataclass(frozen=True, slots=True, kw_only=True)
class OrchestratorCompleted(HistoryEvent):
    """Closes an episode."""


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskScheduled(HistoryEvent):
    """An activity request. ``schedule_index`` counts earlier schedulings of the same task id
    in this execution (the portable SDKs retry a task under its original id): None for the
    first, 1, 2, ... for retries. The answer carries it back, so a late answer to an earlier
    attempt is not taken for the retry's."""

    name: str
    input: str | None = None
    version: str | None = None
    tags: dict[str, str] | None = None
    schedule_index: int | None = None
    trace_context: TraceContext | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskCompleted(HistoryEvent):
    """``schedule_index``: that of the ``TaskScheduled`` this answers (see there)."""

    task_scheduled_id: int
    result: str | None = None
    schedule_index: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskFailed(HistoryEvent):
    """``schedule_index``: that of the ``TaskScheduled`` this answers (see there)."""

    task_scheduled_id: int
    failure_details: FailureDetails
    schedule_index: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class SubOrchestrationInstanceCreated(HistoryEvent):
    """``schedule_index``: as ``TaskScheduled``'s (the portable SDKs retry a
    sub-orchestration under its original task id too)."""

    name: str
    instance_id: str
    input: str | None = None
    version: str | None = None
    schedule_index: int | None = None
    trace_context: TraceContext | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class SubOrchestrationInstanceCompleted(HistoryEvent):
    """``schedule_index``: that of the creation this answers (via ``ParentInstance``)."""

    task_scheduled_id: int
    result: str | None = None
    schedule_index: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class SubOrchestrationInstanceFailed(HistoryEvent):
    """``schedule_index``: that of the creation this answers (via ``ParentInstance``)."""

    task_scheduled_id: int
    failure_details: FailureDetails
    schedule_index: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class TimerCreated(HistoryEvent):
    fire_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class TimerFired(HistoryEvent):
    timer_id: int
    fire_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class EventRaised(HistoryEvent):
    """An external event. ``source_id`` names the ``EventSent`` of another orchestration it
    came from (``sent_event_id``), the same every time that send is derived again: a copy
    re-sent by recovery, or delivered twice, is recognised and applied once. None for events
    a client raised. ``scheduled_time``: not delivered before then (delayed entity signals)."""

    name: str
    input: str | None = None
    source_id: str | None = None
    scheduled_time: datetime | None = None


def sent_event_id(sender: OrchestrationInstance, sent: EventSent) -> str:
    """The ``EventRaised.source_id`` of the event ``sent`` by ``sender``'s execution."""
    return f"{sender.instance_id}:{sender.execution_id}:{sent.event_id}"


@dataclass(frozen=True, slots=True, kw_only=True)
class EventSent(HistoryEvent):
    instance_id: str
    name: str
    input: str | None = None
    scheduled_time: datetime | None = None
    trace_context: TraceContext | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class GenericEvent(HistoryEvent):
    """A marker with free-form data (used e.g. to record a rewind)."""

    data: str | None = None


EVENT_TYPES: tuple[type[HistoryEvent], ...] = (
    ExecutionStarted,
    ExecutionCompleted,
    ExecutionTerminated,
    ExecutionSuspended,
    ExecutionResumed,
    ContinueAsNew,
    OrchestratorStarted,
    OrchestratorCompleted,
    TaskScheduled,
    TaskCompleted,
    TaskFailed,
    SubOrchestrationInstanceCreated,
    SubOrchestrationInstanceCompleted,
    SubOrchestrationInstanceFailed,
    TimerCreated,
    TimerFired,
    EventRaised,
    EventSent,
    GenericEvent,
)


def event_type_name(event: HistoryEvent | type[HistoryEvent]) -> str:
    """The DTFx EventType name, e.g. ``TaskScheduled`` (stored in the History table)."""
    cls = event if isinstance(event, type) else type(event)
    return cls.__name__
