"""Task hub resources against real Azurite: create, exists, info, delete, list, races."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import subprocess
import sys
import time

import pytest

from durable_azstorage.azure.settings import AzureStorageSettings
from durable_azstorage.azure.storage.clients import StorageClients
from durable_azstorage.azure.tracking.taskhub import TaskHubResources, list_task_hubs
from durable_azstorage.model.errors import (
    PartitionCountMismatchError,
    TaskHubNameConflictError,
    TaskHubNotFoundError,
)


async def test_create_exists_info_delete(azure_settings: AzureStorageSettings) -> None:
    hub = azure_settings.task_hub
    async with StorageClients(azure_settings) as clients:
        resources = TaskHubResources(clients)
        assert not await resources.exists()

        created = await resources.create_if_not_exists()
        assert created.partition_count == 4
        assert await resources.exists()

        info = await resources.info()
        assert info.task_hub == hub
        assert info.partition_count == 4
        assert info.missing == ()
        assert info.created_time == created.created_time.replace(
            microsecond=info.created_time.microsecond
        )
        assert info.created_by == azure_settings.worker_id
        assert info.resources == (
            f"{hub.lower()}-control-00",
            f"{hub.lower()}-control-01",
            f"{hub.lower()}-control-02",
            f"{hub.lower()}-control-03",
            f"{hub.lower()}-workitems",
            f"{hub}History",
            f"{hub}Instances",
            f"{hub}Partitions",
            f"{hub.lower()}-largemessages",
        )
        queues = {
            q.name async for q in clients.queue_service.list_queues(name_starts_with=hub.lower())
        }
        assert queues == {r for r in info.resources if "-control-" in r or r.endswith("-workitems")}

        assert await resources.delete()
        assert not await resources.exists()
        assert not await resources.delete()  # idempotent
        assert [
            q async for q in clients.queue_service.list_queues(name_starts_with=hub.lower())
        ] == []
        tables = [t.name async for t in clients.table_service.list_tables()]
        assert not [t for t in tables if t.startswith(hub)]
        with pytest.raises(TaskHubNotFoundError, match=hub):
            await resources.info()


async def test_create_is_idempotent_and_repairs_missing_resources(
    azure_settings: AzureStorageSettings,
) -> None:
    async with StorageClients(azure_settings) as clients:
        resources = TaskHubResources(clients)
        first = await resources.create_if_not_exists()
        names = resources.names
        await clients.queue(names.control_queues[2]).delete_queue()
        await clients.table(names.history_table).delete_table()
        assert set((await resources.info()).missing or ()) == {
            names.control_queues[2],
            names.history_table,
        }
        again = await resources.create_if_not_exists()
        assert again.created_time == first.created_time.replace(
            microsecond=again.created_time.microsecond
        )
        assert (await resources.info()).missing == ()
        await resources.delete()


async def test_partition_count_mismatch_is_a_clear_error(
    azure_settings: AzureStorageSettings,
) -> None:
    async with StorageClients(azure_settings) as clients:
        await TaskHubResources(clients).create_if_not_exists()
        other = dataclasses.replace(azure_settings, partition_count=8)
        async with StorageClients(other) as other_clients:
            with pytest.raises(PartitionCountMismatchError, match="partition_count=4") as info:
                await TaskHubResources(other_clients).verify()
            assert (info.value.stored, info.value.configured) == (4, 8)
            with pytest.raises(PartitionCountMismatchError):
                await TaskHubResources(other_clients).create_if_not_exists()
            # the failed create did not add control queues 04..07
            found = {
                q.name
                async for q in other_clients.queue_service.list_queues(
                    name_starts_with=azure_settings.task_hub.lower() + "-control-"
                )
            }
            assert len(found) == 4
        assert (await TaskHubResources(clients).verify()).partition_count == 4
        await TaskHubResources(clients).delete()


async def test_verify_on_a_missing_hub_raises_not_found(
    azure_settings: AzureStorageSettings,
) -> None:
    async with StorageClients(azure_settings) as clients:
        with pytest.raises(TaskHubNotFoundError, match=azure_settings.task_hub):
            await TaskHubResources(clients).verify()


async def test_concurrent_creates_in_one_process_all_succeed(
    azure_settings: AzureStorageSettings,
) -> None:
    async with StorageClients(azure_settings) as clients:
        infos = await asyncio.gather(
            *(TaskHubResources(clients).create_if_not_exists() for _ in range(5))
        )
        assert len({i.created_time for i in infos}) == 1
        assert (await TaskHubResources(clients).info()).missing == ()
        await TaskHubResources(clients).delete()


_CREATE_SCRIPT = """
import asyncio, json, sys, time
from durable_azstorage.azure.settings import AzureStorageSettings
from durable_azstorage.azure.storage.clients import StorageClients
from durable_azstorage.azure.tracking.taskhub import TaskHubResources

async def main():
    settings = AzureStorageSettings.from_env(worker_id=sys.argv[2])
    async with StorageClients(settings) as clients:
        resources = TaskHubResources(clients)
        await resources.exists()  # warm the connection so both start the race at once
        time.sleep(max(0.0, float(sys.argv[1]) - time.time()))
        info = await resources.create_if_not_exists()
        print(json.dumps({"created_by": info.created_by, "count": info.partition_count}))

asyncio.run(main())
"""


def test_two_processes_creating_the_same_hub_both_succeed(
    azure_settings: AzureStorageSettings,
) -> None:
    env = {
        **__import__("os").environ,
        "DURABLE_AZSTORAGE_CONNECTION_STRING": azure_settings.connection_string or "",
        "DURABLE_AZSTORAGE_TASK_HUB": azure_settings.task_hub,
        "DURABLE_AZSTORAGE_PARTITION_COUNT": "4",
    }
    start_at = time.time() + 3.0  # both processes are imported and connected by then
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _CREATE_SCRIPT, str(start_at), f"proc{i}"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    try:
        outputs = [p.communicate(timeout=120) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    for p, (_out, err) in zip(procs, outputs, strict=False):
        assert p.returncode == 0, err
    results = [json.loads(out) for out, _ in outputs]
    # Exactly one process wrote the hub-info row; both report that same row.
    assert results[0] == results[1]
    assert results[0]["created_by"] in ("proc0", "proc1")

    async def check() -> None:
        async with StorageClients(azure_settings) as clients:
            resources = TaskHubResources(clients)
            assert (await resources.info()).missing == ()
            await resources.delete()

    asyncio.run(check())


async def test_list_task_hubs_finds_created_hubs(azure_settings: AzureStorageSettings) -> None:
    second = azure_settings.with_task_hub(azure_settings.task_hub + "b")
    async with StorageClients(azure_settings) as clients:
        await TaskHubResources(clients).create_if_not_exists()
        await TaskHubResources(clients, second.task_hub, 2).create_if_not_exists()
        # a table that merely looks like a partitions table is not a hub
        await clients.table(f"{azure_settings.task_hub}xPartitions").create_table()
        hubs = {h.task_hub: h.partition_count for h in await list_task_hubs(clients)}
        assert hubs[azure_settings.task_hub] == 4
        assert hubs[second.task_hub] == 2
        assert f"{azure_settings.task_hub}x" not in hubs
        await TaskHubResources(clients).delete()
        await TaskHubResources(clients, second.task_hub).delete()
        await clients.table(f"{azure_settings.task_hub}xPartitions").delete_table()
        assert azure_settings.task_hub not in {h.task_hub for h in await list_task_hubs(clients)}


async def test_a_hub_name_differing_only_in_case_is_a_clear_error(
    azure_settings: AzureStorageSettings,
) -> None:
    async with StorageClients(azure_settings) as clients:
        await TaskHubResources(clients).create_if_not_exists()
        other = dataclasses.replace(azure_settings, task_hub=azure_settings.task_hub.upper())
        try:
            async with StorageClients(other) as other_clients:
                for attempt in (
                    TaskHubResources(other_clients).create_if_not_exists,
                    TaskHubResources(other_clients).verify,
                ):
                    with pytest.raises(TaskHubNameConflictError, match="case-insensitive") as info:
                        await attempt()
                    assert info.value.stored == azure_settings.task_hub
        finally:
            await TaskHubResources(clients).delete()
