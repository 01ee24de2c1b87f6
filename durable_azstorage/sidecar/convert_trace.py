"""W3C trace context <-> the portable SDK's ``TraceContext`` and ``OrchestrationTraceContext``.

A portable-SDK app with tracing on sends its ``create_orchestration`` span as
``parentTraceContext`` and the span ids it chose for tasks on its actions; the sidecar
stores them with the events (``model.trace``) and hands them back in histories and activity
requests, so one trace runs through ``serve``. The orchestration's own span id and start
time (``orchestrationTraceContext``) need no storage of their own: both follow from the
stored ``ExecutionStarted`` (``ExecutionStarted.orchestration_trace_context``), the same on
every episode and after any restart, and the SDK worker builds its span from them.
"""

from __future__ import annotations

from typing import Any

from durabletask.internal import orchestrator_service_pb2 as pb

from durable_azstorage.model.history import ExecutionStarted
from durable_azstorage.model.trace import TraceContext


def trace_to_pb(target: Any, context: TraceContext | None) -> None:
    """Fill the ``TraceContext`` field ``target`` (left unset for None)."""
    if context is None:
        return
    target.traceParent = context.trace_parent
    target.spanID = context.span_id
    if context.trace_state:
        target.traceState.value = context.trace_state


def trace_from_pb(message: Any, field: str = "parentTraceContext") -> TraceContext | None:
    """The context in ``message.<field>``, None when unset or empty; a malformed one raises
    ``ValueError`` naming what is wrong."""
    if not message.HasField(field):
        return None
    source = getattr(message, field)
    if not source.traceParent:
        return None
    state = (
        source.traceState.value
        if source.HasField("traceState") and source.traceState.value
        else None
    )
    return TraceContext(trace_parent=source.traceParent, trace_state=state)


def lenient_trace_from_pb(message: Any) -> TraceContext | None:
    """Like ``trace_from_pb``, but a malformed context from an SDK worker's action is
    dropped (the work then runs untraced) rather than failing the episode forever."""
    try:
        return trace_from_pb(message)
    except ValueError:
        return None


def orchestration_trace_to_pb(
    request: pb.OrchestratorRequest, started: ExecutionStarted | None
) -> None:
    """Tell the SDK worker the id and start time of the orchestration's one span."""
    context = started.orchestration_trace_context() if started is not None else None
    if started is None or context is None:
        return
    request.orchestrationTraceContext.spanID.value = context.span_id
    begin = max(started.timestamp, started.scheduled_start_time or started.timestamp)
    request.orchestrationTraceContext.spanStartTime.FromDatetime(begin)
