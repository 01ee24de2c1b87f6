"""W3C trace context, as stored with the history events that start work.

An orchestration is traced when its ``ExecutionStarted`` carries a ``TraceContext`` (the
client's ``create_orchestration`` span). Every span the engine later emits for it has an id
*derived* from stable names (the execution id, the task id and its scheduling attempt), never
drawn at random: replay stays deterministic, recovery re-derives exactly the context it sent
before, and the orchestration's one span keeps its id across episodes, worker restarts and
partition moves without a single extra byte stored. Only the standard library is used here;
``durable_azstorage.telemetry`` turns these into OpenTelemetry spans when it is installed.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

_TRACEPARENT = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")


@dataclass(frozen=True, slots=True, kw_only=True)
class TraceContext:
    """A W3C ``traceparent`` (``00-<trace id>-<span id>-<flags>``) and optional ``tracestate``."""

    trace_parent: str
    trace_state: str | None = None

    def __post_init__(self) -> None:
        match = _TRACEPARENT.match(self.trace_parent)
        if match is None or match.group(1) == "ff":
            raise ValueError(
                f"trace_parent: not a W3C traceparent (00-<32 hex>-<16 hex>-<2 hex>): "
                f"{self.trace_parent!r}"
            )
        if int(match.group(2), 16) == 0 or int(match.group(3), 16) == 0:
            raise ValueError(
                f"trace_parent: trace id and span id must not be zero: {self.trace_parent!r}"
            )

    @property
    def trace_id(self) -> str:
        return self.trace_parent.split("-")[1]

    @property
    def span_id(self) -> str:
        return self.trace_parent.split("-")[2]

    @property
    def flags(self) -> str:
        return self.trace_parent.split("-")[3]

    def with_span(self, span_id: str) -> TraceContext:
        """The same trace (id, flags and state) at another span."""
        return TraceContext(
            trace_parent=f"00-{self.trace_id}-{span_id}-{self.flags}", trace_state=self.trace_state
        )

    def derive(self, *names: object) -> TraceContext:
        """The same trace at a span whose id follows from ``names`` (and nothing else)."""
        return self.with_span(derived_span_id(self.trace_id, *names))


def derived_span_id(*names: object) -> str:
    """A 16-hex-digit span id that is a pure function of ``names`` (never all zeros)."""
    digest = hashlib.sha256("\n".join(str(n) for n in names).encode("utf-8")).hexdigest()
    span_id = digest[:16]
    return span_id if int(span_id, 16) else digest[16:32]
