"""One trace per orchestration, from the client's span to every activity, against Azurite.

The orchestration's span is written once, when it completes, with the id its children were
given long before; so the trace holds together across episodes and a worker restart (the
second worker knows nothing but what storage holds).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from otel_capture import TraceTree

from durable_azstorage import (
    ActivityContext,
    InMemoryBackend,
    OrchestrationContext,
    OrchestrationStatus,
    TaskHubClient,
    TaskHubWorker,
)
from durable_azstorage.azure.settings import AzureStorageSettings
from durable_azstorage.testing.eventually import eventually

TIMEOUT = 30


def double(ctx: ActivityContext, x: int) -> int:
    return 2 * x


def explode(ctx: ActivityContext, _: Any) -> None:
    raise ValueError("boom")


def child(ctx: OrchestrationContext, x: int):  # type: ignore[no-untyped-def]
    return (yield ctx.call_activity(double, input=x))


def parent(ctx: OrchestrationContext, x: int):  # type: ignore[no-untyped-def]
    a = yield ctx.call_activity(double, input=x)
    yield ctx.create_timer(timedelta(milliseconds=50))
    ctx.set_custom_status("waiting")
    go = yield ctx.wait_for_external_event("go")
    b = yield ctx.call_sub_orchestrator(child, input=a)
    return b + go


def failing(ctx: OrchestrationContext, _: Any):  # type: ignore[no-untyped-def]
    yield ctx.call_activity(explode)


def _worker(settings: AzureStorageSettings) -> TaskHubWorker:
    worker = TaskHubWorker(settings)
    worker.add_orchestrator(parent)
    worker.add_orchestrator(child)
    worker.add_activity(double)
    return worker


def test_one_trace_from_schedule_to_every_activity_across_a_worker_restart(
    hub: AzureStorageSettings, spans: InMemorySpanExporter
) -> None:
    with TaskHubClient(hub) as client:
        with _worker(hub) as first:
            first.start()
            iid = client.schedule_new_orchestration(parent, input=1)
            eventually(
                lambda: (
                    (s := client.get_orchestration_state(iid)) is not None
                    and s.serialized_custom_status is not None
                ),
                what="the orchestration waiting for its event",
                timeout=TIMEOUT,
            )
        # A new worker, with nothing in memory from the first, finishes the orchestration.
        with _worker(hub) as second:
            second.start()
            client.raise_orchestration_event(iid, "go", data=10)
            state = client.wait_for_orchestration_completion(iid, timeout=TIMEOUT)
    assert state.runtime_status is OrchestrationStatus.COMPLETED
    assert state.get_output() == 14

    # The client's raise_orchestration_event opened its own trace (no span was current).
    finished = spans.get_finished_spans()
    event = TraceTree(finished).one("orchestration_event:go", SpanKind.PRODUCER)
    assert event.attributes is not None
    assert event.attributes["durabletask.event.target_instance_id"] == iid
    tree = TraceTree([s for s in finished if s is not event])
    assert len(tree.trace_ids()) == 1, tree.names()
    create = tree.one("create_orchestration:parent", SpanKind.PRODUCER)
    orchestration = tree.one("orchestration:parent", SpanKind.SERVER)
    assert create.parent is None
    assert tree.is_child(orchestration, create)
    assert orchestration.attributes is not None
    assert orchestration.attributes["durabletask.type"] == "orchestration"
    assert orchestration.attributes["durabletask.task.instance_id"] == iid
    assert orchestration.attributes["durabletask.task.status"] == "Completed"

    # The parent's activity: CLIENT span under the orchestration, SERVER span under that.
    calls = tree.named("activity:double", SpanKind.CLIENT)
    runs = tree.named("activity:double", SpanKind.SERVER)
    assert len(calls) == 2 and len(runs) == 2
    parent_call = next(c for c in calls if tree.is_child(c, orchestration))
    assert (
        parent_call.attributes is not None
        and parent_call.attributes["durabletask.task.task_id"] == "0"
    )
    assert any(tree.is_child(r, parent_call) for r in runs)

    timer = tree.one("orchestration:parent:timer", SpanKind.INTERNAL)
    assert tree.is_child(timer, orchestration)

    # The sub-orchestration nests: CLIENT span, its SERVER span, its activity under it.
    sub_call = tree.one("orchestration:child", SpanKind.CLIENT)
    sub = tree.one("orchestration:child", SpanKind.SERVER)
    assert tree.is_child(sub_call, orchestration)
    assert tree.is_child(sub, sub_call)
    child_call = next(c for c in calls if tree.is_child(c, sub))
    assert any(tree.is_child(r, child_call) for r in runs)

    # The orchestration's span covers its whole life, not one episode.
    assert orchestration.start_time is not None and orchestration.end_time is not None
    assert orchestration.start_time <= create.end_time  # type: ignore[operator]
    assert orchestration.end_time >= sub.end_time  # type: ignore[operator]


def test_failures_set_the_span_status_and_record_the_exception(spans: InMemorySpanExporter) -> None:
    backend = InMemoryBackend()
    worker = TaskHubWorker(backend=backend)
    worker.add_orchestrator(failing)
    worker.add_activity(explode)
    with worker, TaskHubClient(backend=backend) as client:
        worker.start()
        iid = client.schedule_new_orchestration(failing)
        state = client.wait_for_orchestration_completion(iid, timeout=TIMEOUT)
    assert state.runtime_status is OrchestrationStatus.FAILED

    tree = TraceTree(spans.get_finished_spans())
    for span in (
        tree.one("activity:explode", SpanKind.SERVER),
        tree.one("activity:explode", SpanKind.CLIENT),
        tree.one("orchestration:failing", SpanKind.SERVER),
    ):
        assert span.status.status_code is StatusCode.ERROR, span.name
        assert (
            span.attributes is not None and span.attributes["durabletask.task.status"] == "Failed"
        )
    run = tree.one("activity:explode", SpanKind.SERVER)
    [exception] = [e for e in run.events if e.name == "exception"]
    assert exception.attributes is not None
    assert exception.attributes["exception.message"] == "boom"
    assert "ValueError" in str(exception.attributes["exception.type"])


def counter(ctx: OrchestrationContext, n: int):  # type: ignore[no-untyped-def]
    yield ctx.call_activity(double, input=n)
    if n < 2:
        ctx.continue_as_new(n + 1)
        return None
    return n


def test_each_generation_of_continue_as_new_gets_its_span_in_the_one_trace(
    spans: InMemorySpanExporter,
) -> None:
    backend = InMemoryBackend()
    worker = TaskHubWorker(backend=backend)
    worker.add_orchestrator(counter)
    worker.add_activity(double)
    with worker, TaskHubClient(backend=backend) as client:
        worker.start()
        iid = client.schedule_new_orchestration(counter, input=0)
        assert client.wait_for_orchestration_completion(iid, timeout=TIMEOUT).get_output() == 2

    tree = TraceTree(spans.get_finished_spans())
    assert len(tree.trace_ids()) == 1, tree.names()
    create = tree.one("create_orchestration:counter", SpanKind.PRODUCER)
    generations = tree.named("orchestration:counter", SpanKind.SERVER)
    assert len(generations) == 3
    assert all(tree.is_child(g, create) for g in generations)
    assert len({g.context.span_id for g in generations}) == 3
    calls = tree.named("activity:double", SpanKind.CLIENT)
    assert len(calls) == 3
    assert all(any(tree.is_child(c, g) for g in generations) for c in calls)
