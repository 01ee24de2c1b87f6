"""Lease rows against real Azurite: idempotent creation, ETag races, the hub-info row, describe."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

import pytest
from lease_model import POLICY
from sim_support import PARTITIONS

from durable_azstorage.azure.partitioning.balancer import claimed
from durable_azstorage.azure.partitioning.lease_table import LeaseConflict, LeaseTable
from durable_azstorage.azure.partitioning.manager import PartitionManager, describe_partitions
from durable_azstorage.azure.settings import AzureStorageSettings
from durable_azstorage.azure.storage.clients import StorageClients
from durable_azstorage.azure.tracking.taskhub import INFO_PARTITION_KEY, INFO_ROW_KEY
from durable_azstorage.model.errors import TaskHubNotFoundError

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=timezone.utc)


def lease_table(clients: StorageClients) -> LeaseTable:
    names = clients.settings.names
    return LeaseTable(clients.table(names.partitions_table), names, clients.retry)


async def info_row_etag(clients: StorageClients) -> str:
    entity = await clients.table(clients.settings.names.partitions_table).get_entity(
        INFO_PARTITION_KEY, INFO_ROW_KEY
    )
    return str(entity.metadata["etag"])


async def test_rows_are_created_once_even_by_racing_workers(hub8: StorageClients) -> None:
    info_etag = await info_row_etag(hub8)
    table = lease_table(hub8)
    assert await table.read_all() == {}  # the hub-info row is not a lease row

    results = await asyncio.gather(*(lease_table(hub8).ensure_rows() for _ in range(5)))
    rows = results[0]
    assert sorted(rows) == list(range(PARTITIONS))
    assert [r.queue for r in rows.values()] == list(hub8.settings.names.control_queues)
    assert all(
        r.current_owner is None and r.expires_at is None and not r.is_draining
        for r in rows.values()
    )
    assert all(result == rows for result in results)  # nobody overwrote anybody's row

    claim = await table.write(claimed(rows[3], "w1", NOW, POLICY))
    assert (await table.ensure_rows())[3] == claim  # existing rows are never touched
    assert await info_row_etag(hub8) == info_etag


async def test_conditional_write_has_exactly_one_winner(hub8: StorageClients) -> None:
    table = lease_table(hub8)
    row = (await table.ensure_rows())[0]
    outcomes = await asyncio.gather(
        *(table.write(claimed(row, f"w{i}", NOW, POLICY)) for i in range(8)),
        return_exceptions=True,
    )
    winners = [o for o in outcomes if not isinstance(o, BaseException)]
    losers = [o for o in outcomes if isinstance(o, BaseException)]
    assert len(winners) == 1 and len(losers) == 7
    assert all(isinstance(e, LeaseConflict) and "412" in str(e) for e in losers)
    stored = await table.read(0)
    assert stored == winners[0]
    assert stored is not None and stored.current_owner is not None
    assert (stored.expires_at, stored.owned_since) == (NOW + POLICY.lease_interval, NOW)

    # the stale ETag stays stale: the same losing decision cannot be replayed
    with pytest.raises(LeaseConflict, match="hub|control-00"):
        await table.write(claimed(row, "late", NOW, POLICY))


async def test_cleared_columns_are_removed_and_values_round_trip(hub8: StorageClients) -> None:
    table = lease_table(hub8)
    row = (await table.ensure_rows())[5]
    busy = await table.write(
        row.but(
            current_owner="a",
            next_owner="b",
            owned_since=NOW,
            last_renewal=NOW,
            expires_at=NOW + timedelta(seconds=30),
            is_draining=True,
        )
    )
    assert await table.read(5) == busy
    free = await table.write(
        busy.but(current_owner=None, next_owner=None, expires_at=None, is_draining=False)
    )
    stored = await table.read(5)
    assert stored == free and stored.next_owner is None and stored.expires_at is None


async def test_writes_need_an_etag_and_an_existing_row(hub8: StorageClients) -> None:
    table = lease_table(hub8)
    row = (await table.ensure_rows())[1]
    with pytest.raises(LeaseConflict, match="no ETag"):
        await table.write(row.but(etag=None))
    entity = await hub8.table(hub8.settings.names.partitions_table).get_entity("", row.queue)
    await hub8.table(hub8.settings.names.partitions_table).delete_entity(entity)
    with pytest.raises(LeaseConflict, match="404"):
        await table.write(row.but(current_owner="a"))
    assert await table.read(1) is None


async def test_missing_table_is_a_clear_error(azure_settings: AzureStorageSettings) -> None:
    async with StorageClients(azure_settings) as clients:
        with pytest.raises(TaskHubNotFoundError, match=azure_settings.task_hub):
            await lease_table(clients).ensure_rows()


async def test_describe_partitions_shows_owner_backlog_and_age(hub8: StorageClients) -> None:
    names = hub8.settings.names
    table = lease_table(hub8)
    rows = await table.ensure_rows()
    await table.write(claimed(rows[1], "worker-1", NOW, POLICY))
    queue = hub8.queue(names.control_queues[1])
    for i in range(3):
        await queue.send_message(f"m{i}")
    await hub8.queue(names.control_queues[2]).send_message("hidden", visibility_timeout=60)
    later = datetime.now(timezone.utc) + timedelta(seconds=5)

    infos = await describe_partitions(hub8, names, now=later)
    assert [i.partition for i in infos] == list(range(PARTITIONS))
    one, two, zero = infos[1], infos[2], infos[0]
    assert (one.owner, one.expires_at, one.approximate_messages) == (
        "worker-1",
        NOW + POLICY.lease_interval,
        3,
    )
    assert one.oldest_message_age is not None
    assert timedelta(seconds=4) <= one.oldest_message_age <= timedelta(seconds=30)
    assert (two.approximate_messages, two.oldest_message_age) == (1, None)  # invisible: no age
    assert (zero.owner, zero.approximate_messages, zero.oldest_message_age) == (None, 0, None)


async def test_manager_on_a_missing_hub_fails_to_start_clearly(
    azure_settings: AzureStorageSettings,
) -> None:
    class NoDrain:
        async def drain(self, partition: int) -> None:
            raise AssertionError("never called")

    async with StorageClients(azure_settings) as clients:
        manager = PartitionManager(azure_settings, clients, NoDrain())
        with pytest.raises(TaskHubNotFoundError, match=azure_settings.task_hub):
            await manager.start()
        assert manager.owned() == frozenset()
        await manager.stop()  # never started: nothing to do
