"""One look at an Azure task hub's queues and leases (``HubSample``): what the hub gauges
and the scale advice judge. Costs one table query and two requests per queue."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from durable_azstorage.azure.partitioning.lease_table import describe_partitions, queue_backlog
from durable_azstorage.azure.storage.clients import StorageClients
from durable_azstorage.azure.storage.naming import TaskHubNames
from durable_azstorage.model.scale import HubSample, PartitionSample


async def sample_hub(
    clients: StorageClients, names: TaskHubNames, max_poll_interval: timedelta
) -> HubSample:
    partitions, (work_items, work_item_age) = await asyncio.gather(
        describe_partitions(clients, names), queue_backlog(clients, names.work_item_queue)
    )
    return HubSample(
        partitions=tuple(
            PartitionSample(
                partition=p.partition,
                messages=p.approximate_messages,
                oldest_message_age=_seconds(p.oldest_message_age),
                owner=p.owner,
            )
            for p in partitions
        ),
        work_items=work_items,
        work_item_age=_seconds(work_item_age),
        max_poll_interval=max_poll_interval,
    )


def _seconds(age: timedelta | None) -> float | None:
    return None if age is None else age.total_seconds()
