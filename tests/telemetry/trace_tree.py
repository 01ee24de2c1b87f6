"""Finished spans as a tree: find them by name and check who is whose parent."""

from __future__ import annotations

from collections.abc import Sequence

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind


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
