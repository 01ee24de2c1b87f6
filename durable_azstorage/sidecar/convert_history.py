"""History events <-> ``pb.HistoryEvent``: what the portable SDKs replay, and what they carry over.

``history_event_to_pb`` covers every event type of ``model.history`` (the SDK replays our
history, so nothing may be dropped); ``history_event_from_pb`` is needed for the events an SDK
sends back (continue-as-new carryover events) and for tests. Fields without a counterpart on
the other side: ``ExecutionStarted.generation`` (no protobuf field; reads back as 0) and the
trace contexts (not stored here). Entity events and ``executionRewound`` have no equivalent in
our model and are refused with an error naming the event type.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import Any

from durabletask.internal import orchestrator_service_pb2 as pb

from durable_azstorage.model.history import (
    ContinueAsNew,
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
    OrchestratorCompleted,
    OrchestratorStarted,
    ParentInstance,
    SubOrchestrationInstanceCompleted,
    SubOrchestrationInstanceCreated,
    SubOrchestrationInstanceFailed,
    TaskCompleted,
    TaskFailed,
    TaskScheduled,
    TimerCreated,
    TimerFired,
)
from durable_azstorage.model.status import OrchestrationStatus
from durable_azstorage.sidecar import convert_trace
from durable_azstorage.sidecar.convert_entities import entity_event_to_pb
from durable_azstorage.sidecar.convert_failure import failure_from_pb, failure_to_pb

_STATUS_TO_PB: dict[OrchestrationStatus, int] = {
    OrchestrationStatus.RUNNING: pb.ORCHESTRATION_STATUS_RUNNING,
    OrchestrationStatus.COMPLETED: pb.ORCHESTRATION_STATUS_COMPLETED,
    OrchestrationStatus.CONTINUED_AS_NEW: pb.ORCHESTRATION_STATUS_CONTINUED_AS_NEW,
    OrchestrationStatus.FAILED: pb.ORCHESTRATION_STATUS_FAILED,
    OrchestrationStatus.TERMINATED: pb.ORCHESTRATION_STATUS_TERMINATED,
    OrchestrationStatus.PENDING: pb.ORCHESTRATION_STATUS_PENDING,
    OrchestrationStatus.SUSPENDED: pb.ORCHESTRATION_STATUS_SUSPENDED,
}
_STATUS_FROM_PB = {v: k for k, v in _STATUS_TO_PB.items()}


def status_to_pb(status: OrchestrationStatus) -> int:
    """Our runtime status as the ``pb.OrchestrationStatus`` enum value."""
    return _STATUS_TO_PB[status]


def status_from_pb(value: int) -> OrchestrationStatus:
    """The enum value as our status; CANCELED (which we never produce) is refused."""
    try:
        return _STATUS_FROM_PB[value]
    except KeyError:
        name = (
            pb.OrchestrationStatus.Name(value)
            if value in pb.OrchestrationStatus.values()
            else str(value)
        )
        raise ValueError(
            f"orchestration status {name} has no equivalent in durable_azstorage"
        ) from None


# --- small field helpers -------------------------------------------------------------------
def timestamp_to_pb(target: Any, value: datetime) -> None:
    """Set the protobuf ``Timestamp`` ``target`` to ``value`` (naive datetimes are taken as UTC)."""
    target.FromDatetime(value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc))


def timestamp_from_pb(source: Any) -> datetime:
    """A protobuf ``Timestamp`` as an aware UTC datetime (microseconds kept)."""
    result: datetime = source.ToDatetime(tzinfo=timezone.utc)
    return result


def _set_str(message: Any, field: str, value: str | None) -> None:
    if value is not None:
        getattr(message, field).value = value


def _get_str(message: Any, field: str) -> str | None:
    return getattr(message, field).value if message.HasField(field) else None


def _instance_to_pb(target: Any, instance: OrchestrationInstance) -> None:
    target.instanceId = instance.instance_id
    _set_str(target, "executionId", instance.execution_id)


def _instance_from_pb(source: Any) -> OrchestrationInstance:
    return OrchestrationInstance(
        instance_id=source.instanceId, execution_id=_get_str(source, "executionId")
    )


def _tags_to_pb(target: Any, tags: Mapping[str, str] | None) -> None:
    if tags:
        target.update(tags)


def _tags_from_pb(source: Any) -> dict[str, str] | None:
    return dict(source) if len(source) else None


# --- to protobuf ---------------------------------------------------------------------------
def history_event_to_pb(event: HistoryEvent) -> pb.HistoryEvent:
    """One of our history events as the SDK's ``HistoryEvent``; unknown types raise TypeError."""
    writer = _WRITERS.get(type(event))
    if writer is None:
        raise TypeError(f"cannot convert history event type {type(event).__qualname__} to protobuf")
    message = pb.HistoryEvent(eventId=event.event_id)
    timestamp_to_pb(message.timestamp, event.timestamp)
    writer(message, event)
    return message


def _w_started(m: Any, e: ExecutionStarted) -> None:
    x = m.executionStarted
    x.name = e.name
    _instance_to_pb(x.orchestrationInstance, e.instance)
    _set_str(x, "input", e.input)
    _set_str(x, "version", e.version)
    if e.parent is not None:
        p = x.parentInstance
        p.taskScheduledId = e.parent.task_scheduled_id
        p.name.value = e.parent.name
        _set_str(p, "version", e.parent.version)
        _instance_to_pb(p.orchestrationInstance, e.parent.instance)
    if e.scheduled_start_time is not None:
        timestamp_to_pb(x.scheduledStartTimestamp, e.scheduled_start_time)
    _tags_to_pb(x.tags, e.tags)
    convert_trace.trace_to_pb(x.parentTraceContext, e.trace_context)


def _w_completed(m: Any, e: ExecutionCompleted) -> None:
    x = m.executionCompleted
    x.orchestrationStatus = status_to_pb(e.status)
    _set_str(x, "result", e.result)
    if e.failure_details is not None:
        x.failureDetails.CopyFrom(failure_to_pb(e.failure_details))


def _w_terminated(m: Any, e: ExecutionTerminated) -> None:
    x = m.executionTerminated
    x.recurse = e.recurse
    _set_str(x, "input", e.input)


def _w_suspended(m: Any, e: ExecutionSuspended) -> None:
    m.executionSuspended.SetInParent()
    _set_str(m.executionSuspended, "input", e.reason)


def _w_resumed(m: Any, e: ExecutionResumed) -> None:
    m.executionResumed.SetInParent()
    _set_str(m.executionResumed, "input", e.reason)


def _w_continue_as_new(m: Any, e: ContinueAsNew) -> None:
    m.continueAsNew.SetInParent()
    _set_str(m.continueAsNew, "input", e.result)


def _w_orchestrator_started(m: Any, e: OrchestratorStarted) -> None:
    m.orchestratorStarted.SetInParent()


def _w_orchestrator_completed(m: Any, e: OrchestratorCompleted) -> None:
    m.orchestratorCompleted.SetInParent()


def _w_task_scheduled(m: Any, e: TaskScheduled) -> None:
    x = m.taskScheduled
    x.name = e.name
    _set_str(x, "input", e.input)
    _set_str(x, "version", e.version)
    _tags_to_pb(x.tags, e.tags)
    convert_trace.trace_to_pb(x.parentTraceContext, e.trace_context)


def _w_task_completed(m: Any, e: TaskCompleted) -> None:
    x = m.taskCompleted
    x.taskScheduledId = e.task_scheduled_id
    _set_str(x, "result", e.result)


def _w_task_failed(m: Any, e: TaskFailed) -> None:
    x = m.taskFailed
    x.taskScheduledId = e.task_scheduled_id
    x.failureDetails.CopyFrom(failure_to_pb(e.failure_details))


def _w_sub_created(m: Any, e: SubOrchestrationInstanceCreated) -> None:
    x = m.subOrchestrationInstanceCreated
    x.name = e.name
    x.instanceId = e.instance_id
    _set_str(x, "input", e.input)
    _set_str(x, "version", e.version)
    convert_trace.trace_to_pb(x.parentTraceContext, e.trace_context)


def _w_sub_completed(m: Any, e: SubOrchestrationInstanceCompleted) -> None:
    x = m.subOrchestrationInstanceCompleted
    x.taskScheduledId = e.task_scheduled_id
    _set_str(x, "result", e.result)


def _w_sub_failed(m: Any, e: SubOrchestrationInstanceFailed) -> None:
    x = m.subOrchestrationInstanceFailed
    x.taskScheduledId = e.task_scheduled_id
    x.failureDetails.CopyFrom(failure_to_pb(e.failure_details))


def _w_timer_created(m: Any, e: TimerCreated) -> None:
    timestamp_to_pb(m.timerCreated.fireAt, e.fire_at)


def _w_timer_fired(m: Any, e: TimerFired) -> None:
    m.timerFired.timerId = e.timer_id
    timestamp_to_pb(m.timerFired.fireAt, e.fire_at)


def _w_event_raised(m: Any, e: EventRaised) -> None:
    if entity_event_to_pb(m, e):  # an entity's answer: the SDK's entity history event
        return
    m.eventRaised.name = e.name
    _set_str(m.eventRaised, "input", e.input)


def _w_event_sent(m: Any, e: EventSent) -> None:
    if entity_event_to_pb(m, e):  # a message to an entity: the SDK's entity history event
        return
    x = m.eventSent
    x.instanceId = e.instance_id
    x.name = e.name
    _set_str(x, "input", e.input)


def _w_generic(m: Any, e: GenericEvent) -> None:
    m.genericEvent.SetInParent()
    _set_str(m.genericEvent, "data", e.data)


_WRITERS: dict[type[HistoryEvent], Callable[[Any, Any], None]] = {
    ExecutionStarted: _w_started,
    ExecutionCompleted: _w_completed,
    ExecutionTerminated: _w_terminated,
    ExecutionSuspended: _w_suspended,
    ExecutionResumed: _w_resumed,
    ContinueAsNew: _w_continue_as_new,
    OrchestratorStarted: _w_orchestrator_started,
    OrchestratorCompleted: _w_orchestrator_completed,
    TaskScheduled: _w_task_scheduled,
    TaskCompleted: _w_task_completed,
    TaskFailed: _w_task_failed,
    SubOrchestrationInstanceCreated: _w_sub_created,
    SubOrchestrationInstanceCompleted: _w_sub_completed,
    SubOrchestrationInstanceFailed: _w_sub_failed,
    TimerCreated: _w_timer_created,
    TimerFired: _w_timer_fired,
    EventRaised: _w_event_raised,
    EventSent: _w_event_sent,
    GenericEvent: _w_generic,
}


# --- from protobuf -------------------------------------------------------------------------
def history_event_from_pb(message: pb.HistoryEvent) -> HistoryEvent:
    """The SDK's ``HistoryEvent`` as ours; entity and rewind events raise ValueError."""
    kind = message.WhichOneof("eventType")
    reader = _READERS.get(kind) if kind is not None else None
    if reader is None:
        what = (
            "an empty event (no event type set)" if kind is None else f"history event type {kind!r}"
        )
        raise ValueError(
            f"durable_azstorage cannot represent {what} (entities and rewind events are not supported)"
        )
    base: dict[str, Any] = {
        "event_id": message.eventId,
        "timestamp": timestamp_from_pb(message.timestamp),
    }
    return reader(getattr(message, kind), base)


def _r_started(x: Any, base: dict[str, Any]) -> HistoryEvent:
    parent = None
    if x.HasField("parentInstance"):
        p = x.parentInstance
        parent = ParentInstance(
            name=p.name.value,
            instance=_instance_from_pb(p.orchestrationInstance),
            task_scheduled_id=p.taskScheduledId,
            version=_get_str(p, "version"),
        )
    return ExecutionStarted(
        **base,
        name=x.name,
        instance=_instance_from_pb(x.orchestrationInstance),
        input=_get_str(x, "input"),
        version=_get_str(x, "version"),
        parent=parent,
        scheduled_start_time=(
            timestamp_from_pb(x.scheduledStartTimestamp)
            if x.HasField("scheduledStartTimestamp")
            else None
        ),
        tags=_tags_from_pb(x.tags),
        trace_context=convert_trace.lenient_trace_from_pb(x),
    )


def _r_completed(x: Any, base: dict[str, Any]) -> HistoryEvent:
    return ExecutionCompleted(
        **base,
        status=status_from_pb(x.orchestrationStatus),
        result=_get_str(x, "result"),
        failure_details=failure_from_pb(x.failureDetails) if x.HasField("failureDetails") else None,
    )


def _r_failure(x: Any) -> Any:
    return failure_from_pb(x.failureDetails)


_READERS: dict[str, Callable[[Any, dict[str, Any]], HistoryEvent]] = {
    "executionStarted": _r_started,
    "executionCompleted": _r_completed,
    "executionTerminated": lambda x, b: ExecutionTerminated(
        **b, input=_get_str(x, "input"), recurse=x.recurse
    ),
    "executionSuspended": lambda x, b: ExecutionSuspended(**b, reason=_get_str(x, "input")),
    "executionResumed": lambda x, b: ExecutionResumed(**b, reason=_get_str(x, "input")),
    "continueAsNew": lambda x, b: ContinueAsNew(**b, result=_get_str(x, "input")),
    "orchestratorStarted": lambda x, b: OrchestratorStarted(**b),
    "orchestratorCompleted": lambda x, b: OrchestratorCompleted(**b),
    "taskScheduled": lambda x, b: TaskScheduled(
        **b,
        name=x.name,
        input=_get_str(x, "input"),
        version=_get_str(x, "version"),
        tags=_tags_from_pb(x.tags),
        trace_context=convert_trace.lenient_trace_from_pb(x),
    ),
    "taskCompleted": lambda x, b: TaskCompleted(
        **b, task_scheduled_id=x.taskScheduledId, result=_get_str(x, "result")
    ),
    "taskFailed": lambda x, b: TaskFailed(
        **b, task_scheduled_id=x.taskScheduledId, failure_details=_r_failure(x)
    ),
    "subOrchestrationInstanceCreated": lambda x, b: SubOrchestrationInstanceCreated(
        **b,
        name=x.name,
        instance_id=x.instanceId,
        input=_get_str(x, "input"),
        version=_get_str(x, "version"),
        trace_context=convert_trace.lenient_trace_from_pb(x),
    ),
    "subOrchestrationInstanceCompleted": lambda x, b: SubOrchestrationInstanceCompleted(
        **b, task_scheduled_id=x.taskScheduledId, result=_get_str(x, "result")
    ),
    "subOrchestrationInstanceFailed": lambda x, b: SubOrchestrationInstanceFailed(
        **b, task_scheduled_id=x.taskScheduledId, failure_details=_r_failure(x)
    ),
    "timerCreated": lambda x, b: TimerCreated(**b, fire_at=timestamp_from_pb(x.fireAt)),
    "timerFired": lambda x, b: TimerFired(
        **b, timer_id=x.timerId, fire_at=timestamp_from_pb(x.fireAt)
    ),
    "eventRaised": lambda x, b: EventRaised(**b, name=x.name, input=_get_str(x, "input")),
    "eventSent": lambda x, b: EventSent(
        **b, instance_id=x.instanceId, name=x.name, input=_get_str(x, "input")
    ),
    "genericEvent": lambda x, b: GenericEvent(**b, data=_get_str(x, "data")),
}
