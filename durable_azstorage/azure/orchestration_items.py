"""Orchestration work items: from buffered control messages to a lock, and back.

``lock_next`` turns the next ready instance's buffered messages (``MessageBuffer``) into a
work item: redelivered consumed messages trigger recovery (``Checkpoint.recover``),
``message_filter`` drops zombies and duplicates and defers events for Pending instances,
over-delivered messages are copied to the poison store. Histories come from the
extended-session cache (``sessions``) when this process committed the instance last.

A lock is the invisibility of the instance's messages: ``renew`` extends it, ``complete``
runs the checkpoint protocol (``checkpoint``) while it still holds, ``abandon`` makes the
messages visible again after the delay. An expired lock may not commit. When nobody in this
process asks for work any more, buffered messages go back to their queue after
``IDLE_RELEASE_AFTER``, so another worker polling the partition gets them now.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from durable_azstorage.azure.checkpoint import Checkpoint
from durable_azstorage.azure.control_receiver import MessageBuffer
from durable_azstorage.azure.history_store import HistoryStore, LoadedHistory
from durable_azstorage.azure.instance_store import InstanceStore
from durable_azstorage.azure.message_filter import filter_messages, kind_of
from durable_azstorage.azure.queues import MessageQueue, ReceivedMessage
from durable_azstorage.azure.sessions import SessionCache
from durable_azstorage.azure.settings import AzureStorageSettings
from durable_azstorage.backend.protocol import (
    OrchestrationCommit,
    OrchestrationWorkItem,
)
from durable_azstorage.model.errors import ConcurrencyConflictError, LockLostError
from durable_azstorage.model.state import InstanceState

log = logging.getLogger(__name__)

IDLE_RELEASE_AFTER = 0.5  # seconds without a lock_next caller

QueueLookup = Callable[[str], MessageQueue]


@dataclass(eq=False, slots=True)
class _OrchLock:
    instance_id: str
    messages: list[ReceivedMessage]
    loaded: LoadedHistory
    fresh: bool  # an ExecutionStarted replaces the stored execution: rows restart at 0
    known_state: InstanceState | None
    released: bool = False

    def expires_at(self) -> datetime | None:
        times = [m.next_visible_on for m in self.messages if m.next_visible_on is not None]
        return min(times) if times else None


async def hide(queue: QueueLookup, messages: Sequence[ReceivedMessage], delay: timedelta) -> None:
    """Make ``messages`` visible again after ``delay`` (0: now); stale receipts are skipped."""

    async def one(m: ReceivedMessage) -> None:
        try:
            await queue(m.queue_name).set_visibility(m, delay)
        except Exception as exc:  # stale receipt: it is visible again anyway
            log.info("could not re-hide message %s: %s", m.message_id, exc)

    await asyncio.gather(*(one(m) for m in messages))


class OrchestrationWorkItems:
    """The orchestration half of ``AzureStorageBackend``.

    The stores and queues are looked up at each call: the backend opens them lazily, and
    again after a restart, while the locks held here outlive both.
    """

    def __init__(
        self,
        settings: AzureStorageSettings,
        buffer: MessageBuffer,
        sessions: SessionCache,
        checkpoint: Checkpoint,
        *,
        history: Callable[[], HistoryStore],
        instances: Callable[[], InstanceStore],
        queue: QueueLookup,
        quarantine: Callable[[ReceivedMessage, str], Awaitable[str]],
        running: Callable[[], bool],
    ) -> None:
        self.settings = settings
        self._buffer = buffer
        self._sessions = sessions
        self._checkpoint = checkpoint
        self._history = history
        self._instances = instances
        self._queue = queue
        self._quarantine = quarantine
        self._running = running
        self._locks: dict[str, _OrchLock] = {}
        self._idle_release: asyncio.Future[None] | None = None

    def stop(self) -> None:
        """Cancel a pending give-back of buffered messages (the backend is stopping)."""
        if self._idle_release is not None:
            self._idle_release.cancel()

    # --- locking ---------------------------------------------------------------------------
    async def lock_next(self, timeout: float) -> OrchestrationWorkItem | None:
        if not self._running():
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
            if not self._buffer.has_demand and self._idle_release is None:
                self._idle_release = asyncio.ensure_future(self._release_when_idle())

    async def _release_when_idle(self) -> None:
        """Give buffered messages back to the queue when nobody here wants work any more
        (a worker at its concurrency limit, or one that stopped asking): other workers polling
        the same partition get them now instead of after their visibility timeout."""
        try:
            await asyncio.sleep(IDLE_RELEASE_AFTER)
            if self._buffer.has_demand or not self._running():
                return
            released = self._buffer.take_unlocked()
            if released:
                log.debug("releasing %d buffered message(s): no demand", len(released))
                await hide(self._queue, released, timedelta(0))
        finally:
            self._idle_release = None

    async def _next(
        self, loop: asyncio.AbstractEventLoop, deadline: float
    ) -> OrchestrationWorkItem | None:
        while self._running():
            ready = self._buffer.take_ready()
            if ready is not None:
                instance_id, messages = ready
                try:
                    item = await self._prepare(instance_id, messages)
                except Exception:
                    log.exception("orchestration %r: preparing a work item failed", instance_id)
                    await hide(self._queue, messages, timedelta(seconds=1))
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

    async def _load(self, instance_id: str) -> tuple[LoadedHistory, InstanceState | None]:
        session = self._sessions.get(instance_id)
        status = session.sentinel.runtime_status if session is not None else None
        if session is not None and not (status is not None and status.is_terminal):
            # an ended instance may have been rewound by a client: read the authority
            return LoadedHistory(events=session.events, sentinel=session.sentinel), session.state
        return await self._history().load(instance_id), None

    async def _prepare(
        self, instance_id: str, messages: list[ReceivedMessage]
    ) -> OrchestrationWorkItem | None:
        messages.sort(key=lambda m: m.sort_key)
        loaded, known_state = await self._load(instance_id)
        sentinel = loaded.sentinel
        recovered = [m for m in messages if m.message_id in sentinel.consumed_message_ids]
        if recovered:
            await self._checkpoint.recover(instance_id, loaded, recovered)
            messages = [m for m in messages if m not in recovered]
            known_state = None
        row: list[InstanceState | None] = []

        async def instance_row() -> InstanceState | None:
            if not row:
                found = await self._instances().get(instance_id, fetch_payloads=False)
                row.append(found[0] if found is not None else None)
            return row[0]

        filtered = await filter_messages(
            sentinel, messages, instance_row=instance_row,
            max_delay=self.settings.max_timer_delay, history=loaded.events,
        )
        fresh, start = filtered.fresh, filtered.start
        for received, reason in filtered.discard:
            log.warning(
                "discarding %s message %s for instance %r: %s",
                kind_of(received), received.message_id, instance_id, reason,
            )
        await asyncio.gather(*(self._queue(m.queue_name).delete(m) for m, _ in filtered.discard))
        if filtered.defer:
            await hide(self._queue, filtered.defer, filtered.defer_delay)
        if not filtered.keep:
            self._buffer.release(instance_id)
            return None
        keep = filtered.keep
        if start is not None:
            keep = [start, *(m for m in keep if m is not start)]
        limit = self.settings.max_dequeue_count
        quarantined = [
            await self._quarantine(
                received, f"delivered {received.dequeue_count} times (max_dequeue_count={limit})"
            )
            for received in keep
            if received.dequeue_count > limit
        ]
        lock = _OrchLock(
            instance_id=instance_id,
            messages=keep,
            loaded=loaded,
            fresh=fresh,
            known_state=None if fresh else known_state,
        )
        await self._refresh_visibility(lock)
        self._locks[instance_id] = lock
        decoded = tuple(m.message for m in keep if m.message is not None)
        return OrchestrationWorkItem(
            instance_id=instance_id,
            history=() if fresh else loaded.events,
            messages=decoded,
            lock_token=lock,
            dequeue_count=max(m.dequeue_count for m in keep),
            quarantined=tuple(quarantined),
        )

    async def _refresh_visibility(self, lock: _OrchLock) -> None:
        """Messages that waited long in the buffer get a full visibility timeout again."""
        timeout = self.settings.control_queue_visibility_timeout
        now = datetime.now(timezone.utc)
        stale = [
            i for i, m in enumerate(lock.messages)
            if m.next_visible_on is not None and m.next_visible_on - now < timeout / 2
        ]
        for i in stale:
            received = lock.messages[i]
            lock.messages[i] = await self._queue(received.queue_name).set_visibility(
                received, timeout
            )

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
            self._release(lock)
            raise LockLostError(
                f"the lock on instance {lock.instance_id!r} expired at {expires.isoformat()}"
            )

    async def _raise_if_expired(self, lock: _OrchLock) -> None:
        """An expired lock may not commit: ConcurrencyConflictError if another writer
        committed meanwhile (the ETag moved), else LockLostError."""
        expires = self._expired(lock)
        if expires is None:
            return
        self._release(lock)
        self._sessions.discard(lock.instance_id)
        current = await self._history().load(lock.instance_id)
        if current.sentinel.etag != lock.loaded.sentinel.etag:
            raise ConcurrencyConflictError(
                f"instance {lock.instance_id!r} was changed by another writer after this work "
                "item's lock expired; nothing was committed or sent"
            )
        raise LockLostError(
            f"the lock on instance {lock.instance_id!r} expired at {expires.isoformat()}; "
            "nothing was committed, its messages will be delivered again"
        )

    def _release(self, lock: _OrchLock) -> None:
        if not lock.released:
            lock.released = True
            self._locks.pop(lock.instance_id, None)
            self._buffer.release(lock.instance_id)

    async def renew(self, item: OrchestrationWorkItem) -> None:
        lock = self._own(item)
        self._release_if_expired(lock)
        timeout = self.settings.control_queue_visibility_timeout
        try:
            lock.messages = [
                await self._queue(m.queue_name).set_visibility(m, timeout) for m in lock.messages
            ]
        except Exception as exc:
            self._release(lock)
            raise LockLostError(
                f"could not renew the lock on instance {item.instance_id!r}: {exc}"
            ) from exc

    async def complete(self, item: OrchestrationWorkItem, commit: OrchestrationCommit) -> None:
        lock = self._own(item)
        await self._raise_if_expired(lock)
        await self._checkpoint.commit(
            item.instance_id, commit, loaded=lock.loaded, fresh=lock.fresh,
            known_state=lock.known_state, messages=lock.messages,
        )
        self._release(lock)

    async def abandon(self, item: OrchestrationWorkItem, *, delay: timedelta | None = None) -> None:
        lock = self._own(item)
        self._release_if_expired(lock)
        try:
            await hide(self._queue, lock.messages, delay or timedelta(0))
        finally:
            self._release(lock)


__all__ = ["IDLE_RELEASE_AFTER", "OrchestrationWorkItems", "hide"]
