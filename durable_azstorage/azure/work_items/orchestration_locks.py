"""Orchestration work items: from buffered control messages to a lock, and back.

``lock_next`` turns the next ready instance's buffered messages (``MessageBuffer``) into a
work item: redelivered consumed messages trigger recovery (``Checkpoint.recover``),
``message_filter`` drops zombies and duplicates and defers events for Pending instances,
over-delivered messages are copied to the poison store. Histories come from the
extended-session cache (``sessions``) when this process committed the instance last.

A lock is the invisibility of the instance's messages: ``renew`` extends it, ``complete``
runs the checkpoint protocol (``checkpoint``) while it still holds, ``abandon`` makes the
messages visible again after the delay. An expired lock may not commit.

Buffered messages stay here while nobody asks for work (a worker at its concurrency limit):
a partition the partition manager gave this process is received by nobody else, so giving
them back would help nobody and only raise their delivery counts. Only when partitions are
shared (``shared_partitions``: explicit ownership, several backends receiving one queue) do
they go back after ``IDLE_RELEASE_AFTER``, so a competing backend gets them now. Deliveries
this process causes itself (a give-back, a deferred event, a message whose visibility ran
out in the buffer) are recorded in ``deliveries`` and do not count toward
``max_dequeue_count``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from azure.core.exceptions import HttpResponseError

from durable_azstorage.azure.hub import HubLifecycle
from durable_azstorage.azure.messaging.control_receiver import MessageBuffer
from durable_azstorage.azure.messaging.deliveries import SelfCausedDeliveries
from durable_azstorage.azure.messaging.queues import MessageQueue, ReceivedMessage
from durable_azstorage.azure.settings import AzureStorageSettings
from durable_azstorage.azure.storage.retry import is_transient
from durable_azstorage.azure.tracking.history_rows import EMPTY_SENTINEL
from durable_azstorage.azure.tracking.history_store import LoadedHistory
from durable_azstorage.azure.tracking.sessions import SessionCache
from durable_azstorage.azure.work_items.checkpoint import Checkpoint, CommitProgress
from durable_azstorage.azure.work_items.local_carriers import LocalCarriers, item_task_id
from durable_azstorage.azure.work_items.message_filter import Filtered, filter_messages, kind_of
from durable_azstorage.backend.protocol import (
    OrchestrationCommit,
    OrchestrationWorkItem,
)
from durable_azstorage.model.entities import is_entity_id
from durable_azstorage.model.errors import ConcurrencyConflictError, LockLostError
from durable_azstorage.model.state import InstanceState

log = logging.getLogger(__name__)

QueueLookup = Callable[[str], MessageQueue]

IDLE_RELEASE_AFTER = 0.5  # seconds without a lock_next caller (shared partitions only)

PREPARE_RETRY_DELAY = timedelta(seconds=1)
"""First back-off after preparing a work item failed; doubles per failed delivery (≤ 64 s)."""


@dataclass(eq=False, slots=True)
class _OrchLock:
    instance_id: str
    messages: list[ReceivedMessage]
    loaded: LoadedHistory
    fresh: bool  # an ExecutionStarted replaces the stored execution: rows restart at 0
    known_state: InstanceState | None
    released: bool = False
    progress: CommitProgress = field(default_factory=CommitProgress)

    def expires_at(self) -> datetime | None:
        times = [m.next_visible_on for m in self.messages if m.next_visible_on is not None]
        return min(times) if times else None


async def hide(
    queue: QueueLookup,
    messages: Sequence[ReceivedMessage],
    delay: timedelta,
    *,
    carriers: LocalCarriers,
    deferred: bool = False,
    committed: bool = False,
) -> None:
    """Make ``messages`` visible again after ``delay`` (0: now); stale receipts are skipped.

    An item riding on a carrier (a local activity's result) has no message of its own: it is
    sent to its control queue like a carried result, and its carrier stops standing for it.
    But when the episode that held it ``committed`` its history (a later step failed), the
    carrier itself is given back (``LocalCarriers.release``): recovering it re-sends that
    episode's messages, which may have consumed nothing else that could come back.

    A result delivered in process (``carried_for``) goes to its control queue, hidden for
    ``delay``, and its carrier, the activity request, is deleted: made visible, the request
    would run the activity again instead of returning its result. ``deferred`` records a
    deferral in each other message (``MessageQueue.defer``); a carried result is sent anew,
    so it has no deliveries to discount.
    """

    async def one(m: ReceivedMessage) -> None:
        target = queue(m.queue_name)
        try:
            if m.carrier is not None and committed:
                await carriers.release(m.carrier, delay)
            elif m.carrier is not None and m.message is not None:
                await queue(m.home).send(m.message, delay=delay)
                await carriers.resolve(m.message.instance.instance_id, m.carrier, item_task_id(m))
            elif m.carried_for is not None and m.message is not None:
                await queue(m.carried_for).send(m.message, delay=delay, answers=m.message_id)
                await target.consume(m)
            elif deferred:
                await target.defer(m, delay)
            else:
                await target.set_visibility(m, delay)
        except Exception as exc:  # stale receipt: it is visible again anyway
            log.info("could not re-hide message %s: %s", m.message_id, exc)

    await asyncio.gather(*(one(m) for m in messages))


class OrchestrationLocks:
    """The orchestration half of ``AzureStorageBackend``.

    The stores and queues are read from ``hub.resources`` at each call: the backend opens
    them on first use, and again after a restart, while the locks held here outlive both.
    """

    def __init__(
        self,
        settings: AzureStorageSettings,
        buffer: MessageBuffer,
        sessions: SessionCache,
        checkpoint: Checkpoint,
        deliveries: SelfCausedDeliveries,
        *,
        shared_partitions: bool,
        hub: HubLifecycle,
        carriers: LocalCarriers,
    ) -> None:
        self.settings = settings
        self._buffer = buffer
        self._sessions = sessions
        self._checkpoint = checkpoint
        self._deliveries = deliveries
        self._hub = hub
        self._carriers = carriers
        self._returning: set[asyncio.Future[None]] = set()
        self._locks: dict[str, _OrchLock] = {}
        self._shared_partitions = shared_partitions
        self._idle_release: asyncio.Future[None] | None = None

    def stop(self) -> None:
        """Cancel a pending give-back of buffered messages (the backend is stopping)."""
        if self._idle_release is not None:
            self._idle_release.cancel()

    # --- locking ---------------------------------------------------------------------------
    async def lock_next(self, timeout: float) -> OrchestrationWorkItem | None:
        if not self._hub.running:
            await asyncio.sleep(min(timeout, 0.05))
            return None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(0.0, timeout)
        # Demand resumes the receivers but does not reset their idle back-off: the worker's
        # dispatcher asks again every second, and waking here made an idle worker poll every
        # control queue several times a second (bench cost: 1,366 requests/min idle).
        self._buffer.add_waiter()
        try:
            return await self._next(loop, deadline)
        finally:
            self._buffer.remove_waiter()
            idle = not self._buffer.has_demand and self._idle_release is None
            if idle and self._shared_partitions:
                self._idle_release = asyncio.ensure_future(self._release_when_idle())

    async def _release_when_idle(self) -> None:
        """Give buffered messages back when nobody here wants work any more: a competing
        backend receiving the same shared partition gets them now."""
        try:
            await asyncio.sleep(IDLE_RELEASE_AFTER)
            if self._buffer.has_demand or not self._hub.running:
                return
            released = self._buffer.take_unlocked()
            for message in released:
                self._deliveries.caused(message.message_id)
            if released:
                log.debug("releasing %d buffered message(s): no demand", len(released))
                await hide(self._hub.queue, released, timedelta(0), carriers=self._carriers)
        finally:
            self._idle_release = None

    async def _next(
        self, loop: asyncio.AbstractEventLoop, deadline: float
    ) -> OrchestrationWorkItem | None:
        while self._hub.running:
            ready = self._buffer.take_ready()
            if ready is not None:
                instance_id, messages = ready
                try:
                    item = await self._prepare(instance_id, messages)
                except Exception as exc:
                    if is_transient(exc):  # a storage outage is not the messages' fault
                        for message in messages:
                            self._deliveries.caused(message.message_id)
                    failed = max(self._deliveries.failed_deliveries(m) for m in messages)
                    delivered = max(m.dequeue_count for m in messages)  # the back-off: all of them
                    delay = PREPARE_RETRY_DELAY * 2 ** min(delivered - 1, 6)
                    log.exception(
                        "orchestration %r: preparing a work item failed (delivery %d); "
                        "retrying in %.0f s",
                        instance_id,
                        failed,
                        delay.total_seconds(),
                    )
                    await hide(self._hub.queue, messages, delay, carriers=self._carriers)
                    self._buffer.release(instance_id)
                    item = None
                if item is not None:
                    return item
                continue
            remaining = deadline - loop.time()
            if remaining <= 0:
                return None
            await self._buffer.wait(remaining)
        return None

    async def _load(
        self, instance_id: str, messages: Sequence[ReceivedMessage]
    ) -> tuple[LoadedHistory, InstanceState | None, bool]:
        """The instance's committed history, the Instances row last written by this process
        (None when unknown) and whether both came from the session cache (or, for the first
        delivery of a client's start of a new instance, need no read: see ``_unborn``)."""
        session = self._sessions.get(instance_id)
        status = session.sentinel.runtime_status if session is not None else None
        if session is not None and not (status is not None and status.is_terminal):
            # an ended instance may have been rewound by a client: read the authority
            loaded = LoadedHistory(events=session.events, sentinel=session.sentinel)
            return loaded, session.state, True
        if _unborn(messages):
            return LoadedHistory(events=(), sentinel=EMPTY_SENTINEL), None, True
        return await self._hub.resources.history.load(instance_id), None, False

    async def _prepare(
        self, instance_id: str, messages: list[ReceivedMessage]
    ) -> OrchestrationWorkItem | None:
        messages = await self._refresh_visibility(sorted(messages, key=lambda m: m.sort_key))
        if not messages:
            self._buffer.release(instance_id)
            return None
        loaded, known_state, cached = await self._load(instance_id, messages)
        row: list[InstanceState | None] = []

        async def instance_row() -> InstanceState | None:
            if not row:
                found = await self._hub.resources.instances.get(instance_id, fetch_payloads=False)
                row.append(found[0] if found is not None else None)
            return row[0]

        recovered, filtered = await self._triage(instance_id, loaded, messages, instance_row)
        if cached and (recovered or filtered.discard):
            # Never recover or discard on cached state alone: an entry cached in an earlier
            # tenure of the partition may be stale. Read the authority and decide again.
            self._sessions.discard(instance_id)
            loaded, known_state = await self._hub.resources.history.load(instance_id), None
            recovered, filtered = await self._triage(instance_id, loaded, messages, instance_row)
        if recovered:
            await self._recover(instance_id, loaded, recovered)
            known_state = None
        fresh, start = filtered.fresh, filtered.start
        for received, reason in filtered.discard:
            log.warning(
                "discarding %s message %s for instance %r: %s",
                kind_of(received),
                received.message_id,
                instance_id,
                reason,
            )
        discarded = [m for m, _ in filtered.discard]
        await asyncio.gather(
            *(self._hub.queue(m.queue_name).delete(m) for m in self._carriers.deletable(discarded))
        )
        await self._carriers.settle(instance_id, discarded, ended=False)
        if filtered.defer:
            for deferred in filtered.defer:
                self._deliveries.caused(deferred.message_id)
            await hide(
                self._hub.queue, filtered.defer, filtered.defer_delay, carriers=self._carriers
            )
        if not filtered.keep:
            self._buffer.release(instance_id)
            return None
        keep = filtered.keep
        if start is not None:
            keep = [start, *(m for m in keep if m is not start)]
        limit = self.settings.max_dequeue_count
        failed = {m.message_id: self._deliveries.failed_deliveries(m) for m in keep}
        quarantined = [
            await self._hub.quarantine(
                received,
                f"delivered {failed[received.message_id]} times (max_dequeue_count={limit})",
            )
            for received in keep
            if failed[received.message_id] > limit
        ]
        lock = _OrchLock(
            instance_id=instance_id,
            messages=keep,
            loaded=loaded,
            fresh=fresh,
            known_state=None if fresh else known_state,
        )
        self._locks[instance_id] = lock
        decoded = tuple(m.message for m in keep if m.message is not None)
        return OrchestrationWorkItem(
            instance_id=instance_id,
            history=() if fresh else loaded.events,
            messages=decoded,
            lock_token=lock,
            dequeue_count=max(failed.values()),
            quarantined=tuple(quarantined),
        )

    async def _triage(
        self,
        instance_id: str,
        loaded: LoadedHistory,
        messages: list[ReceivedMessage],
        instance_row: Callable[[], Awaitable[InstanceState | None]],
    ) -> tuple[list[ReceivedMessage], Filtered]:
        """Split ``messages`` into those a committed episode already consumed (to recover)
        and the filter's verdict on the rest."""
        # Episode marks never match; carriers of activities run in process are recovered too.
        carriers = loaded.sentinel.local_tasks.carriers
        consumed = frozenset(loaded.sentinel.consumed_message_ids) | carriers
        recovered = [m for m in messages if not consumed.isdisjoint(m.consumed_as)]
        rest = [m for m in messages if consumed.isdisjoint(m.consumed_as)]
        filtered = await filter_messages(
            loaded.sentinel,
            rest,
            instance_row=instance_row,
            max_delay=self.settings.max_timer_delay,
            history=loaded.events,
            entity=is_entity_id(instance_id),
        )
        return recovered, filtered

    async def _recover(
        self, instance_id: str, loaded: LoadedHistory, recovered: list[ReceivedMessage]
    ) -> None:
        """Finish the committed episodes that consumed ``recovered``; a recovery that keeps
        failing is poison like any other delivery (it would otherwise re-send forever).

        The recovery is always tried first: deliveries whose holder died count as failed
        too, and a message past the limit that way (workers crashing, or other processes'
        give-backs this one cannot tell apart) would otherwise be set aside without its
        episode's messages ever being sent, leaving the instance waiting for answers to
        requests nobody received (the torture test on a loaded machine, seed 53)."""
        limit = self.settings.max_dequeue_count
        failed = max(self._deliveries.failed_deliveries(m) for m in recovered)
        try:
            await self._checkpoint.recover(instance_id, loaded, recovered)
        except Exception:
            if failed <= limit:
                raise
            log.exception("orchestration %r: recovery failed past the delivery limit", instance_id)
            for received in recovered:
                await self._hub.quarantine(
                    received,
                    f"recovery of its committed episode failed {failed} times "
                    f"(max_dequeue_count={limit})",
                )
            await asyncio.gather(*(self._hub.queue(m.queue_name).delete(m) for m in recovered))

    async def _refresh_visibility(self, messages: list[ReceivedMessage]) -> list[ReceivedMessage]:
        """Messages that waited long in the buffer get a full visibility timeout again.

        One whose visibility already ran out and that our receiver took again (a stale pop
        receipt) is left out: its fresh copy is in the buffer and comes with the next work
        item; that delivery was this process's own doing.
        """
        timeout = self.settings.control_queue_visibility_timeout
        now = datetime.now(timezone.utc)
        held: list[ReceivedMessage] = []
        for received in messages:
            visible = received.next_visible_on
            if visible is None or visible - now >= timeout / 2:
                held.append(received)
                continue
            try:
                held.append(
                    await self._hub.queue(received.queue_name).set_visibility(received, timeout)
                )
            except HttpResponseError as exc:
                if exc.status_code not in (400, 404):
                    raise
                log.info("message %s reappeared while buffered; taken again", received.message_id)
                self._deliveries.caused(received.message_id)
        return held

    # --- the held lock ---------------------------------------------------------------------
    def _own(self, item: OrchestrationWorkItem) -> _OrchLock:
        lock = item.lock_token
        if not isinstance(lock, _OrchLock) or self._locks.get(item.instance_id) is not lock:
            raise LockLostError(
                f"the lock on instance {item.instance_id!r} is not held by this backend "
                "(released, expired or foreign); its messages will be delivered again"
            )
        return lock

    def _expired(self, lock: _OrchLock) -> datetime | None:
        expires = lock.expires_at()
        if expires is not None and expires <= datetime.now(timezone.utc):
            return expires
        return None

    def _release_if_expired(self, lock: _OrchLock) -> None:
        """An expired lock may not be renewed or abandoned: release it, LockLostError."""
        expires = self._expired(lock)
        if expires is not None:
            self._release(lock, orphaned=True)
            raise LockLostError(
                f"the lock on instance {lock.instance_id!r} expired at {expires.isoformat()}"
            )

    async def _raise_if_expired(self, lock: _OrchLock) -> None:
        """An expired lock may not commit: ConcurrencyConflictError if another writer
        committed meanwhile (the ETag moved), else LockLostError."""
        expires = self._expired(lock)
        if expires is None:
            return
        self._release(lock, orphaned=True)
        self._sessions.discard(lock.instance_id)
        current = await self._hub.resources.history.load(lock.instance_id)
        if current.sentinel.etag != lock.loaded.sentinel.etag:
            raise ConcurrencyConflictError(
                f"instance {lock.instance_id!r} was changed by another writer after this work "
                "item's lock expired; nothing was committed or sent"
            )
        raise LockLostError(
            f"the lock on instance {lock.instance_id!r} expired at {expires.isoformat()}; "
            "nothing was committed, its messages will be delivered again"
        )

    def _release(self, lock: _OrchLock, *, orphaned: bool = False) -> None:
        """``orphaned``: the lock ends without a commit or a give-back (it expired): its local
        items, which no redelivery would bring back, go through their control queue."""
        if not lock.released:
            lock.released = True
            self._locks.pop(lock.instance_id, None)
            self._buffer.release(lock.instance_id)
            local = [m for m in lock.messages if m.carrier is not None]
            if orphaned and local:
                returning = asyncio.ensure_future(
                    hide(
                        self._hub.queue,
                        local,
                        timedelta(0),
                        carriers=self._carriers,
                        committed=lock.progress.history_committed,
                    )
                )
                self._returning.add(returning)
                returning.add_done_callback(self._returning.discard)

    async def renew(self, item: OrchestrationWorkItem) -> None:
        lock = self._own(item)
        self._release_if_expired(lock)
        timeout = self.settings.control_queue_visibility_timeout
        try:
            queue = self._hub.queue
            lock.messages = [  # a local item rides on its carrier, renewed elsewhere
                m if m.carrier is not None else await queue(m.queue_name).set_visibility(m, timeout)
                for m in lock.messages
            ]
        except Exception as exc:
            self._release(lock, orphaned=True)
            raise LockLostError(
                f"could not renew the lock on instance {item.instance_id!r}: {exc}"
            ) from exc

    async def complete(self, item: OrchestrationWorkItem, commit: OrchestrationCommit) -> None:
        lock = self._own(item)
        await self._raise_if_expired(lock)
        await self._checkpoint.commit(
            item.instance_id,
            commit,
            loaded=lock.loaded,
            fresh=lock.fresh,
            known_state=lock.known_state,
            messages=lock.messages,
            progress=lock.progress,
        )
        self._release(lock)

    async def abandon(
        self, item: OrchestrationWorkItem, *, delay: timedelta | None = None, deferred: bool = False
    ) -> None:
        lock = self._own(item)
        self._release_if_expired(lock)
        try:
            # deferred: given back by choice, recorded in the messages, not a failure
            await hide(
                self._hub.queue,
                lock.messages,
                delay or timedelta(0),
                carriers=self._carriers,
                deferred=deferred,
                committed=lock.progress.history_committed,
            )
        finally:
            self._release(lock)


def _unborn(messages: Sequence[ReceivedMessage]) -> bool:
    """The batch holds the first delivery of a client's start of an instance the client
    created: it has no history, so none is read. Only a first delivery: had anything been
    committed (a commit raced, or crashed before deleting the start), the start comes back
    with a higher count and the history is read. A wrong guess cannot commit: step 1 expects
    no sentinel and loses the ETag race if one exists."""
    return any(m.new_instance and m.dequeue_count == 1 for m in messages)


__all__ = ["IDLE_RELEASE_AFTER", "OrchestrationLocks", "hide"]
