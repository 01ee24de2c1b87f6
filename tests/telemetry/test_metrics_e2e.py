"""Metrics after a known workload on Azurite: work done, and how the hub looks."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from otel_capture import grown, metric_points

from durable_azstorage import (
    ActivityContext,
    InMemoryBackend,
    OrchestrationContext,
    OrchestrationStatus,
    TaskHubClient,
    TaskHubWorker,
)
from durable_azstorage.azure.settings import AzureStorageSettings
from durable_azstorage.backend.protocol import OrchestrationCommit, OrchestrationWorkItem
from durable_azstorage.cli.hub_monitor import AzureHubMonitor
from durable_azstorage.telemetry.metrics import HubGauges

TIMEOUT = 30
ORCHESTRATIONS = 3


def add_one(ctx: ActivityContext, x: int) -> int:
    return x + 1


def refuse(ctx: ActivityContext, _: Any) -> None:
    raise RuntimeError("refused")


def two_steps(ctx: OrchestrationContext, x: int):  # type: ignore[no-untyped-def]
    y = yield ctx.call_activity(add_one, input=x)
    return (yield ctx.call_activity(add_one, input=y))


def fails(ctx: OrchestrationContext, _: Any):  # type: ignore[no-untyped-def]
    yield ctx.call_activity(refuse)


def test_work_counters_after_a_known_workload(
    hub: AzureStorageSettings, metric_reader: InMemoryMetricReader
) -> None:
    before = metric_points(metric_reader)
    worker = TaskHubWorker(hub)
    worker.add_orchestrator(two_steps)
    worker.add_orchestrator(fails)
    worker.add_activity(add_one)
    worker.add_activity(refuse)
    with worker, TaskHubClient(hub) as client:
        worker.start()
        ids = [client.schedule_new_orchestration(two_steps, input=i) for i in range(ORCHESTRATIONS)]
        ids.append(client.schedule_new_orchestration(fails))
        states = [client.wait_for_orchestration_completion(i, timeout=TIMEOUT) for i in ids]
    assert [s.runtime_status for s in states] == [
        OrchestrationStatus.COMPLETED
    ] * ORCHESTRATIONS + [OrchestrationStatus.FAILED]
    after = metric_points(metric_reader)

    assert (
        grown(
            before,
            after,
            "durable_azstorage.activity.executions",
            name="add_one",
            outcome="completed",
        )
        == 2 * ORCHESTRATIONS
    )
    assert (
        grown(
            before, after, "durable_azstorage.activity.executions", name="refuse", outcome="failed"
        )
        == 1
    )
    assert (
        grown(before, after, "durable_azstorage.activity.duration", name="add_one")
        == 2 * ORCHESTRATIONS
    )
    # Each orchestration commits at least start, one episode per answer: 3 + 2 episodes here.
    committed = grown(
        before, after, "durable_azstorage.orchestration.episodes", outcome="committed"
    )
    assert committed >= 3 * ORCHESTRATIONS + 2
    assert (
        grown(
            before, after, "durable_azstorage.orchestration.episode.duration", outcome="committed"
        )
        == committed
    )
    # Storage requests by service and operation: each start was put on a queue (activities
    # run in the committing process need no message of their own).
    assert (
        grown(
            before,
            after,
            "durable_azstorage.storage.requests",
            service="queue",
            operation="PutMessage",
        )
        >= ORCHESTRATIONS + 1
    )
    assert (
        grown(
            before, after, "durable_azstorage.storage.requests", service="table", operation="Batch"
        )
        >= committed
    )
    assert grown(before, after, "durable_azstorage.poison_messages") == 0


def test_hub_gauges_show_backlog_age_and_owners(
    hub: AzureStorageSettings, metric_reader: InMemoryMetricReader
) -> None:
    with TaskHubClient(hub) as client:
        for i in range(ORCHESTRATIONS):
            client.schedule_new_orchestration(two_steps, input=i)
    time.sleep(1.1)  # so that the oldest message is at least a second old

    async def look() -> None:
        monitor = AzureHubMonitor(hub)
        try:
            gauges = HubGauges(monitor.sample)
            await gauges.refresh()
        finally:
            await monitor.close()

    asyncio.run(look())
    points = metric_points(metric_reader)

    def gauge(name: str) -> dict[frozenset[tuple[str, object]], float]:
        # Several HubGauges may live in one test process; the last registered reports last.
        return {attrs: v for (n, attrs), v in points.items() if n == name}

    backlog = gauge("durable_azstorage.control_queue.backlog")
    assert {dict(a)["partition"] for a in backlog} == {0, 1}
    assert sum(backlog.values()) == ORCHESTRATIONS
    ages = gauge("durable_azstorage.control_queue.oldest_message_age")
    assert max(ages.values()) >= 1.0
    assert gauge("durable_azstorage.work_item_queue.backlog") == {frozenset(): 0.0}
    assert gauge("durable_azstorage.partitions.owned") == {}  # no worker holds a lease


class CommitFails(InMemoryBackend):
    """Every commit that would not fail the instance fails (a storage outage)."""

    async def complete_orchestration(
        self, item: OrchestrationWorkItem, commit: OrchestrationCommit
    ) -> None:
        if commit.state.runtime_status is not OrchestrationStatus.FAILED:
            raise OSError("simulated storage outage")
        await super().complete_orchestration(item, commit)


def trivial(ctx: OrchestrationContext, _: Any) -> str:
    return "never committed"


def test_a_poisoned_work_item_is_counted_and_failed_commits_too(
    metric_reader: InMemoryMetricReader,
) -> None:
    before = metric_points(metric_reader)
    backend = CommitFails()
    worker = TaskHubWorker(backend=backend, max_dequeue_count=2)
    worker.add_orchestrator(trivial)
    with worker, TaskHubClient(backend=backend) as client:
        worker.start()
        iid = client.schedule_new_orchestration(trivial)
        state = client.wait_for_orchestration_completion(iid, timeout=TIMEOUT)
    assert state.runtime_status is OrchestrationStatus.FAILED
    after = metric_points(metric_reader)
    assert grown(before, after, "durable_azstorage.poison_messages", kind="orchestration") == 1
    assert grown(before, after, "durable_azstorage.orchestration.episodes", outcome="failed") == 2
