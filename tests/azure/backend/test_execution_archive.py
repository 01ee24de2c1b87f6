"""Earlier executions on Azurite, end to end: what archiving costs and what stays readable.

An eternal orchestration continues as new after an activity (one episode per generation),
more often than ``archived_executions`` keeps; an orchestration that never continues costs
no archive request. The worker's backend counts its own storage requests.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from typing import Any

import pytest

from durable_azstorage import (
    ActivityContext,
    AsyncTaskHubClient,
    OrchestrationContext,
    OrchestrationStatus,
    TaskHubWorker,
)
from durable_azstorage.azure.provider import AzureStorageBackend
from durable_azstorage.azure.settings import AzureStorageSettings
from durable_azstorage.azure.storage.metrics import RequestCounter
from durable_azstorage.model.errors import InvalidOperationError
from durable_azstorage.model.history import ExecutionCompleted, ExecutionStarted

pytestmark = pytest.mark.azurite
TIMEOUT = 60
KEPT = 4
GENERATIONS = 7  # continue-as-new this often: more than KEPT


def touch(ctx: ActivityContext, n: int) -> int:
    return n


def eternal(ctx: OrchestrationContext, n: int):  # type: ignore[no-untyped-def]
    yield ctx.call_activity("touch", input=n)
    if n < GENERATIONS:
        ctx.continue_as_new(n + 1)
        return None
    return n


def plain(ctx: OrchestrationContext, n: int):  # type: ignore[no-untyped-def]
    return (yield ctx.call_activity("touch", input=n))


@pytest.fixture
def counter() -> RequestCounter:
    return RequestCounter()


@pytest.fixture
def settings(azure_settings: AzureStorageSettings) -> AzureStorageSettings:
    return dataclasses.replace(
        azure_settings,
        partition_count=1,
        max_poll_interval=timedelta(seconds=1),
        archived_executions=KEPT,
    )


@pytest.fixture
def worker(settings: AzureStorageSettings, counter: RequestCounter) -> Iterator[TaskHubWorker]:
    w = TaskHubWorker(backend=AzureStorageBackend(settings, counter=counter))
    w.add_orchestrator(eternal)
    w.add_orchestrator(plain)
    w.add_activity(touch)
    try:
        yield w
    finally:
        w.stop(grace=timedelta(seconds=5))


@pytest.fixture
async def client(
    settings: AzureStorageSettings, worker: TaskHubWorker
) -> AsyncIterator[AsyncTaskHubClient]:
    backend = AzureStorageBackend(settings)
    await backend.create_task_hub()
    worker.start()
    try:
        async with AsyncTaskHubClient(backend=backend) as c:
            yield c
    finally:
        worker.stop(grace=timedelta(seconds=5))
        await backend.delete_task_hub()
        await backend.stop()


async def _run(client: AsyncTaskHubClient, name: str, instance_id: str) -> None:
    await client.schedule_new_orchestration(name, input=0, instance_id=instance_id)
    state = await client.wait_for_orchestration_completion(instance_id, timeout=TIMEOUT)
    assert state.runtime_status is OrchestrationStatus.COMPLETED, state


def _blob_writes(counts: Any) -> tuple[int, int]:
    return counts.counts.get(("blob", "PutBlob"), 0), counts.counts.get(("blob", "DeleteBlob"), 0)


async def test_archiving_costs_a_write_per_continue_as_new_and_nothing_otherwise(
    client: AsyncTaskHubClient, counter: RequestCounter
) -> None:
    before = counter.snapshot()
    await _run(client, "plain", "plain-1")
    assert _blob_writes(counter.snapshot() - before) == (0, 0)

    before = counter.snapshot()
    await _run(client, "eternal", "eternal-1")
    # one blob per continue-as-new; one delete for each beyond the KEPT newest
    assert _blob_writes(counter.snapshot() - before) == (GENERATIONS, GENERATIONS - KEPT)


async def test_the_newest_earlier_executions_stay_readable_and_purge_removes_them(
    client: AsyncTaskHubClient,
) -> None:
    await _run(client, "eternal", "loop")
    ids = await client.list_execution_ids("loop")
    assert len(ids) == KEPT + 1
    for execution_id, generation in zip(
        ids, range(GENERATIONS - KEPT, GENERATIONS + 1), strict=True
    ):
        history = await client.get_orchestration_history("loop", execution_id=execution_id)
        started = next(e for e in history if isinstance(e, ExecutionStarted))
        assert (started.instance.execution_id, started.generation) == (execution_id, generation)
        (end,) = [e for e in history if isinstance(e, ExecutionCompleted)]
        expected = (
            OrchestrationStatus.COMPLETED
            if generation == GENERATIONS
            else OrchestrationStatus.CONTINUED_AS_NEW
        )
        assert end.status is expected
    assert await client.get_orchestration_history("loop", execution_id=ids[-1]) == (
        await client.get_orchestration_history("loop")
    )
    with pytest.raises(InvalidOperationError, match="is not kept"):
        await client.get_orchestration_history("loop", execution_id="dropped-long-ago")

    # a restart replaces the last execution: it is archived by the episode that starts anew
    await client.restart_orchestration("loop")
    await client.wait_for_orchestration_completion("loop", timeout=TIMEOUT)
    after = await client.list_execution_ids("loop")
    assert after[-1] not in ids and ids[-1] in after and len(after) == KEPT + 1

    await client.purge_orchestration("loop")
    backend = client.backend
    assert isinstance(backend, AzureStorageBackend)
    assert await backend.list_executions("loop") == []
    assert await backend.get_execution_history("loop", ids[-1]) is None
