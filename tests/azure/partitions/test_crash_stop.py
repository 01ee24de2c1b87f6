"""``stop(graceful=False)`` is a crash: the stopped manager never writes a lease row again.

The flaky "partition 0 taken before b's lease expired" of test_simulation came from here: on
Python < 3.12 ``asyncio.wait_for`` returns the inner result instead of raising when the
cancellation arrives just as the inner await finishes. A lease round whose read finished at
the moment ``stop(graceful=False)`` cancelled it ran on, saw the ``_stopping`` flag that stop
had set, and drained and released every partition: the other workers took them at once,
before the "crashed" worker's leases expired. ``ReadEndsAsStopCancels`` makes that timing
certain instead of rare.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from sim_support import Fleet, wait_until

from durable_azstorage.azure.partitioning.lease_table import LeaseRow, LeaseTable
from durable_azstorage.azure.partitioning.manager import PartitionManager
from durable_azstorage.azure.settings import AzureStorageSettings
from durable_azstorage.azure.storage.clients import StorageClients


class ReadEndsAsStopCancels:
    """The manager's lease table, except that the next read, once armed, starts
    ``stop(graceful=False)`` after it has read and lets it cancel the round before the
    round resumes: the round's ``asyncio.wait_for`` then sees a finished read and (before
    Python 3.12) returns it, swallowing the cancellation."""

    def __init__(self, inner: LeaseTable, manager: PartitionManager) -> None:
        self._inner = inner
        self._manager = manager
        self.armed = False
        self.stopping: asyncio.Future[None] | None = None

    async def read_all(self) -> dict[int, LeaseRow]:
        rows = await self._inner.read_all()
        if self.armed:
            self.armed = False
            self.stopping = asyncio.ensure_future(self._manager.stop(graceful=False))
            await asyncio.sleep(0)  # stop() sets its flags and cancels the round now
        return rows

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


@pytest.fixture
async def fleet(
    hub8: StorageClients, fast_settings: Callable[..., AzureStorageSettings]
) -> AsyncIterator[Fleet]:
    fleet = Fleet.on(hub8, fast_settings)
    try:
        yield fleet
    finally:
        await fleet.close()


async def test_a_round_outliving_a_crash_stop_releases_nothing(fleet: Fleet) -> None:
    manager = await fleet.start("a")
    await wait_until(fleet.balanced, 30, "a owns every partition")
    table = ReadEndsAsStopCancels(manager._table, manager)
    manager._table = table  # type: ignore[assignment]
    fleet.members["a"].running = False

    table.armed = True
    await wait_until(lambda: _done(table.stopping), 10, "the round's read started the crash stop")
    await asyncio.sleep(1.5)  # a drain takes 0.3 s; a release would follow at once

    rows = await fleet.rows()
    assert {p: (r.current_owner, r.next_owner, r.is_draining) for p, r in rows.items()} == {
        p: ("a", None, False) for p in rows
    }, "a crashed worker's leases must be left to expire"
    assert fleet.members["a"].drainer.drained == []
    assert manager.owned() == frozenset()


async def _done(stopping: asyncio.Future[None] | None) -> bool:
    return stopping is not None and stopping.done()
