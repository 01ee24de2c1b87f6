"""Where a simulation keeps its state: the in-memory backend, or Azure Storage (``azurite``).

The simulation reads and writes as the client through ``client`` and runs its workers on
``workers``. ``crash()`` is a worker process dying: the in-memory backend *is* the storage, so
nothing of it dies (the crashed worker's locks simply expire); an Azure backend object holds
process state (receive buffers, locks, sessions), so it is stopped and replaced.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Protocol

from durable_azstorage.backend.memory import InMemoryBackend
from durable_azstorage.backend.protocol import Backend
from durable_azstorage.testing.torture.clock import SkewClock, Time

DeleteAudit = Callable[[str, str, object, str], None]


class Storage(Protocol):
    """One run's backends."""

    client: Backend
    workers: Backend
    resends_on_recovery: bool
    """Whether finishing a crashed episode sends its messages again even if they were sent
    (Azure re-derives them from history; the in-memory backend keeps an exact outbox)."""

    async def open(self) -> None:
        """Create what the run needs (a task hub) and start the workers' backend."""

    async def crash(self) -> bool:
        """A worker process died; True if ``workers`` was replaced (all held items are gone)."""
        ...

    async def close(self) -> None: ...


class MemoryStorage:
    """One ``InMemoryBackend`` on the simulation's ``SkewClock``, shared by everyone."""

    def __init__(self, clock: SkewClock, audit: DeleteAudit) -> None:
        backend = InMemoryBackend(
            clock=clock, lock_timeout=timedelta(seconds=clock.lock_timeout), delete_audit=audit
        )
        self.client: Backend = backend
        self.workers: Backend = backend
        self.resends_on_recovery = False

    async def open(self) -> None:
        await self.workers.start()

    async def crash(self) -> bool:
        return False

    async def close(self) -> None:
        await self.workers.stop()


StorageFactory = Callable[[Time, DeleteAudit], "Storage"]


def memory_storage(time: Time, audit: DeleteAudit) -> Storage:
    if not isinstance(time, SkewClock):
        raise TypeError("the in-memory backend runs on the simulation's SkewClock")
    return MemoryStorage(time, audit)
