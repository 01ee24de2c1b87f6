"""Two workers of one hub in one process share the default worker_id (``<host>-<pid>``); the
partition manager gives the second a distinct owner name so they split the partitions
instead of each believing it owns all of them."""

from __future__ import annotations

from collections.abc import Callable

from sim_support import PARTITIONS

from durable_azstorage.azure.partitioning.manager import PartitionManager
from durable_azstorage.azure.provider import AzureStorageBackend
from durable_azstorage.azure.settings import AzureStorageSettings
from durable_azstorage.azure.storage.clients import StorageClients
from durable_azstorage.testing.eventually import eventually_async


async def test_two_backends_with_the_same_worker_id_split_the_partitions(
    hub8: StorageClients, fast_settings: Callable[..., AzureStorageSettings]
) -> None:
    shared = fast_settings("same-name")  # as if both took the default <host>-<pid>
    first, second = AzureStorageBackend(shared), AzureStorageBackend(shared)
    await first.start()
    await second.start()
    try:
        a, b = _manager(first), _manager(second)
        assert (a.me, b.me) == ("same-name", "same-name-2")
        await eventually_async(
            lambda: (a.owned(), b.owned()),
            until=lambda o: len(o[0]) == len(o[1]) == PARTITIONS // 2,
            timeout=30,
            interval=0.1,
            what="an even split (owned by first, second)",
        )
        assert a.owned().isdisjoint(b.owned())
        assert {b.rows[p].current_owner for p in b.owned()} == {"same-name-2"}
        assert {a.rows[p].current_owner for p in a.owned()} == {"same-name"}
    finally:
        await second.stop()
        await first.stop()

    restarted = AzureStorageBackend(shared)  # names are released on stop: the base is free
    await restarted.start()
    try:
        assert _manager(restarted).me == "same-name"
    finally:
        await restarted.stop()


def _manager(backend: AzureStorageBackend) -> PartitionManager:
    assert backend.partition_manager is not None
    return backend.partition_manager
