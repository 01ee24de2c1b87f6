"""Management operations only the Azure backend has, on Azurite through the public client:
purging payload blobs with one listing, and the stale-index tooling. Purge by filter, counts,
restart and rewind run on every backend in tests/e2e (test_management_e2e, test_rewind_e2e).

A TaskHubWorker runs on its own thread with its own AzureStorageBackend; the client uses a
second backend in the test's loop.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from typing import Any

import pytest
from azure.data.tables import UpdateMode
from azure.data.tables.aio import TableServiceClient
from azure.storage.blob.aio import BlobServiceClient

from durable_azstorage import (
    AsyncTaskHubClient,
    OrchestrationContext,
    OrchestrationStatus,
    TaskHubWorker,
)
from durable_azstorage.azure.provider import AzureStorageBackend
from durable_azstorage.azure.settings import AzureStorageSettings
from durable_azstorage.azure.storage.naming import escape_key

pytestmark = pytest.mark.azurite
TIMEOUT = 60
S = OrchestrationStatus


def quick(ctx: OrchestrationContext, value: Any) -> Any:
    return value


@pytest.fixture
def settings(azure_settings: AzureStorageSettings) -> AzureStorageSettings:
    return dataclasses.replace(
        azure_settings, partition_count=2, max_poll_interval=timedelta(milliseconds=500)
    )


@pytest.fixture
def worker(settings: AzureStorageSettings) -> Iterator[TaskHubWorker]:
    w = TaskHubWorker(
        backend=AzureStorageBackend(settings), lock_renew_interval=timedelta(seconds=20)
    )
    w.add_orchestrator(quick)
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


async def test_stale_index_found_and_repaired(
    client: AsyncTaskHubClient, backend: AzureStorageBackend, settings: AzureStorageSettings
) -> None:
    ids = [
        await client.schedule_new_orchestration("quick", input=i, instance_id=f"s-{i}")
        for i in range(3)
    ]
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
    assert [(s.instance_id, s.problem) for s in stale] == [
        ("s-0", "status"),
        ("s-1", "missing-row"),
    ]
    assert stale[0].row_status is S.RUNNING and stale[0].history_status is S.COMPLETED

    repaired = await client.repair_stale_instances()
    assert [s.instance_id for s in repaired] == ["s-0", "s-1"]
    assert await client.find_stale_instances() == []
    for iid in ("s-0", "s-1"):
        state = await client.get_orchestration_state(iid)
        assert state is not None and state.runtime_status is S.COMPLETED
        assert state.get_output() == int(iid[-1])
