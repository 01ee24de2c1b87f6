"""Queues with visibility for the in-memory backend, modelled on Azure Storage queues.

A stored message is invisible until ``invisible_until``: delayed messages (timers, scheduled
starts), messages hidden by a receive (the lock) and abandoned messages all use the same
timestamp, exactly like a queue's visibility timeout. Each receive bumps ``dequeue_count``.
Messages are kept as codec text so that the backend never hands out the caller's objects
and anything unserializable fails at send time, as it would on Azure.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar

from durable_azstorage.model.history import ExecutionStarted
from durable_azstorage.model.messages import TaskMessage
from durable_azstorage.serialization.codec import decode_message, encode_message

_ids = itertools.count(1)
T = TypeVar("T")


@dataclass(slots=True, eq=False)
class StoredMessage:
    """One queued message; ``version`` invalidates stale heap entries when visibility moves.

    An activity result handed over in process (as the Azure backend does for a partition it
    owns) is ``carried`` by its request: the request stays hidden in the work-item queue until
    the episode that applies the result deletes both, and the result is void once the request
    was received again (``ActivityQueue.still_carries``). ``answers`` is the id of the request
    a result sent through the queue answers (recovery finds the episode by it).
    """

    text: str
    invisible_until: datetime
    is_start: bool
    id: int = field(default_factory=lambda: next(_ids))
    dequeue_count: int = 0
    version: int = 0
    carrier: Carrier | None = None
    answers: int | None = None

    @classmethod
    def of(cls, message: TaskMessage, *, now: datetime) -> StoredMessage:
        visible_at = message.visible_at()
        return cls(
            text=encode_message(message),
            invisible_until=max(now, visible_at) if visible_at is not None else now,
            is_start=isinstance(message.event, ExecutionStarted),
        )

    def decode(self) -> TaskMessage:
        return decode_message(self.text)


@dataclass(slots=True, eq=False, frozen=True)
class Carrier:
    """The request carrying a result, and its delivery count when it began to."""

    request: StoredMessage
    deliveries: int


class VisibilityQueue:
    """Messages ordered by when they become visible (a heap with lazy deletion).

    ``ordered=False`` skips the heap for a queue whose order is kept elsewhere (the control
    queues share one heap); ``first_visible``/``next_visible_at`` then are unavailable.
    """

    def __init__(self, *, ordered: bool = True) -> None:
        self._ordered = ordered
        self._heap: list[tuple[datetime, int, int, StoredMessage]] = []
        self._live: dict[int, StoredMessage] = {}

    def __len__(self) -> int:
        return len(self._live)

    def __iter__(self) -> Iterator[StoredMessage]:
        return iter(self._live.values())

    def push(self, message: StoredMessage) -> None:
        self._live[message.id] = message
        self._push_entry(message)

    def hide_until(self, message: StoredMessage, when: datetime) -> None:
        """Move ``message``'s visibility (receive, renew, abandon)."""
        if message.id not in self._live:
            return
        message.invisible_until = when
        message.version += 1
        self._push_entry(message)

    def remove(self, message: StoredMessage) -> bool:
        return self._live.pop(message.id, None) is not None

    def contains(self, message: StoredMessage) -> bool:
        return message.id in self._live

    def contains_id(self, message_id: int) -> bool:
        return message_id in self._live

    def first_visible(self, now: datetime) -> StoredMessage | None:
        """The visible message that became visible first (ties: enqueue order)."""
        top = self._top()
        return top if top is not None and top.invisible_until <= now else None

    def visible(self, now: datetime) -> list[StoredMessage]:
        """Every visible message, in enqueue order."""
        return sorted((m for m in self._live.values() if m.invisible_until <= now), key=_by_id)

    def next_visible_at(self) -> datetime | None:
        top = self._top()
        return top.invisible_until if top is not None else None

    def _push_entry(self, message: StoredMessage) -> None:
        if not self._ordered:
            return
        entry = (message.invisible_until, message.id, message.version, message)
        heapq.heappush(self._heap, entry)

    def _top(self) -> StoredMessage | None:
        if not self._ordered:
            raise RuntimeError("this queue keeps no visibility order")
        while self._heap:
            _, msg_id, version, message = self._heap[0]
            if self._live.get(msg_id) is message and message.version == version:
                return message
            heapq.heappop(self._heap)
        return None


def backlog(messages: Iterable[StoredMessage], now: datetime) -> tuple[int, datetime | None]:
    """How many messages are queued, and since when the longest-waiting visible one has been
    visible (None: none is), as an Azure queue's length and peeked head tell it."""
    count = 0
    since: datetime | None = None
    for message in messages:
        count += 1
        if message.invisible_until <= now and (since is None or message.invisible_until < since):
            since = message.invisible_until
    return count, since


def _by_id(message: StoredMessage) -> int:
    return message.id


class Signal:
    """Wakes every waiting coroutine, whichever thread or event loop it runs on.

    Register *before* checking for work (``waiter = signal.waiter()``), then
    ``await waiter.wait(timeout)``: a notification in between is not lost.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiters: set[_Waiter] = set()

    def waiter(self) -> _Waiter:
        waiter = _Waiter(self)
        with self._lock:
            self._waiters.add(waiter)
        return waiter

    def notify_all(self) -> None:
        with self._lock:
            waiters, self._waiters = self._waiters, set()
        for waiter in waiters:
            waiter.wake()

    async def poll(
        self,
        check: Callable[[], tuple[bool, T | None, datetime | None]],
        seconds_until: Callable[[datetime], float | None],
        timeout: float,
    ) -> T | None:
        """Call ``check() -> (closed, found, wake_at)`` until it finds something, is closed,
        or ``timeout`` real seconds pass; in between sleep until notified (enqueue, release,
        clock jump) or until ``wake_at`` (the next visibility deadline) may have come."""
        deadline = time.monotonic() + max(0.0, timeout)
        while True:
            waiter = self.waiter()
            closed, found, wake_at = check()
            if closed or found is not None:
                waiter.close()
                return found
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                waiter.close()
                return None
            if wake_at is not None:
                until = seconds_until(wake_at)
                if until is not None:
                    remaining = min(remaining, max(until, 0.001))
            await waiter.wait(remaining)

    def _discard(self, waiter: _Waiter) -> None:
        with self._lock:
            self._waiters.discard(waiter)


class _Waiter:
    __slots__ = ("_signal", "_loop", "_future")

    def __init__(self, signal: Signal) -> None:
        self._signal = signal
        self._loop = asyncio.get_running_loop()
        self._future: asyncio.Future[None] = self._loop.create_future()

    def wake(self) -> None:
        try:
            self._loop.call_soon_threadsafe(self._resolve)
        except RuntimeError:  # the waiter's loop is closed: nobody is waiting any more
            pass

    def _resolve(self) -> None:
        if not self._future.done():
            self._future.set_result(None)

    def close(self) -> None:
        """Stop listening without waiting (the caller found work)."""
        self._signal._discard(self)
        if not self._future.done():
            self._future.cancel()

    async def wait(self, timeout: float | None) -> None:
        """Return when notified or after ``timeout`` seconds (None: no limit)."""
        try:
            if timeout is None or timeout > 0:
                await asyncio.wait({self._future}, timeout=timeout)
        finally:
            self.close()


class LockToken:
    """A work item's lock token: opaque to callers, compared by identity.

    ``owner`` is the backend that issued it (a token from elsewhere is foreign), ``key`` the
    instance id or message id it locks, ``etag`` the instance's history version at lock time.
    """

    __slots__ = ("owner", "key", "etag")

    def __init__(self, owner: object, key: str | int, etag: int) -> None:
        self.owner = owner
        self.key = key
        self.etag = etag

    def __repr__(self) -> str:
        return f"<lock {id(self):x}>"


@dataclass(slots=True, eq=False)
class Lock:
    """A held lock: the token, until when it holds, and the messages it hides."""

    token: LockToken
    expires_at: datetime
    messages: list[StoredMessage] = field(default_factory=list)


def uncount(messages: list[StoredMessage]) -> None:
    """Take back the delivery a deferred abandon gave back (``abandon_*(deferred=True)``):
    like Azure's ``SelfCausedDeliveries``, it must not count toward poison."""
    for message in messages:
        message.dequeue_count = max(0, message.dequeue_count - 1)
