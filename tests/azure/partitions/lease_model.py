"""A deterministic model of N workers running ``balancer.decide`` against one lease table.

The table keeps a version per row (the ETag); a write applies only if the writer's row still
has the stored version, exactly like the conditional ``ReplaceEntity`` the manager uses. Each
worker has its own clock offset (skew), its own cached rows (what it last read or wrote), a
set of partitions it is draining (a drain takes ``drain_steps`` of its turns) and acts only
when scheduled — a worker that is not scheduled for a while is a paused or cut-off worker.

``dequeuers(p)`` is the safety check: the workers that, by their own cached row and clock,
would receive from partition ``p`` right now (the manager's ``owned()``).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from durable_azstorage.azure.partitioning.balancer import (
    ActionKind,
    LeasePolicy,
    decide,
    may_dequeue,
    released,
)
from durable_azstorage.azure.partitioning.lease_table import LeaseRow

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
POLICY = LeasePolicy(lease_interval=timedelta(seconds=3), skew_margin=timedelta(seconds=1))


@dataclass
class Worker:
    name: str
    skew: timedelta = timedelta(0)
    cache: dict[int, LeaseRow] = field(default_factory=dict)
    draining: dict[int, int] = field(default_factory=dict)  # partition -> turns left
    stopping: bool = False
    alive: bool = True
    gone: bool = False  # finished a graceful stop


class LeaseModel:
    def __init__(self, partitions: int, policy: LeasePolicy = POLICY, drain_steps: int = 2) -> None:
        self.policy = policy
        self.now = T0
        self.version = 0
        self.drain_steps = drain_steps
        self.table: dict[int, LeaseRow] = {
            p: LeaseRow(partition=p, queue=f"hub-control-{p:02d}", etag=self._next_etag())
            for p in range(partitions)
        }
        self.workers: dict[str, Worker] = {}
        self.writes = 0

    def _next_etag(self) -> str:
        self.version += 1
        return str(self.version)

    def add(self, name: str, skew: float = 0.0) -> Worker:
        worker = self.workers[name] = Worker(name, timedelta(seconds=skew))
        return worker

    def put(self, row: LeaseRow) -> None:
        """Set a row directly (a starting state)."""
        self.table[row.partition] = row.but(etag=self._next_etag())

    def write(self, worker: Worker, row: LeaseRow) -> bool:
        if self.table[row.partition].etag != row.etag:
            return False
        stored = row.but(etag=self._next_etag())
        self.table[row.partition] = stored
        worker.cache[row.partition] = stored
        self.writes += 1
        return True

    def clock(self, worker: Worker) -> datetime:
        return self.now + worker.skew

    def turn(self, worker: Worker) -> None:
        """One loop iteration of ``worker``: finish drains, read everything, decide, write."""
        if not worker.alive or worker.gone:
            return
        for p in list(worker.draining):
            worker.draining[p] -= 1
            if worker.draining[p] <= 0:
                del worker.draining[p]
                row = self.table[p]
                if row.current_owner == worker.name:
                    self.write(worker, released(row, self.clock(worker), self.policy))
                else:
                    worker.cache[p] = row
        worker.cache = dict(self.table)
        decision = decide(
            self.table,
            worker.name,
            self.clock(worker),
            self.policy,
            draining=frozenset(worker.draining),
            stopping=worker.stopping,
        )
        for action in decision.actions:
            if action.kind is ActionKind.DRAIN:
                worker.draining[action.partition] = self.drain_steps
            self.write(worker, action.row)
        if (
            worker.stopping
            and not worker.draining
            and not any(
                r.current_owner == worker.name or r.next_owner == worker.name
                for r in self.table.values()
            )
        ):
            worker.gone = True

    def dequeuers(self, partition: int) -> set[str]:
        return {
            w.name
            for w in self.workers.values()
            if w.alive
            and not w.stopping
            and not w.gone
            and partition not in w.draining
            and partition in w.cache
            and may_dequeue(w.cache[partition], w.name, self.clock(w), self.policy)
        }

    def assert_exclusive(self) -> None:
        for p in self.table:
            holders = self.dequeuers(p)
            assert len(holders) <= 1, f"partition {p} dequeued by {holders} at {self.now}"

    def run(self, turns: int, step: float | None = None, rng: random.Random | None = None) -> None:
        """Round-robin (or random, with ``rng``) turns, checking exclusivity after each.

        By default time advances so that each worker gets a turn about every 0.75 s (a
        "renew interval" well inside the lease minus the skew margin).
        """
        names = sorted(self.workers)
        step = step if step is not None else 0.75 / len(names)
        for i in range(turns):
            name = rng.choice(names) if rng else names[i % len(names)]
            self.turn(self.workers[name])
            self.assert_exclusive()
            self.now += timedelta(seconds=rng.uniform(0, 2 * step) if rng else step)
            self.assert_exclusive()

    def counts(self) -> dict[str, int]:
        live = [w.name for w in self.workers.values() if w.alive and not w.stopping]
        counts = dict.fromkeys(live, 0)
        for row in self.table.values():
            if row.current_owner in counts:
                counts[row.current_owner] += 1
        return counts

    def settled(self) -> bool:
        """Every row owned (and dequeued) by a live worker, counts within one, nothing pending."""
        counts = self.counts()
        if not counts:
            return False
        return (
            all(
                r.current_owner in counts
                and r.next_owner is None
                and not r.is_draining
                and self.dequeuers(p) == {r.current_owner}
                for p, r in self.table.items()
            )
            and max(counts.values()) - min(counts.values()) <= 1
        )
