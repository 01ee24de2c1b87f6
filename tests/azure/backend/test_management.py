"""Management operations on Azurite through the public client: purge by filter (with a
resumable timeout), counts, restart, rewind (recursive) and the stale-index tooling.

A TaskHubWorker runs on its own thread with its own AzureStorageBackend (extended sessions
on, the default, so rewind is checked against a worker that cached the failed instance);
the client uses a second backend in the test's loop.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from typing import Any

import pytest
from azure.data.tables import UpdateMode
from azure.data.tables.aio import TableServiceClient
from azure.storage.blob.aio import BlobServiceClient

from durable_azstorage import (
    ActivityContext,
    AsyncTaskHubClient,
    InvalidOperationError,
    OrchestrationContext,
    OrchestrationNotFoundError,
    OrchestrationStatus,
    TaskHubWorker,
)
from durable_azstorage.azure.naming import escape_key
from durable_azstorage.azure.provider import AzureStorageBackend
from durable_azstorage.azure.settings import AzureStorageSettings
from durable_azstorage.model.history import GenericEvent

pytestmark = pytest.mark.azurite
TIMEOUT = 60
S = OrchestrationStatus


class Flaky:
    def __init__(self) -> None:
        self.broken = True
        self.calls: dict[str, int] = {}
        self._lock = threading.Lock()

    def count(self, name: str) -> None:
        with self._lock:
            self.calls[name] = self.calls.get(name, 0) + 1


FLAKY = Flaky()


def steady(ctx: ActivityContext, x: int) -> int:
    FLAKY.count("steady")
    return x * 10


def fragile(ctx: ActivityContext, x: int) -> int:
    FLAKY.count("fragile")
    if FLAKY.broken:
        raise RuntimeError("fragile is broken")
    return x + 1


def pipeline(ctx: OrchestrationContext, x: int):  # type: ignore[no-untyped-def]
    a = yield ctx.call_activity("steady", input=x)
    return (yield ctx.call_activity("fragile", input=a))


def parent(ctx: OrchestrationContext, x: int):  # type: ignore[no-untyped-def]
    first = yield ctx.call_activity("steady", input=x)
    child = yield ctx.call_sub_orchestrator("pipeline", input=x, instance_id=f"{ctx.instance_id}-c")
    return [first, child]


def quick(ctx: OrchestrationContext, value: Any) -> Any:
    return value


def boom(ctx: OrchestrationContext, _: Any) -> Any:
    raise ValueError("boom")


def waiter(ctx: OrchestrationContext, _: Any):  # type: ignore[no-untyped-def]
    return (yield ctx.wait_for_external_event("go"))


@pytest.fixture
def settings(azure_settings: AzureStorageSettings) -> AzureStorageSettings:
    return dataclasses.replace(
        azure_settings, partition_count=2, max_poll_interval=timedelta(milliseconds=500)
    )


@pytest.fixture
def worker(settings: AzureStorageSettings) -> Iterator[TaskHubWorker]:
    FLAKY.broken, FLAKY.calls = True, {}
    w = TaskHubWorker(backend=AzureStorageBackend(settings), lock_renew_interval=timedelta(seconds=20))
    for fn in (pipeline, parent, quick, boom, waiter):
        w.add_orchestrator(fn)
    w.add_activity(steady)
    w.add_activity(fragile)
    try:
        yield w
    finally:
        w.stop(grace=timedelta(seconds=5))


@pytest.fixture
async def backend(settings: AzureStorageSettings) -> AsyncIterator[AzureStorageBackend]:
    b = AzureStorageBackend(settings)
    await b.create_task_hub()
    try:
        yield b
    finally:
        await b.delete_task_hub()
        await b.stop()


@pytest.fixture
async def client(
    backend: AzureStorageBackend, worker: TaskHubWorker
) -> AsyncIterator[AsyncTaskHubClient]:
    worker.start()
    try:
        async with AsyncTaskHubClient(backend=backend) as c:
            yield c
    finally:
        worker.stop(grace=timedelta(seconds=5))


async def finish(client: AsyncTaskHubClient, instance_id: str) -> OrchestrationStatus:
    state = await client.wait_for_orchestration_completion(instance_id, timeout=TIMEOUT)
    return state.runtime_status


async def test_purge_by_filter_counts_and_resumable_timeout(client: AsyncTaskHubClient) -> None:
    done = [await client.schedule_new_orchestration("quick", input=i, instance_id=f"ok-{i:02d}") for i in range(24)]
    bad = await client.schedule_new_orchestration("boom", instance_id="bad")
    live = await client.schedule_new_orchestration("waiter", instance_id="live")
    for iid in done:
        assert await finish(client, iid) is S.COMPLETED
    assert await finish(client, bad) is S.FAILED
    await client.wait_for_orchestration_start(live, timeout=TIMEOUT)

    counts = await client.count_orchestrations_by_status()
    assert (counts[S.COMPLETED], counts[S.FAILED], counts[S.RUNNING]) == (24, 1, 1)
    with pytest.raises(ValueError, match="Running.*only ended statuses"):
        await client.purge_orchestrations_by(runtime_status=[S.COMPLETED, S.RUNNING])
    with pytest.raises(ValueError, match="needs runtime_status"):
        await client.purge_orchestrations_by()

    first = await client.purge_orchestrations_by(runtime_status=[S.COMPLETED], timeout=0)
    assert (first.deleted_instance_count, first.is_complete) == (0, False)
    total, calls, result = 0, 0, first
    while not result.is_complete and calls < 200:
        result = await client.purge_orchestrations_by(
            runtime_status=[S.COMPLETED], timeout=0.5, concurrency=2,
            progress=lambda _: time.sleep(0.05),  # slow deletions: every call stops part-way
        )
        total += result.deleted_instance_count
        calls += 1
    assert result.is_complete and total == 24 and calls > 1
    again = await client.purge_orchestrations_by(runtime_status=[S.COMPLETED])
    assert (again.deleted_instance_count, again.is_complete) == (0, True)
    counts = await client.count_orchestrations_by_status()
    assert (counts[S.COMPLETED], counts[S.FAILED], counts[S.RUNNING]) == (0, 1, 1)
    assert await client.get_orchestration_state(live) is not None


async def _blob_names(settings: AzureStorageSettings, prefix: str) -> list[str]:
    assert settings.connection_string is not None
    async with BlobServiceClient.from_connection_string(settings.connection_string) as service:
        container = service.get_container_client(settings.names.large_messages_container)
        return [b.name async for b in container.list_blobs(name_starts_with=prefix)]


async def test_purge_deletes_every_payload_blob_with_one_listing(
    client: AsyncTaskHubClient, backend: AzureStorageBackend, settings: AzureStorageSettings
) -> None:
    big = "x" * 200_000  # input, output and history all go to blobs
    iid = await client.schedule_new_orchestration("quick", input=big, instance_id="big-purge")
    assert await finish(client, iid) is S.COMPLETED
    assert await _blob_names(settings, f"{escape_key(iid)}/"), "payloads should be in blobs"

    before = backend.request_counter.snapshot()
    result = await client.purge_orchestration(iid)

    listings = (backend.request_counter.snapshot() - before).counts.get(("blob", "ListBlobs"), 0)
    assert result.deleted_instance_count == 1
    assert listings == 1  # history rows, the Instances row and messages share one prefix
    assert await _blob_names(settings, f"{escape_key(iid)}/") == []
    assert await client.get_orchestration_state(iid) is None


async def test_restart(client: AsyncTaskHubClient) -> None:
    iid = await client.schedule_new_orchestration("quick", input=[1, 2], instance_id="r-1")
    assert await finish(client, iid) is S.COMPLETED
    assert await client.restart_orchestration(iid) == iid
    state = await client.wait_for_orchestration_completion(iid, timeout=TIMEOUT)
    assert state.get_output() == [1, 2]
    other = await client.restart_orchestration(iid, restart_with_new_instance_id=True)
    assert other != iid
    assert (await client.wait_for_orchestration_completion(other, timeout=TIMEOUT)).get_output() == [1, 2]

    with pytest.raises(OrchestrationNotFoundError, match="missing"):
        await client.restart_orchestration("missing")
    live = await client.schedule_new_orchestration("waiter", instance_id="r-live")
    await client.wait_for_orchestration_start(live, timeout=TIMEOUT)
    with pytest.raises(InvalidOperationError, match="Running"):
        await client.restart_orchestration(live)


async def test_rewind_recursive_keeps_successful_results(client: AsyncTaskHubClient) -> None:
    iid = await client.schedule_new_orchestration("parent", input=3, instance_id="rw")
    assert await finish(client, iid) is S.FAILED
    assert await finish(client, "rw-c") is S.FAILED
    assert FLAKY.calls == {"steady": 2, "fragile": 1}

    FLAKY.broken = False
    await client.rewind_orchestration(iid, reason="deployed fix")

    state = await client.wait_for_orchestration_completion(iid, timeout=TIMEOUT)
    assert (state.runtime_status, state.get_output()) == (S.COMPLETED, [30, 31])
    assert FLAKY.calls == {"steady": 2, "fragile": 2}
    history = await client.get_orchestration_history(iid)
    assert [e.data for e in history if isinstance(e, GenericEvent)] == ["rewind: deployed fix"]
    child = await client.get_orchestration_state("rw-c")
    assert child is not None and child.runtime_status is S.COMPLETED


async def test_rewind_failure_paths(client: AsyncTaskHubClient) -> None:
    with pytest.raises(OrchestrationNotFoundError, match="ghost"):
        await client.rewind_orchestration("ghost")
    live = await client.schedule_new_orchestration("waiter", instance_id="rw-live")
    await client.wait_for_orchestration_start(live, timeout=TIMEOUT)
    with pytest.raises(InvalidOperationError, match="rw-live.*Running.*only Failed"):
        await client.rewind_orchestration(live)


async def test_stale_index_found_and_repaired(
    client: AsyncTaskHubClient, backend: AzureStorageBackend, settings: AzureStorageSettings
) -> None:
    ids = [await client.schedule_new_orchestration("quick", input=i, instance_id=f"s-{i}") for i in range(3)]
    for iid in ids:
        assert await finish(client, iid) is S.COMPLETED
    assert await client.find_stale_instances() == []

    # Simulate crashes between the history write and the index write: one row left at
    # Running, one row lost altogether.
    assert settings.connection_string is not None
    async with TableServiceClient.from_connection_string(settings.connection_string) as service:
        table = service.get_table_client(backend.names.instances_table)
        await table.update_entity(
            {"PartitionKey": escape_key("s-0"), "RowKey": "", "RuntimeStatus": "Running"},
            mode=UpdateMode.MERGE,
        )
        await table.delete_entity(escape_key("s-1"), "")

    stale = await client.find_stale_instances()
    assert [(s.instance_id, s.problem) for s in stale] == [("s-0", "status"), ("s-1", "missing-row")]
    assert stale[0].row_status is S.RUNNING and stale[0].history_status is S.COMPLETED

    repaired = await client.repair_stale_instances()
    assert [s.instance_id for s in repaired] == ["s-0", "s-1"]
    assert await client.find_stale_instances() == []
    for iid in ("s-0", "s-1"):
        state = await client.get_orchestration_state(iid)
        assert state is not None and state.runtime_status is S.COMPLETED
        assert state.get_output() == int(iid[-1])
