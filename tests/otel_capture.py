"""OpenTelemetry's in-memory span exporter and metric reader, and finished spans as a tree.

OpenTelemetry lets a process set its global providers once, so ``install()`` sets them on
first use and the ``spans`` / ``metric_reader`` fixtures (tests/conftest.py) share them.
"""

from __future__ import annotations

from collections.abc import Sequence

from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

EXPORTER = InMemorySpanExporter()
READER = InMemoryMetricReader()
_installed: list[bool] = []


def install() -> None:
    """Make the in-memory exporter and reader this process's global providers (once)."""
    if _installed:
        return
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(EXPORTER))
    trace.set_tracer_provider(provider)
    metrics.set_meter_provider(MeterProvider(metric_readers=[READER]))
    _installed.append(True)


class TraceTree:
    def __init__(self, spans: Sequence[ReadableSpan]) -> None:
        self.spans = list(spans)

    def named(self, name: str, kind: SpanKind | None = None) -> list[ReadableSpan]:
        return [s for s in self.spans if s.name == name and (kind is None or s.kind == kind)]

    def one(self, name: str, kind: SpanKind | None = None) -> ReadableSpan:
        found = self.named(name, kind)
        assert len(found) == 1, f"expected one {name!r} ({kind}), got {len(found)}: {self.names()}"
        return found[0]

    def names(self) -> list[tuple[str, str]]:
        return sorted((s.name, s.kind.name) for s in self.spans)

    def trace_ids(self) -> set[int]:
        return {s.context.trace_id for s in self.spans}

    @staticmethod
    def is_child(child: ReadableSpan, parent: ReadableSpan) -> bool:
        return (
            child.parent is not None
            and child.parent.span_id == parent.context.span_id
            and child.context.trace_id == parent.context.trace_id
        )


def metric_points(
    reader: InMemoryMetricReader,
) -> dict[tuple[str, frozenset[tuple[str, object]]], float]:
    """Every data point the reader collects now: (metric name, attributes) -> value
    (a sum's or gauge's value, a histogram's count)."""
    points: dict[tuple[str, frozenset[tuple[str, object]]], float] = {}
    data = reader.get_metrics_data()
    if data is None:
        return points
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                for point in metric.data.data_points:
                    key = (metric.name, frozenset((point.attributes or {}).items()))
                    points[key] = float(getattr(point, "value", getattr(point, "count", 0)))
    return points


def grown(
    before: dict[tuple[str, frozenset[tuple[str, object]]], float],
    after: dict[tuple[str, frozenset[tuple[str, object]]], float],
    metric: str,
    **attributes: object,
) -> float:
    """How much the points of ``metric`` whose attributes include ``attributes`` grew."""
    wanted = set(attributes.items())
    return sum(
        value - before.get(key, 0.0)
        for key, value in after.items()
        if key[0] == metric and wanted <= set(key[1])
    )
