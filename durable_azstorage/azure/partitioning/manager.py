"""``PartitionManager``: spreads the control-queue partitions over the workers of a task hub.

It implements the provider's ``PartitionOwnership`` seam (``owned()``, ``subscribe()``) on top
of the lease rows (``lease_table``) and the pure rules of ``balancer``. One loop reads all
lease rows (one table query), lets ``balancer.decide`` choose, and executes the writes:

* every ``lease_renew_interval`` it renews the owned rows;
* every ``lease_acquire_interval`` it claims free/expired rows and requests hand-overs (when
  it must ask, it first reads the candidate queues' lengths, so it asks for the busiest);
* every ``fast_interval`` while a hand-over involving this worker is under way (it waits for a
  row released to it, or drains one) — so a hand-over takes about a drain plus one fast
  interval, not an acquire interval;
* at once after a lost ETag race (412): the decision was taken on a stale row.

A second task, the watchdog, removes a partition from ``owned()`` when its lease is about to
expire (``ExpiresAt - skew_margin`` by this worker's clock) although renewals keep failing:
the worker stops dequeuing before anybody else may claim the partition. ``owned()`` also
re-checks on every call. That guarantee needs the workers' clocks to agree within the skew
margin; every lease write measures this clock against the storage service's (the commit time
in the row's ETag), exposes it as ``clock_skew`` and logs a warning when it exceeds the margin.

Hand-over: when another worker asks for a partition (``NextOwner``), the manager removes it
from ``owned()`` and notifies subscribers, marks the row draining (renewing it meanwhile),
awaits ``PartitionDrainer.drain(partition)`` (bounded by ``drain_timeout``) and releases the
row to the requester. ``stop()`` does the same for every partition (``graceful=False`` drops
everything locally and leaves the leases to expire, as a crash would).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import threading
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Protocol

from durable_azstorage.azure.partitioning.balancer import (
    Action,
    ActionKind,
    Decision,
    LeasePolicy,
    decide,
    may_dequeue,
    released,
)
from durable_azstorage.azure.partitioning.lease_table import (
    LeaseConflict,
    LeaseRow,
    LeaseTable,
    PartitionInfo,
    describe_partitions,
)
from durable_azstorage.azure.settings import AzureStorageSettings
from durable_azstorage.azure.storage.clients import StorageClients

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
OwnershipCallback = Callable[[frozenset[int]], None]

MAX_IMMEDIATE_REREADS = 10  # consecutive 412s re-read at once; then wait (a hot row, not a bug)


class PartitionDrainer(Protocol):
    """What the manager needs from the provider to hand a partition over safely."""

    async def drain(self, partition: int) -> None:
        """Stop dequeuing ``partition`` and return when none of its work is in flight.

        Called after the partition left ``owned()`` and subscribers were notified. It must
        stop that queue's receive loop (if still running), make received-but-unstarted
        messages visible again at once (so the next owner need not wait out their visibility
        timeout), and return once every work item of the partition has completed or been
        abandoned. It may be cancelled (``drain_timeout``); then the partition is released
        anyway and a late commit is stopped by the history ETag.
        """


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


class _OwnerNames:
    """Owner names in use by this process's running managers, per hub.

    The default ``worker_id`` is ``<hostname>-<pid>``, so two workers of one hub in one
    process (two ``TaskHubWorker``s, a worker and a sidecar) would share a name and take each
    other's leases for their own; the second one to start gets ``<name>-2`` instead.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._taken: set[tuple[str, str]] = set()

    def claim(self, hub: str, base: str) -> str:
        with self._lock:
            name, n = base, 1
            while (hub, name) in self._taken:
                n += 1
                name = f"{base}-{n}"
            self._taken.add((hub, name))
            return name

    def release(self, hub: str, name: str) -> None:
        with self._lock:
            self._taken.discard((hub, name))


_OWNER_NAMES = _OwnerNames()


class PartitionManager:
    """Lease-based ownership of this hub's partitions for one worker (``settings.worker_id``,
    made unique among the running managers of this process).

    ``skew_margin`` defaults to ``min(5 s, (lease_interval - lease_renew_interval) / 2)``;
    ``fast_interval`` to ``min(1 s, lease_acquire_interval)``; ``drain_timeout`` to 60 s.
    """

    def __init__(
        self,
        settings: AzureStorageSettings,
        clients: StorageClients,
        drainer: PartitionDrainer,
        *,
        clock: Clock | None = None,
        skew_margin: timedelta | None = None,
        fast_interval: timedelta | None = None,
        drain_timeout: timedelta = timedelta(seconds=60),
    ) -> None:
        self._base_name = self.me = settings.worker_id
        self.names = settings.names
        self._clock = clock or _utcnow
        self._drainer = drainer
        self._clients = clients
        self._table = LeaseTable(
            clients.table(self.names.partitions_table), self.names, clients.retry
        )
        if skew_margin is None:
            skew_margin = min(
                timedelta(seconds=5), (settings.lease_interval - settings.lease_renew_interval) / 2
            )
        self.policy = LeasePolicy(settings.lease_interval, skew_margin)
        self._renew_every = settings.lease_renew_interval.total_seconds()
        self._acquire_every = settings.lease_acquire_interval.total_seconds()
        self._fast = (
            fast_interval or min(timedelta(seconds=1), settings.lease_acquire_interval)
        ).total_seconds()
        self._op_timeout = max(self._renew_every, 1.0)
        self._drain_timeout = drain_timeout.total_seconds()
        self._rows: dict[int, LeaseRow] = {}
        self._written_at: dict[int, int] = {}  # partition -> write sequence number
        self._seq = 0
        self._drains: dict[int, asyncio.Task[None]] = {}
        self._owned: frozenset[int] = frozenset()
        self._callbacks: list[OwnershipCallback] = []
        self._wake = asyncio.Event()
        self._stopping = False  # graceful stop under way: drain and release everything
        self._halted = False  # stopped: no lease write any more (as after a crash)
        self._tasks: list[asyncio.Task[None]] = []
        self.clock_skew: timedelta | None = None  # this clock minus storage's, last estimate

    # ------------------------------------------------------------------ PartitionOwnership

    def owned(self) -> frozenset[int]:
        """The partitions this worker may dequeue now (re-checked against lease expiry)."""
        self._refresh_owned()
        return self._owned

    def subscribe(self, callback: OwnershipCallback) -> None:
        """Call ``callback(owned)`` whenever ``owned()`` changes (on the manager's loop)."""
        self._callbacks.append(callback)

    @property
    def rows(self) -> dict[int, LeaseRow]:
        """The lease rows as last read or written by this manager (diagnostics)."""
        return dict(self._rows)

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Create missing lease rows, make a first claim at once, then run the loops."""
        if self._tasks:
            return
        self._stopping = self._halted = False
        self.me = _OWNER_NAMES.claim(self.names.task_hub.lower(), self._base_name)
        if self.me != self._base_name:
            log.warning(
                "another worker of this process owns partitions of task hub %r as %r; this one "
                "uses %r (set worker_id to name them yourself)",
                self.names.task_hub,
                self._base_name,
                self.me,
            )
        self._apply_read(await self._table.ensure_rows(), started=self._seq)
        self._tasks = [
            asyncio.ensure_future(self._run()),
            asyncio.ensure_future(self._watchdog()),
        ]

    async def stop(self, graceful: bool = True) -> None:
        """Graceful: drain and release every partition, withdraw pending requests, then stop
        (bounded by ``drain_timeout`` + one lease interval). ``graceful=False``: stop at once
        and keep the rows as they are; the leases expire (what a crash does).

        Either way the manager writes no lease row once this returns, and ``graceful=False``
        writes none from its start: on Python < 3.12 ``asyncio.wait_for`` (used by ``_sleep``
        and the storage timeouts) can swallow a cancellation that coincides with its inner
        wait finishing, so a round may run on after the cancel; ``_halted`` makes it a no-op.
        (It used to set ``_stopping``, so such a round drained and released every partition
        of a "crashed" worker before its leases expired.)
        """
        if not self._tasks:
            return
        if graceful:
            self._stopping = True
            self._wake.set()
            deadline = (
                asyncio.get_running_loop().time()
                + self._drain_timeout
                + (self.policy.lease_interval.total_seconds())
            )
            while asyncio.get_running_loop().time() < deadline and self._still_involved():
                await asyncio.sleep(min(self._fast, 0.1))
        self._halted = True
        tasks = self._tasks
        self._tasks = []
        # Cancel until done, drains started by a round that outlived a cancel included.
        while pending := [t for t in (*tasks, *self._drains.values()) if not t.done()]:
            for task in pending:
                task.cancel()
            await asyncio.wait(pending, timeout=0.5)
        for task in [*tasks, *self._drains.values()]:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._drains.clear()
        self._refresh_owned()
        _OWNER_NAMES.release(self.names.task_hub.lower(), self.me)

    def _still_involved(self) -> bool:
        return bool(self._drains) or any(
            r.current_owner == self.me or r.next_owner == self.me for r in self._rows.values()
        )

    # ------------------------------------------------------------------ the loop

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        next_renew = next_acquire = loop.time()
        immediate = 0
        while True:
            self._wake.clear()  # a wake-up during this round shortens the coming sleep
            started = loop.time()
            renew_due, acquire_due = started >= next_renew, started >= next_acquire
            fast = conflict = failed = False
            try:
                rows = await self._read_all()
                decision = self._decide(rows, acquire_due, renew_due)
                if any(a.kind is ActionKind.REQUEST for a in decision.actions):
                    backlog = await self._backlog(decision.actions)  # only while imbalanced
                    decision = self._decide(rows, acquire_due, renew_due, backlog)
                conflict = await self._execute(decision.actions)
                fast = decision.fast
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # storage outage: the watchdog protects, retry soon
                failed = True
                log.warning("partition manager %s: lease round failed: %r", self.me, exc)
            if not failed and not conflict:  # a lost race is retried at once, still due:
                # else a renewal landing first every time could starve a requester forever.
                # Jitter keeps workers started together from acting in lock-step.
                if renew_due:
                    next_renew = started + self._renew_every * random.uniform(0.85, 1.0)
                if acquire_due:
                    next_acquire = started + self._acquire_every * random.uniform(0.9, 1.1)
            delay = min(next_renew, next_acquire) - loop.time()
            immediate = immediate + 1 if conflict else 0
            if conflict and immediate <= MAX_IMMEDIATE_REREADS:
                delay = 0.0
            elif failed or fast or self._drains or self._stopping:
                delay = min(delay, self._fast)
            await self._sleep(delay)

    def _decide(
        self,
        rows: dict[int, LeaseRow],
        acquire: bool,
        renew: bool,
        backlog: dict[int, int] | None = None,
    ) -> Decision:
        return decide(
            rows,
            self.me,
            self._clock(),
            self.policy,
            draining=frozenset(self._drains),
            acquire=acquire,
            renew=renew,
            stopping=self._stopping,
            backlog=backlog,
        )

    async def _backlog(self, actions: tuple[Action, ...]) -> dict[int, int]:
        """Approximate lengths of the queues of the owners asked for a hand-over."""
        victims = {a.row.current_owner for a in actions if a.kind is ActionKind.REQUEST}
        partitions = [p for p, r in self._rows.items() if r.current_owner in victims]

        async def length(p: int) -> int:
            queue = self._clients.queue(self.names.control_queues[p])
            props = await self._clients.retry.call(queue.get_queue_properties)
            return int(props.approximate_message_count or 0)

        lengths = await asyncio.wait_for(
            asyncio.gather(*(length(p) for p in partitions), return_exceptions=True),
            self._op_timeout,
        )
        return {p: n for p, n in zip(partitions, lengths, strict=False) if isinstance(n, int)}

    async def _sleep(self, seconds: float) -> None:
        if seconds <= 0:
            return
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)

    async def _read_all(self) -> dict[int, LeaseRow]:
        started = self._seq
        rows = await asyncio.wait_for(self._table.read_all(), self._op_timeout)
        return self._apply_read(rows, started)

    def _apply_read(self, rows: dict[int, LeaseRow], started: int) -> dict[int, LeaseRow]:
        """Cache what was read, except rows this manager wrote after the read began (the
        read may predate that write). Returns the rows to decide on."""
        for p, row in rows.items():
            if self._written_at.get(p, -1) <= started:
                self._rows[p] = row
        self._refresh_owned()
        return {p: self._rows[p] for p in rows}

    async def _execute(self, actions: tuple[Action, ...]) -> bool:
        """Run the writes concurrently; True if any lost an ETag race. Nothing once halted."""
        if self._halted:
            return False
        for action in actions:
            if action.kind is ActionKind.DRAIN:
                self._begin_drain(action.partition)
        results = await asyncio.gather(*(self._write(a.row, a.kind) for a in actions))
        return not all(results)

    async def _write(self, row: LeaseRow, kind: ActionKind) -> bool:
        try:
            stored = await asyncio.wait_for(self._table.write(row), self._op_timeout)
        except LeaseConflict as exc:
            log.debug("partition manager %s: %s lost a race: %s", self.me, kind.value, exc)
            return False
        self._seq += 1
        self._written_at[row.partition] = self._seq
        self._rows[row.partition] = stored
        self._check_skew(self._table.server_time)
        if kind in (ActionKind.CLAIM, ActionKind.REQUEST, ActionKind.WITHDRAW):
            log.info("partition manager %s: %s %s", self.me, kind.value, row.queue)
        self._refresh_owned()
        return True

    def _check_skew(self, server_time: datetime | None) -> None:
        """Warn when this clock is further from the storage service's than ``skew_margin``:
        lease safety assumes workers' clocks agree within the margin. The estimate (taken at
        the response, against the commit time in the ETag) errs by at most the latency."""
        if server_time is None:
            return
        skew = self._clock() - server_time
        too_far = abs(skew) > self.policy.skew_margin
        was_too_far = self.clock_skew is not None and abs(self.clock_skew) > self.policy.skew_margin
        self.clock_skew = skew
        if too_far and not was_too_far:
            log.warning(
                "partition manager %s: this clock differs from the storage service's by about "
                "%.1f s, more than the lease skew margin (%.1f s); two workers could dequeue one "
                "partition. Synchronise the clock (NTP) or raise the margin.",
                self.me,
                skew.total_seconds(),
                self.policy.skew_margin.total_seconds(),
            )

    # ------------------------------------------------------------------ draining

    def _begin_drain(self, partition: int) -> None:
        if partition in self._drains:
            return
        row = self._rows.get(partition)
        log.info(
            "partition manager %s: draining %s (requested by %s)",
            self.me,
            row.queue if row else partition,
            (row.next_owner if row else None) or "shutdown",
        )
        self._drains[partition] = asyncio.ensure_future(self._drain_and_release(partition))
        self._refresh_owned()  # stop dequeuing before anything else happens

    async def _drain_and_release(self, partition: int) -> None:
        try:
            try:
                await asyncio.wait_for(self._drainer.drain(partition), self._drain_timeout)
            except asyncio.TimeoutError:
                log.warning(
                    "partition manager %s: draining partition %d took over %.0f s; releasing it "
                    "anyway (a late commit is rejected by the history ETag)",
                    self.me,
                    partition,
                    self._drain_timeout,
                )
            except Exception as exc:
                log.warning("partition manager %s: drain of %d failed: %r", self.me, partition, exc)
            await self._release(partition)
        finally:
            self._drains.pop(partition, None)
            self._wake.set()

    async def _release(self, partition: int) -> None:
        """Release the row (to its requester, if any) until it is no longer ours (or the
        manager is halted: a stopped worker leaves its rows to expire)."""
        while not self._halted:
            row = self._rows.get(partition)
            if row is None or row.current_owner != self.me:
                return
            try:
                if await self._write(released(row, self._clock(), self.policy), ActionKind.DRAIN):
                    log.info(
                        "partition manager %s: released %s to %s",
                        self.me,
                        row.queue,
                        row.next_owner or "anybody",
                    )
                    return
                fresh = await asyncio.wait_for(self._table.read(partition), self._op_timeout)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning(
                    "partition manager %s: release of %d failed: %r", self.me, partition, exc
                )
                await asyncio.sleep(self._fast)
                continue
            if fresh is None:
                return
            self._seq += 1
            self._written_at[partition] = self._seq
            self._rows[partition] = fresh

    # ------------------------------------------------------------------ ownership

    def _refresh_owned(self) -> None:
        now = self._clock()
        owned = frozenset(
            p
            for p, row in self._rows.items()
            if self._tasks
            and not self._stopping
            and not self._halted
            and p not in self._drains
            and may_dequeue(row, self.me, now, self.policy)
        )
        if owned == self._owned:
            return
        lost, gained = self._owned - owned, owned - self._owned
        self._owned = owned
        log.info(
            "partition manager %s: owns %s (+%s -%s)",
            self.me,
            sorted(owned),
            sorted(gained),
            sorted(lost),
        )
        for callback in list(self._callbacks):
            try:
                callback(owned)
            except Exception:
                log.exception("partition manager %s: ownership callback failed", self.me)

    async def _watchdog(self) -> None:
        """Drop partitions whose lease is about to lapse, even while storage is unreachable."""
        while True:
            self._refresh_owned()
            now = self._clock()
            deadlines = [
                (row.expires_at - self.policy.skew_margin - now).total_seconds()
                for p, row in self._rows.items()
                if p in self._owned and row.expires_at is not None
            ]
            await asyncio.sleep(max(0.01, min([self._fast, *deadlines])))


__all__ = ["PartitionDrainer", "PartitionInfo", "PartitionManager", "describe_partitions"]
