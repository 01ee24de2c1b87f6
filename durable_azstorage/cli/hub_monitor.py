"""``AzureHubMonitor``: partition leases and queue backlogs of an Azure task hub, for the
dashboard's ``HubMonitor`` capability.

The dashboard never imports the Azure provider; this composition-root adapter gives it the
same facts ``hub partitions`` prints
(``azure.partitioning.lease_table.describe_partitions``), through its own storage clients
counted on the backend's request counter, so the overview's request figures include them.
The hub's stored partition count decides which queues exist; it is read once and kept.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from durable_azstorage.azure.partitioning.lease_table import PartitionInfo, describe_partitions
from durable_azstorage.azure.partitioning.queue_sampling import sample_hub
from durable_azstorage.azure.storage.clients import StorageClients
from durable_azstorage.azure.storage.naming import TaskHubNames
from durable_azstorage.azure.tracking.taskhub import TaskHubResources
from durable_azstorage.model.scale import HubSample

if TYPE_CHECKING:
    from durable_azstorage.azure.settings import AzureStorageSettings
    from durable_azstorage.azure.storage.metrics import RequestCounter


class AzureHubMonitor:
    def __init__(
        self, settings: AzureStorageSettings, counter: RequestCounter | None = None
    ) -> None:
        self._clients = StorageClients(settings, counter)
        self._names: TaskHubNames | None = None

    async def _hub_names(self) -> TaskHubNames:
        await self._clients.open()
        if self._names is None:
            info = await TaskHubResources(self._clients).info()
            self._names = TaskHubNames(self._clients.settings.task_hub, info.partition_count)
        return self._names

    async def describe_partitions(self) -> list[PartitionInfo]:
        return await describe_partitions(self._clients, await self._hub_names())

    async def work_item_backlog(self) -> int:
        names = await self._hub_names()
        client = self._clients.queue(names.work_item_queue)
        props = await self._clients.retry.call(client.get_queue_properties)
        return int(props.approximate_message_count or 0)

    async def sample(self) -> HubSample:
        """Backlogs, latencies and owners of every queue, for ``HubGauges``."""
        return await sample_hub(
            self._clients, await self._hub_names(), self._clients.settings.max_poll_interval
        )

    async def close(self) -> None:
        await self._clients.close()
