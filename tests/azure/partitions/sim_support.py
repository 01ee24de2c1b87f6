"""Support for running several ``PartitionManager``s in one process against Azurite.

* ``Timeline`` subscribes to every manager and records each change of ``owned()``; it flags
  at once a partition gained while another manager still holds it, or gained while its
  previous owner is still draining it.
* ``FakeDrainer`` stands in for the provider: its ``drain`` checks that the partition already
  left ``owned()`` and simulates in-flight work finishing after ``inflight`` seconds.
* ``Fleet`` starts/stops managers (each with its own ``StorageClients``) and always stops
  them at teardown; ``sample`` cross-checks ``owned()`` with the lease rows while running.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from durable_azstorage.azure.partitioning.lease_table import LeaseRow, LeaseTable
from durable_azstorage.azure.partitioning.manager import PartitionManager
from durable_azstorage.azure.provider import PartitionOwnership
from durable_azstorage.azure.settings import AzureStorageSettings
from durable_azstorage.azure.storage.clients import StorageClients
from durable_azstorage.testing.eventually import eventually_async

PARTITIONS = 8
LEASE = timedelta(seconds=3)
RENEW = timedelta(seconds=1)
ACQUIRE = timedelta(seconds=1)
FAST = timedelta(seconds=0.2)


@dataclass
class Timeline:
    events: list[tuple[float, str, str, int]] = field(default_factory=list)
    holder: dict[int, str] = field(default_factory=dict)
    draining: dict[int, str] = field(default_factory=dict)
    violations: list[str] = field(default_factory=list)

    def watch(self, manager: PartitionManager) -> None:
        state = {"owned": frozenset[int]()}

        def changed(owned: frozenset[int]) -> None:
            now = time.monotonic()
            for p in sorted(state["owned"] - owned):
                self.events.append((now, "lose", manager.me, p))
                if self.holder.get(p) == manager.me:
                    del self.holder[p]
            for p in sorted(owned - state["owned"]):
                self.events.append((now, "gain", manager.me, p))
                other = self.holder.get(p)
                if other is not None:
                    self.violations.append(f"{manager.me} gained {p} while {other} held it")
                if self.draining.get(p, manager.me) != manager.me:
                    self.violations.append(
                        f"{manager.me} gained {p} while {self.draining[p]} was draining it"
                    )
                self.holder[p] = manager.me
            state["owned"] = owned

        manager.subscribe(changed)

    def drain_started(self, me: str, partition: int) -> None:
        self.events.append((time.monotonic(), "drain", me, partition))
        self.draining[partition] = me

    def drain_ended(self, me: str, partition: int) -> None:
        self.events.append((time.monotonic(), "drained", me, partition))
        if self.draining.get(partition) == me:
            del self.draining[partition]

    def count(self, kind: str, worker: str | None = None) -> int:
        return sum(1 for e in self.events if e[1] == kind and worker in (None, e[2]))


class FakeDrainer:
    """The provider's side of a hand-over: stop dequeuing, wait for in-flight work."""

    def __init__(self, timeline: Timeline, inflight: float = 0.3) -> None:
        self.timeline = timeline
        self.inflight = inflight
        self.manager: PartitionManager | None = None
        self.drained: list[int] = []
        self.problems: list[str] = []

    async def drain(self, partition: int) -> None:
        assert self.manager is not None
        me = self.manager.me
        if partition in self.manager.owned():
            self.problems.append(f"{me} asked to drain {partition} while still dequeuing it")
        self.timeline.drain_started(me, partition)
        await asyncio.sleep(self.inflight)  # the in-flight work items finish
        self.drained.append(partition)
        self.timeline.drain_ended(me, partition)


@dataclass
class Member:
    manager: PartitionManager
    clients: StorageClients
    drainer: FakeDrainer
    running: bool = True


class Fleet:
    @classmethod
    def on(cls, hub: StorageClients, make_settings: Callable[..., AzureStorageSettings]) -> Fleet:
        """A fleet on ``hub``'s task hub, reading its lease rows through ``hub``."""
        names = hub.settings.names
        return cls(make_settings, LeaseTable(hub.table(names.partitions_table), names, hub.retry))

    def __init__(
        self,
        make_settings: Callable[..., AzureStorageSettings],
        table: LeaseTable,
        partitions: int = PARTITIONS,
    ) -> None:
        self.make_settings = make_settings
        self.table = table
        self.partitions = partitions
        self.timeline = Timeline()
        self.members: dict[str, Member] = {}

    async def start(
        self,
        name: str,
        connection_string: str | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> PartitionManager:
        settings = self.make_settings(name, connection_string)
        clients = await StorageClients(settings).open()
        drainer = FakeDrainer(self.timeline)
        manager = PartitionManager(settings, clients, drainer, clock=clock, fast_interval=FAST)
        drainer.manager = manager
        _fits_the_seam(manager)
        self.timeline.watch(manager)
        self.members[name] = Member(manager, clients, drainer)
        await manager.start()
        return manager

    async def stop(self, name: str, graceful: bool = True) -> None:
        member = self.members[name]
        member.running = False
        await member.manager.stop(graceful=graceful)

    async def close(self) -> None:
        for member in self.members.values():
            await member.manager.stop(graceful=False)
            await member.clients.close()

    def running(self) -> dict[str, PartitionManager]:
        return {n: m.manager for n, m in self.members.items() if m.running}

    async def rows(self) -> dict[int, LeaseRow]:
        return await self.table.read_all()

    async def balanced(self) -> bool:
        """Every row owned by a running manager that also dequeues it, nothing pending,
        counts within one."""
        running = self.running()
        rows = await self.rows()
        counts = dict.fromkeys(running, 0)
        for p, row in rows.items():
            if row.current_owner not in running or row.next_owner or row.is_draining:
                return False
            if p not in running[row.current_owner].owned():
                return False
            counts[row.current_owner] += 1
        return len(rows) == self.partitions and max(counts.values()) - min(counts.values()) <= 1

    async def sample(self, stop: asyncio.Event) -> int:
        """Until ``stop``: a partition in a manager's ``owned()`` both before and after a read
        of the lease rows must have that manager as CurrentOwner in the read."""
        samples = 0
        while not stop.is_set():
            before = {n: m.owned() for n, m in self.running().items()}
            rows = await self.rows()
            after = {n: m.owned() for n, m in self.running().items()}
            for name in before.keys() & after.keys():
                for p in before[name] & after[name]:
                    owner = rows[p].current_owner if p in rows else None
                    if owner != name:
                        self.timeline.violations.append(
                            f"{name} dequeues {p} but the lease row names {owner}"
                        )
            samples += 1
            await asyncio.sleep(0.05)
        return samples


def _fits_the_seam(manager: PartitionManager) -> PartitionOwnership:
    return manager  # checked by mypy: the manager implements the provider's seam


async def wait_until(predicate: Callable[[], Awaitable[bool]], timeout: float, what: str) -> float:
    """Poll ``predicate`` until true; return the seconds it took; fail naming ``what``."""
    start = time.monotonic()
    await eventually_async(predicate, timeout=timeout, interval=0.05, what=what)
    return time.monotonic() - start


async def wait_balanced(
    table: LeaseTable, worker_ids: set[str], what: str, timeout: float
) -> float:
    """Wait until every lease row is owned by one of ``worker_ids`` with no hand-over
    pending and the counts within one; return the seconds it took (a measured figure)."""

    async def leases() -> dict[int, tuple[str | None, str | None, bool]]:
        return {
            p: (r.current_owner, r.next_owner, r.is_draining)
            for p, r in (await table.read_all()).items()
        }

    def settled(rows: dict[int, tuple[str | None, str | None, bool]]) -> bool:
        counts = dict.fromkeys(worker_ids, 0)
        for owner, next_owner, draining in rows.values():
            if owner not in counts or next_owner or draining:
                return False
            counts[owner] += 1
        return (
            sum(counts.values()) == PARTITIONS and max(counts.values()) - min(counts.values()) <= 1
        )

    start = time.monotonic()
    await eventually_async(
        leases,
        until=settled,
        timeout=timeout,
        interval=0.05,
        what=f"leases balanced over {sorted(worker_ids)} {what} (partition: owner, next, draining)",
    )
    return time.monotonic() - start


def utc(offset: timedelta = timedelta(0)) -> Callable[[], datetime]:
    return lambda: datetime.now(timezone.utc) + offset
