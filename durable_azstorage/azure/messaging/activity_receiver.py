"""Activity requests from the shared ``{hub}-workitems`` queue (competing consumers).

Receives on demand (no background loop: a client-only process never takes work) and hands
the messages out one per ``lock_next_activity`` call. Idle polling backs off from 50 ms to
``max_poll_interval`` (``queue_backoff``); ``wake()`` (this process sent an activity request,
or another process signalled) polls at once, and the back-off restarts if that poll finds work.

Batching without hoarding: one request may receive up to ``prefetch`` messages, but the batch
size adapts to demand (additive-increase would be too slow for a fan-out, so it doubles while
every prefetched message is claimed, and halves when some are not). A prefetched message not
claimed within ``hold`` is made visible again at once, so a competing worker with free slots
takes it instead of waiting for the visibility timeout; ``stop()`` releases the buffer the
same way. A prefetched request whose visibility is running out is dropped (it reappears).
Both are recorded in ``deliveries``: a delivery this process caused never counts toward poison.

Activities this process dispatched to itself (``local``) are handed out first; offering one
wakes a waiting caller without a receive.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta, timezone

from durable_azstorage.azure.messaging.deliveries import SelfCausedDeliveries
from durable_azstorage.azure.messaging.local_activities import LocalActivityQueue
from durable_azstorage.azure.messaging.queues import MessageQueue, ReceivedMessage
from durable_azstorage.azure.messaging.wakeup import queue_backoff, sleep_or_wake

log = logging.getLogger(__name__)

DEFAULT_HOLD = timedelta(seconds=1)


class ActivityReceiver:
    """Pulls requests from the work-item queue for ``next()`` callers."""

    def __init__(
        self,
        queue: MessageQueue,
        *,
        prefetch: int,
        visibility_timeout: timedelta,
        max_poll_interval: timedelta,
        on_undecodable: Callable[[ReceivedMessage], Awaitable[object]],
        deliveries: SelfCausedDeliveries,
        local: LocalActivityQueue,
        hold: timedelta = DEFAULT_HOLD,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``clock`` drives the idle back-off (a fake one in tests)."""
        self.queue = queue
        self._prefetch = max(1, min(32, prefetch))
        self._batch = 1
        self._visibility = visibility_timeout
        self._hold = hold.total_seconds()
        self.backoff = queue_backoff(max_poll_interval, clock)
        self._on_undecodable = on_undecodable
        self.deliveries = deliveries
        self._buffer: deque[tuple[float, ReceivedMessage]] = deque()  # (received at, message)
        self._releases: set[asyncio.Task[None]] = set()
        self.released = 0
        """Prefetched messages handed back unclaimed (each cost one UpdateMessage request)."""
        self._fetching = asyncio.Lock()
        self.local = local
        self._wake = local.arrived  # one event: a local offer or a wake-up both end a wait
        self._next_poll = 0.0  # monotonic time before which an empty queue is not polled again
        self.stopped = False

    def wake(self) -> None:
        self._wake.set()

    @property
    def poll_interval(self) -> float:
        """Seconds an empty queue waits before its next poll (the idle back-off reached so far)."""
        return self.backoff.interval()

    @property
    def batch_size(self) -> int:
        """Messages the next receive asks for (1 .. prefetch)."""
        return self._batch

    async def stop(self) -> None:
        """Stop handing out messages; make the unclaimed ones visible to other workers now."""
        self.stopped = True
        self._release(len(self._buffer))
        if self._releases:
            await asyncio.wait(set(self._releases))

    async def next(self, timeout: float) -> ReceivedMessage | None:
        """The next fresh request, waiting up to ``timeout`` seconds."""
        deadline = time.monotonic() + max(0.0, timeout)
        self.local.serving = True
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
                if wait > 0 and await sleep_or_wake(self._wake, wait):
                    message = self._pop_fresh()
                    if message is not None:  # dispatched here: no receive needed
                        return message
                    self._next_poll = 0.0  # work was sent: poll now
                if time.monotonic() < self._next_poll:
                    if time.monotonic() >= deadline:
                        return None
                    continue
                if self.stopped:
                    return None
                wanted = self._batch
                received = await self.queue.receive(wanted, self._visibility)
                if len(received) >= wanted:
                    self._batch = min(self._prefetch, wanted * 2)  # grows only while fully used
                at = time.monotonic()
                for item in received:
                    if item.message is None or not item.message.is_activity_request:
                        await self._on_undecodable(item)
                    else:
                        self._buffer.append((at, item))
                if self.stopped:  # stop() ran during the receive: hand the batch back now
                    self._release(len(self._buffer))
                    return None
                if len(self._buffer) > 1:
                    asyncio.get_running_loop().call_later(self._hold, self._release_unclaimed)
                if self._buffer:
                    self.backoff.active()
                    self._next_poll = 0.0
                    continue
                self._next_poll = time.monotonic() + self.backoff.interval()
                if time.monotonic() >= deadline:
                    return None
        return None

    def _pop_fresh(self) -> ReceivedMessage | None:
        if self.stopped:
            return None
        local = self.local.take()
        if local is not None:
            return local
        now = datetime.now(timezone.utc)
        while self._buffer:
            _at, message = self._buffer.popleft()
            visible = message.next_visible_on
            if visible is None or visible - now > self._visibility / 2:
                return message
            log.info("work item %s expired in the prefetch buffer", message.message_id)
            self.deliveries.caused(message.message_id)
        return None

    def _release_unclaimed(self) -> None:
        cutoff = time.monotonic() - self._hold + 0.01
        stale = sum(1 for at, _message in self._buffer if at <= cutoff)
        if stale:
            self._batch = max(1, self._batch // 2)
            self._release(stale)

    def _release(self, count: int) -> None:
        """Hand the ``count`` oldest buffered messages back to the queue, in the background."""
        messages = [self._buffer.popleft()[1] for _ in range(min(count, len(self._buffer)))]
        if not messages:
            return
        self.released += len(messages)
        for message in messages:
            self.deliveries.caused(message.message_id)
        task = asyncio.ensure_future(self._make_visible(messages))
        self._releases.add(task)
        task.add_done_callback(self._releases.discard)

    async def _make_visible(self, messages: list[ReceivedMessage]) -> None:
        for message in messages:
            try:
                await self.queue.set_visibility(message, timedelta(0))
            except Exception as exc:  # it reappears when its visibility runs out anyway
                log.info("work item %s: could not release it early: %r", message.message_id, exc)
