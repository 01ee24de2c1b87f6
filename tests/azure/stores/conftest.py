"""Fixtures for the store tests: a fresh task hub on the session Azurite and the three stores.

``stores`` opens ``StorageClients`` (with their request counter), creates the hub, builds
``PayloadStore``/``HistoryStore``/``InstanceStore`` the way the provider does, and deletes
the hub afterwards (also when the test fails). The sibling folder's ``fault_proxy`` helper is
made importable here.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from stores_support import Stores

from durable_azstorage.azure.settings import AzureStorageSettings
from durable_azstorage.azure.storage.clients import StorageClients
from durable_azstorage.azure.storage.payloads import PayloadStore
from durable_azstorage.azure.tracking.history_store import HistoryStore
from durable_azstorage.azure.tracking.instance_store import InstanceStore
from durable_azstorage.azure.tracking.taskhub import TaskHubResources

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests/azure: fault_proxy


@pytest.fixture
async def stores(azure_settings: AzureStorageSettings) -> AsyncIterator[Stores]:
    async with StorageClients(azure_settings) as clients:
        hub = TaskHubResources(clients)
        await hub.create_if_not_exists()
        try:
            names = azure_settings.names
            payloads = PayloadStore(
                clients.container(names.large_messages_container), retry=clients.retry
            )
            yield Stores(
                clients=clients,
                names=names,
                payloads=payloads,
                history=HistoryStore(
                    clients.table(names.history_table), payloads, retry=clients.retry
                ),
                instances=InstanceStore(
                    clients.table(names.instances_table), payloads, retry=clients.retry
                ),
            )
        finally:
            await hub.delete()
