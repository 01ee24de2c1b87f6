"""Fixtures for the partition-manager tests: a fresh hub with 8 partitions on the session Azurite.

``hub8`` creates the hub through ``TaskHubResources`` (so the hub-info row exists, as in
production) and deletes it afterwards, also when the test fails. ``fast_settings`` builds
per-worker settings with short lease intervals (lease 3 s, renew 1 s, acquire 1 s).
The sibling folder's ``fault_proxy`` helper is made importable here.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from durable_azstorage.azure.settings import AzureStorageSettings
from durable_azstorage.azure.storage.clients import StorageClients
from durable_azstorage.azure.tracking.taskhub import TaskHubResources

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests/azure: fault_proxy

from sim_support import ACQUIRE, LEASE, PARTITIONS, RENEW  # noqa: E402 - after sys.path


@pytest.fixture
def lease_fleet_alone(across_workers: Any) -> Iterator[None]:
    """Run this test while no other lease-fleet test runs in another xdist worker.

    Lease exclusivity with leases of a few seconds assumes no stall longer than
    lease - renew; side by side on 2 cores (-n 4) these fleets starved each other (a flagged
    hand-over overlap, a hung teardown).
    """
    with across_workers.lock("lease_fleets"):
        yield


@pytest.fixture
def fast_settings(azure_settings: AzureStorageSettings) -> Callable[..., AzureStorageSettings]:
    def make(worker_id: str, connection_string: str | None = None) -> AzureStorageSettings:
        return AzureStorageSettings(
            connection_string=connection_string or azure_settings.connection_string,
            task_hub=azure_settings.task_hub,
            partition_count=PARTITIONS,
            worker_id=worker_id,
            lease_interval=LEASE,
            lease_renew_interval=RENEW,
            lease_acquire_interval=ACQUIRE,
        )

    return make


@pytest.fixture
async def hub8(
    fast_settings: Callable[..., AzureStorageSettings],
) -> AsyncIterator[StorageClients]:
    """Open clients on a freshly created 8-partition hub; the hub is deleted afterwards."""
    async with StorageClients(fast_settings("creator")) as clients:
        hub = TaskHubResources(clients)
        await hub.create_if_not_exists()
        try:
            yield clients
        finally:
            await hub.delete()
