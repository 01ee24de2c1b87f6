"""One trace through ``serve``: the portable SDK's client and worker with tracing on.

The SDK's client sends its ``create_orchestration`` span as ``parentTraceContext``; the
sidecar stores it with the ``ExecutionStarted``, hands it back in every history, keeps the
span ids the SDK worker chose for its tasks, gives each activity request its parent, and
tells the worker the orchestration span's id and start time. So the spans the SDK writes
(client and worker, in this process) form one tree, sub-orchestrations nested.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest
from durabletask import task
from durabletask.client import OrchestrationStatus, TaskHubGrpcClient
from durabletask.worker import TaskHubGrpcWorker
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from otel_capture import TraceTree

from durable_azstorage import TaskHubClient
from durable_azstorage.model.history import ExecutionStarted, TaskScheduled

if TYPE_CHECKING:
    from sidecar_support import RunningSidecar

TIMEOUT = 30


def shout(ctx: task.ActivityContext, text: str) -> str:
    return text.upper()


def leaf(ctx: task.OrchestrationContext, text: str):  # type: ignore[no-untyped-def]
    return (yield ctx.call_activity(shout, input=text))


def root(ctx: task.OrchestrationContext, text: str):  # type: ignore[no-untyped-def]
    first = yield ctx.call_activity(shout, input=text)
    second = yield ctx.call_sub_orchestrator(leaf, input=first + "!")
    return second


@pytest.fixture
def traced_sidecar(new_sidecar: Callable[..., RunningSidecar]) -> Iterator[RunningSidecar]:
    running = new_sidecar()
    worker = TaskHubGrpcWorker(host_address=running.address)
    worker.add_orchestrator(root)
    worker.add_orchestrator(leaf)
    worker.add_activity(shout)
    worker.start()
    try:
        yield running
    finally:
        worker.stop()


def test_the_sdk_trace_stays_one_tree_through_the_sidecar(
    traced_sidecar: RunningSidecar, spans: InMemorySpanExporter
) -> None:
    client = TaskHubGrpcClient(host_address=traced_sidecar.address)
    try:
        iid = client.schedule_new_orchestration(root, input="hi")
        state = client.wait_for_orchestration_completion(iid, timeout=TIMEOUT)
    finally:
        client.close()
    assert state is not None and state.runtime_status == OrchestrationStatus.COMPLETED, state
    assert state.serialized_output == '"HI!"'

    tree = TraceTree(spans.get_finished_spans())
    assert len(tree.trace_ids()) == 1, tree.names()
    create = tree.one("create_orchestration:root", SpanKind.PRODUCER)
    orchestration = tree.one("orchestration:root", SpanKind.SERVER)
    assert tree.is_child(orchestration, create)
    runs = tree.named("activity:shout", SpanKind.SERVER)
    assert len(runs) == 2
    # Each activity run hangs (through the SDK's CLIENT span, or directly) off an orchestration.
    sub = tree.one("orchestration:leaf", SpanKind.SERVER)
    by_id = {s.context.span_id: s for s in tree.spans}

    def ancestors(span: Any) -> list[str]:
        names = []
        while span.parent is not None and span.parent.span_id in by_id:
            span = by_id[span.parent.span_id]
            names.append(f"{span.name}/{span.kind.name}")
        return names

    chains = sorted(ancestors(r) for r in runs)
    assert any(
        "orchestration:leaf/SERVER" in c and "orchestration:root/SERVER" in c for c in chains
    ), chains
    assert any(
        "orchestration:leaf/SERVER" not in c and "orchestration:root/SERVER" in c for c in chains
    ), chains
    assert "orchestration:root/SERVER" in ancestors(sub)

    # What the sidecar stored: the client's context on the start, the SDK's on the task.
    with TaskHubClient(traced_sidecar.settings) as ours:
        history = ours.get_orchestration_history(iid)
    started = next(e for e in history if isinstance(e, ExecutionStarted))
    assert started.trace_context is not None
    assert int(started.trace_context.span_id, 16) == create.context.span_id
    scheduled = next(e for e in history if isinstance(e, TaskScheduled))
    assert scheduled.trace_context is not None
    assert int(scheduled.trace_context.trace_id, 16) == create.context.trace_id
