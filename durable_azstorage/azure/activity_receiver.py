"""Activity requests from the shared ``{hub}-workitems`` queue (competing consumers).

Receives on demand (no background loop: a client-only process never takes work), a few
messages per request, and hands them out one per ``lock_next_activity`` call. A prefetched
request whose visibility is running out before it is handed out is dropped (it reappears).
Idle polling backs off from 50 ms to ``max_poll_interval``; ``wake()`` (this process sent an
activity request) polls at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta, timezone

from durable_azstorage.azure.queues import MessageQueue, ReceivedMessage

log = logging.getLogger(__name__)

MIN_POLL_INTERVAL = 0.05


class ActivityReceiver:
    """Pulls requests from the work-item queue for ``next()`` callers."""

    def __init__(
        self,
        queue: MessageQueue,
        *,
        prefetch: int,
        visibility_timeout: timedelta,
        max_poll_interval: timedelta,
        on_undecodable: Callable[[ReceivedMessage], Awaitable[None]],
    ) -> None:
        self.queue = queue
        self._prefetch = max(1, min(32, prefetch))
        self._visibility = visibility_timeout
        self._max_poll = max(MIN_POLL_INTERVAL, max_poll_interval.total_seconds())
        self._on_undecodable = on_undecodable
        self._buffer: deque[ReceivedMessage] = deque()
        self._fetching = asyncio.Lock()
        self._wake = asyncio.Event()
        self._interval = MIN_POLL_INTERVAL
        self._next_poll = 0.0  # monotonic time before which an empty queue is not polled again
        self.stopped = False

    def wake(self) -> None:
        self._wake.set()

    async def next(self, timeout: float) -> ReceivedMessage | None:
        """The next fresh request, waiting up to ``timeout`` seconds."""
        deadline = time.monotonic() + max(0.0, timeout)
        while not self.stopped:
            message = self._pop_fresh()
            if message is not None:
                return message
            async with self._fetching:
                message = self._pop_fresh()
                if message is not None:
                    return message
                # Honour the idle back-off across calls: the dispatcher asks again every
                # second, and receiving on every call defeated ``max_poll_interval``.
                wait = min(self._next_poll - time.monotonic(), deadline - time.monotonic())
                if wait > 0 and await self._sleep(wait):
                    self._interval, self._next_poll = MIN_POLL_INTERVAL, 0.0  # we just enqueued
                if time.monotonic() < self._next_poll:
                    if time.monotonic() >= deadline:
                        return None
                    continue
                received = await self.queue.receive(self._prefetch, self._visibility)
                for item in received:
                    if item.message is None or not item.message.is_activity_request:
                        await self._on_undecodable(item)
                    else:
                        self._buffer.append(item)
                if self._buffer:
                    self._interval = MIN_POLL_INTERVAL
                    self._next_poll = 0.0
                    continue
                self._next_poll = time.monotonic() + self._interval
                self._interval = min(self._interval * 2, self._max_poll)
                if time.monotonic() >= deadline:
                    return None
        return None

    def _pop_fresh(self) -> ReceivedMessage | None:
        now = datetime.now(timezone.utc)
        while self._buffer:
            message = self._buffer.popleft()
            visible = message.next_visible_on
            if visible is None or visible - now > self._visibility / 2:
                return message
            log.info("work item %s expired in the prefetch buffer", message.message_id)
        return None

    async def _sleep(self, seconds: float) -> bool:
        woken = True
        try:
            await asyncio.wait_for(self._wake.wait(), seconds)
        except asyncio.TimeoutError:
            woken = False
        self._wake.clear()
        return woken
