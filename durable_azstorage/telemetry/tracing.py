"""OpenTelemetry spans, named and attributed as the portable Python SDK names them.

``create_orchestration:{name}`` (client, PRODUCER) parents one ``orchestration:{name}``
(SERVER) span per execution, from its start to its completion however many episodes,
workers and restarts lie between. Work it starts gets a CLIENT span under it
(``activity:{name}``, ``orchestration:{name}`` for sub-orchestrations) that parents the
work's own SERVER span; timers get ``orchestration:{name}:timer``, sent events
``orchestration_event:{name}``.

Spans that cover several episodes cannot stay open in memory (the next episode may run in
another process), so they are written once, when the episode that ends them has committed,
with the start time and the span id the history already fixed (``model.trace``): the span
id was handed to the children long before. Emitting a span with a chosen id needs the
OpenTelemetry SDK (``ReadableSpan`` fed to the provider's span processor, as the portable
SDK does); with another provider the span is emitted with an id of the provider's choosing
(children then hang off the trace, not off it). Without OpenTelemetry nothing here runs.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from durable_azstorage.model.failure import FailureDetails
from durable_azstorage.model.history import (
    EventSent,
    ExecutionCompleted,
    ExecutionStarted,
    HistoryEvent,
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
from durable_azstorage.model.trace import TraceContext
from durable_azstorage.telemetry import otel

ATTR_TYPE = "durabletask.type"
ATTR_NAME = "durabletask.task.name"
ATTR_VERSION = "durabletask.task.version"
ATTR_INSTANCE_ID = "durabletask.task.instance_id"
ATTR_TASK_ID = "durabletask.task.task_id"
ATTR_STATUS = "durabletask.task.status"
ATTR_TARGET_INSTANCE_ID = "durabletask.event.target_instance_id"
ATTR_FIRE_AT = "durabletask.fire_at"

_log = logging.getLogger(__name__)


def _attributes(
    kind: str, name: str, instance_id: str, version: str | None = None
) -> dict[str, str]:
    attrs = {ATTR_TYPE: kind, ATTR_NAME: name, ATTR_INSTANCE_ID: instance_id}
    if version:
        attrs[ATTR_VERSION] = version
    return attrs


def span_name(kind: str, name: str, version: str | None = None) -> str:
    """``kind:name``, or ``kind:name@(version)`` (the portable SDK's form)."""
    return f"{kind}:{name}@({version})" if version else f"{kind}:{name}"


def current_trace_context() -> TraceContext | None:
    """The W3C context of the current span, or None (no OpenTelemetry, no valid span)."""
    if not otel.AVAILABLE:
        return None
    span_context = otel.trace.get_current_span().get_span_context()
    if not span_context.is_valid:
        return None
    flags = int(span_context.trace_flags)
    state = span_context.trace_state.to_header() if span_context.trace_state else None
    return TraceContext(
        trace_parent=f"00-{span_context.trace_id:032x}-{span_context.span_id:016x}-{flags:02x}",
        trace_state=state or None,
    )


def _otel_context(parent: TraceContext | None) -> Any:
    """``parent`` as an OpenTelemetry ``Context`` holding it as the remote parent span."""
    if parent is None:
        return None
    state = otel.trace.TraceState.from_header([parent.trace_state]) if parent.trace_state else None
    remote = otel.trace.SpanContext(
        trace_id=int(parent.trace_id, 16),
        span_id=int(parent.span_id, 16),
        is_remote=True,
        trace_flags=otel.trace.TraceFlags(int(parent.flags, 16)),
        trace_state=state,
    )
    return otel.trace.set_span_in_context(otel.trace.NonRecordingSpan(remote))


def _tracer() -> Any:
    return otel.trace.get_tracer(otel.TRACER_NAME)


@contextmanager
def create_orchestration_span(
    name: str, instance_id: str, version: str | None
) -> Iterator[TraceContext | None]:
    """The client's PRODUCER span around creating an instance; yields the context the
    instance's ``ExecutionStarted`` must carry (None: untraced)."""
    if not otel.AVAILABLE:
        yield None
        return
    attrs = _attributes("orchestration", name, instance_id, version)
    with _tracer().start_as_current_span(
        span_name("create_orchestration", name, version),
        kind=otel.trace.SpanKind.PRODUCER,
        attributes=attrs,
    ):
        yield current_trace_context()


@contextmanager
def raise_event_span(name: str, instance_id: str) -> Iterator[None]:
    """The client's PRODUCER span around raising an event."""
    if not otel.AVAILABLE:
        yield
        return
    attrs = {ATTR_TYPE: "event", ATTR_NAME: name, ATTR_TARGET_INSTANCE_ID: instance_id}
    with _tracer().start_as_current_span(
        span_name("orchestration_event", name), kind=otel.trace.SpanKind.PRODUCER, attributes=attrs
    ):
        yield


class ActivitySpan:
    """The SERVER span of one activity execution; ``finish`` records how it ended."""

    def __init__(self, span: Any) -> None:
        self._span = span

    def finish(self, failure: FailureDetails | None) -> None:
        if self._span is None:
            return
        if failure is None:
            self._span.set_attribute(ATTR_STATUS, "Completed")
            return
        self._span.set_attribute(ATTR_STATUS, "Failed")
        _record_failure(self._span, failure)


@contextmanager
def activity_span(
    name: str, instance_id: str, task_id: int, parent: TraceContext | None
) -> Iterator[ActivitySpan]:
    """The SERVER span an activity runs in, a child of its ``TaskScheduled``'s context."""
    if not otel.AVAILABLE or parent is None:
        yield ActivitySpan(None)
        return
    attrs = _attributes("activity", name, instance_id)
    attrs[ATTR_TASK_ID] = str(task_id)
    with _tracer().start_as_current_span(
        span_name("activity", name),
        context=_otel_context(parent),
        kind=otel.trace.SpanKind.SERVER,
        attributes=attrs,
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        yield ActivitySpan(span)


def _record_failure(span: Any, failure: FailureDetails) -> None:
    """Error status plus an ``exception`` event, as ``record_exception`` writes it (the
    exception itself is gone: only its ``FailureDetails`` crossed the queue)."""
    span.set_status(otel.trace.Status(otel.trace.StatusCode.ERROR, failure.message))
    span.add_event("exception", _exception_attributes(failure))


def _exception_attributes(failure: FailureDetails) -> dict[str, str]:
    attrs = {"exception.type": failure.error_type, "exception.message": failure.message}
    if failure.stack_trace:
        attrs["exception.stacktrace"] = failure.stack_trace
    return attrs


def _ns(moment: datetime) -> int:
    return int(moment.timestamp() * 1_000_000_000)


class EpisodeSpans:
    """Emits the spans a committed episode ended: answered activities and sub-orchestrations
    (their CLIENT spans), fired timers, sent events, and the orchestration itself when it
    completed or continued as new. Call it only after the commit: a lost race emits nothing.
    """

    def emit(
        self,
        history: Sequence[HistoryEvent],
        new_events: Sequence[HistoryEvent],
        *,
        new_execution: bool,
        incoming: Sequence[HistoryEvent] = (),
    ) -> None:
        """``incoming``: the events of the episode's messages; needed only with
        ``new_execution``, whose ``new_events`` hold the next generation alone."""
        if not otel.AVAILABLE:
            return
        try:
            if new_execution:
                # The previous generation ended by continuing as new, after the answers it got
                # in this episode; the new one starts in ``new_events``.
                ended = _Generation.of(history)
                if ended is not None:
                    for event in history:
                        ended.remember(event)
                    for event in incoming:
                        ended.answer(event)
                    ended.emit_orchestration(
                        OrchestrationStatus.CONTINUED_AS_NEW, None, time.time_ns()
                    )
                history = ()
            self._emit(history, new_events)
        except Exception:  # tracing must never fail an episode that has committed
            _log.warning("could not emit the episode's spans", exc_info=True)

    def _emit(self, history: Sequence[HistoryEvent], new_events: Sequence[HistoryEvent]) -> None:
        generation: _Generation | None = None
        for index, event in enumerate([*history, *new_events]):
            if isinstance(event, ExecutionStarted):
                generation = _Generation(event)
                continue
            if generation is None:
                continue
            if index < len(history):
                generation.remember(event)
            else:
                generation.answer(event)


class _Generation:
    """One execution's scheduling events by id, to end the CLIENT spans they opened."""

    def __init__(self, started: ExecutionStarted) -> None:
        self.started = started
        self.context = started.orchestration_trace_context()
        self.scheduled: dict[tuple[str, int], HistoryEvent] = {}

    @staticmethod
    def of(history: Sequence[HistoryEvent]) -> _Generation | None:
        started = next((e for e in history if isinstance(e, ExecutionStarted)), None)
        return None if started is None else _Generation(started)

    def remember(self, event: HistoryEvent) -> None:
        if isinstance(event, TaskScheduled):
            self.scheduled[("activity", event.event_id)] = event
        elif isinstance(event, SubOrchestrationInstanceCreated):
            self.scheduled[("sub", event.event_id)] = event
        elif isinstance(event, TimerCreated):
            self.scheduled[("timer", event.event_id)] = event

    def answer(self, event: HistoryEvent) -> None:
        """``event`` was recorded in the committed episode: end what it ends."""
        self.remember(event)
        if self.context is None:
            return
        if isinstance(event, (TaskCompleted, TaskFailed)):
            failure = event.failure_details if isinstance(event, TaskFailed) else None
            self._client_span("activity", event.task_scheduled_id, event, failure)
        elif isinstance(event, (SubOrchestrationInstanceCompleted, SubOrchestrationInstanceFailed)):
            failure = (
                event.failure_details if isinstance(event, SubOrchestrationInstanceFailed) else None
            )
            self._client_span("sub", event.task_scheduled_id, event, failure)
        elif isinstance(event, TimerFired):
            self._timer_span(event)
        elif isinstance(event, EventSent):
            self._event_span(event)
        elif isinstance(event, ExecutionCompleted):
            self.emit_orchestration(event.status, event.failure_details, _ns(event.timestamp))

    def emit_orchestration(
        self, status: OrchestrationStatus, failure: FailureDetails | None, end_ns: int
    ) -> None:
        if self.context is None:
            return
        started = self.started
        begin = max(started.timestamp, started.scheduled_start_time or started.timestamp)
        attrs = _attributes(
            "orchestration", started.name, started.instance.instance_id, started.version
        )
        failed = (
            status is not OrchestrationStatus.COMPLETED
            and status is not OrchestrationStatus.CONTINUED_AS_NEW
        )
        attrs[ATTR_STATUS] = "Failed" if failed else "Completed"
        emit_fixed_span(
            FinishedSpan(
                span_name("orchestration", started.name, started.version),
                self.context,
                started.trace_context,
                otel.trace.SpanKind.SERVER,
                attrs,
                _ns(begin),
                end_ns,
                failure if failed else None,
                failed_message=f"orchestration {status.name.lower()}"
                if failed and failure is None
                else None,
            )
        )

    def _client_span(
        self, kind: str, task_id: int, answer: HistoryEvent, failure: FailureDetails | None
    ) -> None:
        scheduled = self.scheduled.get((kind, task_id))
        if not isinstance(scheduled, (TaskScheduled, SubOrchestrationInstanceCreated)):
            return
        if scheduled.trace_context is None:
            return
        typ = "activity" if kind == "activity" else "orchestration"
        target = self.started.instance.instance_id
        if isinstance(scheduled, SubOrchestrationInstanceCreated):
            target = scheduled.instance_id
        attrs = _attributes(typ, scheduled.name, target, scheduled.version)
        attrs[ATTR_TASK_ID] = str(task_id)
        attrs[ATTR_STATUS] = "Failed" if failure is not None else "Completed"
        emit_fixed_span(
            FinishedSpan(
                span_name(typ, scheduled.name, scheduled.version),
                scheduled.trace_context,
                self.context,
                otel.trace.SpanKind.CLIENT,
                attrs,
                _ns(scheduled.timestamp),
                _ns(answer.timestamp),
                failure,
            )
        )

    def _timer_span(self, fired: TimerFired) -> None:
        created = self.scheduled.get(("timer", fired.timer_id))
        start = created.timestamp if created is not None else fired.fire_at
        attrs = _attributes("timer", self.started.name, self.started.instance.instance_id)
        attrs[ATTR_TASK_ID] = str(fired.timer_id)
        attrs[ATTR_FIRE_AT] = fired.fire_at.isoformat()
        span = _tracer().start_span(
            f"orchestration:{self.started.name}:timer",
            context=_otel_context(self.context),
            kind=otel.trace.SpanKind.INTERNAL,
            attributes=attrs,
            start_time=_ns(start),
        )
        span.end(end_time=max(time.time_ns(), _ns(start)))

    def _event_span(self, sent: EventSent) -> None:
        attrs = {
            ATTR_TYPE: "event",
            ATTR_NAME: sent.name,
            ATTR_INSTANCE_ID: self.started.instance.instance_id,
            ATTR_TARGET_INSTANCE_ID: sent.instance_id,
        }
        span = _tracer().start_span(
            span_name("orchestration_event", sent.name),
            context=_otel_context(self.context),
            kind=otel.trace.SpanKind.PRODUCER,
            attributes=attrs,
            start_time=_ns(sent.timestamp),
        )
        span.end()


@dataclass(frozen=True, slots=True)
class FinishedSpan:
    """A span to write after the fact, whose id (``context``) was fixed long before it ended.
    ``failure`` (or, without details, ``failed_message``) marks it failed."""

    name: str
    context: TraceContext
    parent: TraceContext | None
    kind: Any
    attributes: dict[str, str]
    start_ns: int
    end_ns: int
    failure: FailureDetails | None = None
    failed_message: str | None = None

    @property
    def status(self) -> Any:
        if self.failure is not None:
            return otel.trace.Status(otel.trace.StatusCode.ERROR, self.failure.message)
        if self.failed_message is not None:
            return otel.trace.Status(otel.trace.StatusCode.ERROR, self.failed_message)
        return otel.trace.Status(otel.trace.StatusCode.UNSET)


def emit_fixed_span(span: FinishedSpan) -> None:
    """Write ``span`` with its own id if the provider allows it, else with a fresh one."""
    if _emit_with_sdk(span):
        return
    live = _tracer().start_span(
        span.name,
        context=_otel_context(span.parent),
        kind=span.kind,
        attributes=span.attributes,
        start_time=span.start_ns,
    )
    live.set_status(span.status)
    if span.failure is not None:
        live.add_event("exception", _exception_attributes(span.failure))
    live.end(end_time=max(span.end_ns, span.start_ns))


def _emit_with_sdk(span: FinishedSpan) -> bool:
    """Hand a ``ReadableSpan`` with the chosen id to the SDK provider's span processor;
    False when the provider is not the SDK's (or its internals moved)."""
    try:
        from opentelemetry.sdk.trace import Event, ReadableSpan, TracerProvider
        from opentelemetry.sdk.util.instrumentation import InstrumentationScope
    except ImportError:
        return False
    provider = otel.trace.get_tracer_provider()
    processor = provider._active_span_processor if isinstance(provider, TracerProvider) else None
    if processor is None:
        return False
    context = span.context
    flags = otel.trace.TraceFlags(int(context.flags, 16))
    if not flags.sampled:
        return True  # the starter's decision: not recorded
    own = otel.trace.SpanContext(
        trace_id=int(context.trace_id, 16),
        span_id=int(context.span_id, 16),
        is_remote=False,
        trace_flags=flags,
    )
    remote_parent = None
    if span.parent is not None:
        remote_parent = otel.trace.SpanContext(
            trace_id=int(span.parent.trace_id, 16),
            span_id=int(span.parent.span_id, 16),
            is_remote=True,
            trace_flags=otel.trace.TraceFlags(int(span.parent.flags, 16)),
        )
    end_ns = max(span.end_ns, span.start_ns)
    events = []
    if span.failure is not None:
        events.append(Event("exception", _exception_attributes(span.failure), timestamp=end_ns))
    processor.on_end(
        ReadableSpan(
            name=span.name,
            context=own,
            parent=remote_parent,
            kind=span.kind,
            attributes=span.attributes,
            events=events,
            start_time=span.start_ns,
            end_time=end_ns,
            resource=provider.resource,  # type: ignore[attr-defined]  # a property the stubs omit
            instrumentation_scope=InstrumentationScope(otel.TRACER_NAME),
            status=span.status,
        )
    )
    return True
