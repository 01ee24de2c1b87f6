"""The ``Stores`` bundle used by the store tests (a module, so tests can import the type)."""

from __future__ import annotations

from dataclasses import dataclass

from durable_azstorage.azure.storage.clients import StorageClients
from durable_azstorage.azure.storage.naming import TaskHubNames
from durable_azstorage.azure.storage.payloads import PayloadStore
from durable_azstorage.azure.tracking.history_store import HistoryStore
from durable_azstorage.azure.tracking.instance_store import InstanceStore


@dataclass
class Stores:
    clients: StorageClients
    names: TaskHubNames
    payloads: PayloadStore
    history: HistoryStore
    instances: InstanceStore

    def history_store(self, **options: object) -> HistoryStore:
        """Another HistoryStore on the same table (batch limits, hooks)."""
        return HistoryStore(
            self.clients.table(self.names.history_table),
            self.payloads,
            retry=self.clients.retry,
            **options,  # type: ignore[arg-type]
        )

    async def blob_names(self, prefix: str = "") -> list[str]:
        container = self.clients.container(self.names.large_messages_container)
        return sorted([b.name async for b in container.list_blobs(name_starts_with=prefix or None)])
