"""The task hub's opened resources and the backend's lifecycle, each built in one place.

The ``.aio`` storage clients need a running event loop, so they open on first use (and
again after ``stop()`` closed them); the stores and queues built on them open with them,
together, as one ``HubResources``. ``HubLifecycle`` owns that opening and closing and the
backend's ``running``/``closing`` state; the backend's collaborators hold the one
``HubLifecycle`` object and read ``hub.resources`` when they act, so a restart (new
clients, new stores) reaches them without rewiring.
"""

from __future__ import annotations

import logging

from durable_azstorage.azure.messaging.poison_store import PoisonStore
from durable_azstorage.azure.messaging.queues import MessageQueue, ReceivedMessage
from durable_azstorage.azure.messaging.wakeup import WakeupSignal
from durable_azstorage.azure.settings import AzureStorageSettings
from durable_azstorage.azure.storage.clients import StorageClients
from durable_azstorage.azure.storage.metrics import RequestCounter
from durable_azstorage.azure.storage.payloads import PayloadStore
from durable_azstorage.azure.tracking.execution_archive import ExecutionBlobs
from durable_azstorage.azure.tracking.history_store import HistoryStore
from durable_azstorage.azure.tracking.instance_store import InstanceStore

log = logging.getLogger(__name__)


class HubResources:
    """The stores and queues of one task hub on one set of open clients."""

    def __init__(self, settings: AzureStorageSettings, clients: StorageClients) -> None:
        names = settings.names
        retry = clients.retry
        blobs = clients.container(names.large_messages_container)
        self.clients = clients
        self.payloads = PayloadStore(blobs, retry=retry)
        self.history = HistoryStore(clients.table(names.history_table), self.payloads, retry=retry)
        self.archive = ExecutionBlobs(self.payloads, limit=settings.archived_executions)
        self.instances = InstanceStore(
            clients.table(names.instances_table), self.payloads, retry=retry
        )
        self.poison = PoisonStore(blobs, retry)
        self.wakeup: WakeupSignal | None = None
        if settings.wakeup_interval is not None:
            self.wakeup = WakeupSignal(blobs, retry)
        self.queues: dict[str, MessageQueue] = {
            name: MessageQueue(
                clients.queue(name), self.payloads, retry, max_delay=settings.max_timer_delay
            )
            for name in names.queues
        }

    def queue(self, name: str) -> MessageQueue:
        return self.queues[name]


class HubLifecycle:
    """Opened (clients and ``resources`` exist), running (``start()`` ran, ``stop()`` not
    yet) and closing (``stop()`` began): the backend's lifecycle state, in one object."""

    def __init__(self, settings: AzureStorageSettings, counter: RequestCounter | None) -> None:
        self.settings = settings
        self.clients = StorageClients(settings, counter)
        self.running = False
        self.closing = False
        self._resources: HubResources | None = None

    @property
    def opened(self) -> bool:
        return self._resources is not None

    @property
    def resources(self) -> HubResources:
        if self._resources is None:
            raise RuntimeError("the task hub's clients are not open: call `await open()` first")
        return self._resources

    async def open(self) -> HubResources:
        """Open the clients and build the resources on them; a no-op while open."""
        if self._resources is None:
            await self.clients.open()
            self._resources = HubResources(self.settings, self.clients)
        return self._resources

    async def close(self) -> None:
        resources, self._resources = self._resources, None
        if resources is not None:
            if resources.wakeup is not None:  # a trailing touch signals the last sends
                await resources.wakeup.flush()
            await self.clients.close()

    def queue(self, name: str) -> MessageQueue:
        """One of the hub's queues (``QueueLookup`` for the helpers that take one)."""
        return self.resources.queue(name)

    async def quarantine(
        self, received: ReceivedMessage, reason: str, *, delete: bool = False
    ) -> str:
        """Keep a copy in the poison store (and ``delete`` the queue's); returns its key."""
        record = await self.resources.poison.put(received, reason)
        log.error(
            "poison message %s from %s moved to %s: %s",
            received.message_id,
            received.queue_name,
            record.key,
            reason,
        )
        if delete:
            await self.queue(received.queue_name).delete(received)
        return record.key
