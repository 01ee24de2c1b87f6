"""What one overview refresh costs in storage requests on Azure (Azurite), and the cache."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from aiohttp.test_utils import TestClient, TestServer

from durable_azstorage import TaskHubWorker
from durable_azstorage.azure.provider import AzureStorageBackend
from durable_azstorage.azure.settings import AzureStorageSettings
from durable_azstorage.cli.hub_monitor import AzureHubMonitor
from durable_azstorage.client.async_client import AsyncTaskHubClient
from durable_azstorage.dashboard import create_app

pytestmark = pytest.mark.azurite


async def test_an_overview_refresh_costs_a_fixed_number_of_requests(
    azure_settings: AzureStorageSettings,
) -> None:
    backend = AzureStorageBackend(azure_settings)
    monitor = AzureHubMonitor(azure_settings, backend.request_counter)
    client = AsyncTaskHubClient(backend=backend)
    await client.create_task_hub()
    for i in range(3):
        await client.schedule_new_orchestration("seeded", instance_id=f"seed-{i}")
    # the starts' trailing wake-up touch (a PutBlob) is theirs, not the overview's: write it now
    wakeup = backend.hub.resources.wakeup
    assert wakeup is not None
    await wakeup.flush()
    app = create_app(backend, monitor=monitor, overview_ttl=0)
    try:
        async with TestClient(TestServer(app)) as http:
            assert (await http.get("/api/overview")).status == 200  # reads the hub info once
            before = backend.request_counter.snapshot()
            response = await http.get("/api/overview")
            cost = backend.request_counter.snapshot() - before
            doc = await response.json()
        partitions = azure_settings.partition_count
        assert doc["counts"]["Pending"] == 3 and doc["work_item_backlog"] == 0
        assert doc["poison_count"] == 0
        assert cost.counts == {
            ("table", "QueryEntities"): 2,  # one page of the instance index + the lease table
            ("queue", "GetQueueMetadata"): partitions + 1,  # control queues + work items
            ("queue", "PeekMessages"): partitions,  # oldest message per control queue
            ("blob", "ListBlobs"): 1,  # the poison store
        }
        assert cost.total == 4 + 2 * partitions
    finally:
        await monitor.close()
        await client.delete_task_hub()
        await backend.stop()


async def test_the_overview_is_cached_between_refreshes(
    azure_settings: AzureStorageSettings,
) -> None:
    backend = AzureStorageBackend(azure_settings)
    client = AsyncTaskHubClient(backend=backend)
    await client.create_task_hub()
    app = create_app(backend, overview_ttl=60)
    try:
        async with TestClient(TestServer(app)) as http:
            first = await (await http.get("/api/overview")).json()
            before = backend.request_counter.total
            for _ in range(5):
                again = await (await http.get("/api/overview")).json()
            assert backend.request_counter.total == before
            assert again["computed_at"] == first["computed_at"]
            assert first["partitions"] is None  # no monitor given: the section says so
    finally:
        await client.delete_task_hub()
        await backend.stop()


async def test_served_by_a_worker_the_overview_shows_the_workers_requests(
    azure_settings: AzureStorageSettings,
) -> None:
    worker = TaskHubWorker(azure_settings)
    await AsyncTaskHubClient(backend=worker.backend).create_task_hub()
    running = asyncio.create_task(worker.run_async())
    app = create_app(worker.backend, overview_ttl=0)
    try:
        async with TestClient(TestServer(app)) as http:
            await http.get("/api/overview")  # the first sample
            await asyncio.sleep(2)  # the worker polls its queues meanwhile
            doc = await (await http.get("/api/overview")).json()
        rates = doc["requests_per_minute"]
        assert rates["queue.GetMessages"] > 0  # the worker's polling, not the dashboard's
        assert doc["partitions"] is None  # no monitor given
    finally:
        await worker.stop_async(grace=timedelta(seconds=5))
        await running
        cleaner = AzureStorageBackend(azure_settings)
        await cleaner.delete_task_hub()
        await cleaner.stop()
