"""Cross-process wake-up: work sent by another process reaches an idle worker in a fraction of its
quiet time instead of a full ``max_poll_interval``.

An idle worker backs off its queue polling so that idle cost stays low, which is exactly what
makes the first start after a quiet period slow when the client is another process (the .NET
provider's users wait up to its 30 s back-off). Polling every owned queue faster costs one
request per queue per poll; instead each worker watches *one* small blob (``$wakeup`` in the
hub's large-message container): a client touches it after it enqueued (one PutBlob; at most one
per ``TOUCH_EVERY`` seconds after a quiet spell, widening to one per ``TOUCH_EVERY_WHILE_BUSY``
while the client keeps sending; a send inside the window is covered by one trailing touch at
its end, so no send goes unsignalled), and a worker one of whose control-queue receivers polls
slower than the watch reads its ETag on an ``IdleBackoff``: every ``WATCH_FASTEST`` seconds
right after work, then ``wakeup_backoff_ratio`` times the time since the worker last saw work,
up to ``wakeup_interval``. So a start that follows other work closely is seen within tens of
milliseconds, one after a long quiet period within ``wakeup_interval``, and a quiet period costs
a few dozen reads before the watch settles at one read per ``wakeup_interval``. A change wakes
every control-queue receiver (clients send nothing else) for one poll, which restarts its own
back-off only if it finds work. The signal is only a hint: a missed or spurious wake-up costs
latency or one round of polls, never correctness, so its errors are logged, not raised.
``sleep_or_wake`` is the in-process half every receiver's idle wait uses.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import timedelta

from azure.core.exceptions import ResourceNotFoundError
from azure.storage.blob.aio import ContainerClient

from durable_azstorage.azure.storage.retry import TransientRetry
from durable_azstorage.model.polling import IdleBackoff

log = logging.getLogger(__name__)

WAKEUP_BLOB = "$wakeup"
WATCH_FASTEST = 0.05
"""Seconds between reads of the signal right after work (the receivers' fastest poll too)."""
TOUCH_EVERY = 2 * WATCH_FASTEST
"""Seconds between a client's touches after a quiet spell: more often than the fastest watch
would be unread."""
TOUCH_EVERY_WHILE_BUSY = 2.0
"""The widest touch window, reached while a client keeps sending. A touch is a blob write
(priced like many queue requests on Azure) and a client that sends continuously keeps the
workers' pollers fast by itself, so it touches at most this often."""
QUIET_BEFORE_SEND = 0.5
"""Seconds without a send after which the next send is signalled at once again."""
QUEUE_POLL_FASTEST = 0.05
"""Seconds between a queue receiver's polls right after it found work."""


def queue_backoff(
    max_poll_interval: timedelta, clock: Callable[[], float] = time.monotonic
) -> IdleBackoff:
    """A queue receiver's idle back-off: ``QUEUE_POLL_FASTEST`` after work, then as long as it
    has been idle (doubling per empty poll) up to ``max_poll_interval``. It stays steep
    because a quiet queue costs one request per poll; prompt reaction to another process's
    work comes from the (single) wake-up watch instead."""
    slowest = max(QUEUE_POLL_FASTEST, max_poll_interval.total_seconds())
    return IdleBackoff(fastest=QUEUE_POLL_FASTEST, slowest=slowest, ratio=1.0, clock=clock)


async def sleep_or_wake(wake: asyncio.Event, seconds: float) -> bool:
    """Sleep up to ``seconds`` unless ``wake`` is set (this process enqueued, or the signal
    changed); True when woken. Clears ``wake`` either way, so each wake-up counts once."""
    woken = True
    try:
        await asyncio.wait_for(wake.wait(), seconds)
    except asyncio.TimeoutError:
        woken = False
    wake.clear()
    return woken


class WakeupSignal:
    """The shared blob: ``touch()`` from senders, ``version()`` for watchers."""

    def __init__(
        self,
        container: ContainerClient,
        retry: TransientRetry,
        *,
        min_touch_interval: float = TOUCH_EVERY,
        max_touch_interval: float = TOUCH_EVERY_WHILE_BUSY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._blob = container.get_blob_client(WAKEUP_BLOB)
        self._retry = retry
        self._min_touch_interval = min_touch_interval
        self._max_touch_interval = max(min_touch_interval, max_touch_interval)
        self.window = min_touch_interval
        """The current throttle window: doubles with each trailing touch (the sends kept
        coming), back to ``min_touch_interval`` after ``QUIET_BEFORE_SEND`` without a send."""
        self._clock = clock
        self._last_touch = float("-inf")
        self._last_send = float("-inf")
        self._trailing: asyncio.Task[None] | None = None
        self.touches = 0

    async def touch(self) -> None:
        """Tell idle workers to poll now. Throttled, because one touch wakes them all: inside
        the throttle window one trailing touch is scheduled for its end instead, so the
        send that called this is always followed by a touch. The window widens while sends
        keep coming and narrows after a quiet spell, so an isolated start is signalled at
        once and a busy client writes at most one touch per ``max_touch_interval``."""
        now = self._clock()
        if now - self._last_send >= QUIET_BEFORE_SEND:
            self.window = self._min_touch_interval
        self._last_send = now
        wait = self._last_touch + self.window - now
        if wait <= 0:
            await self._write()
        elif self._trailing is None:
            self._trailing = asyncio.ensure_future(self._touch_after(wait))

    async def flush(self) -> None:
        """Write a pending trailing touch now (the sender is closing; no throttle matters)."""
        trailing, self._trailing = self._trailing, None
        if trailing is not None and not trailing.done():
            trailing.cancel()
            await asyncio.wait({trailing})
            await self._write()

    async def _touch_after(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
        self._trailing = None  # a send from now on needs a touch after this one
        self.window = min(2 * self.window, self._max_touch_interval)
        await self._write()

    async def _write(self) -> None:
        self._last_touch = self._clock()
        try:
            await self._retry.call(lambda: self._blob.upload_blob(b"", overwrite=True))
            self.touches += 1
        except Exception as exc:
            log.info(
                "wake-up signal: touch failed (workers notice the work at their next poll): %r", exc
            )

    async def version(self) -> str | None:
        """The blob's ETag; None while nobody has touched it yet."""
        try:
            properties = await self._retry.call(self._blob.get_blob_properties)
        except ResourceNotFoundError:
            return None
        return str(properties.etag)


class WakeupWatcher:
    """Reads the signal while the worker's control-queue receivers poll slower than the watch
    would (``slowest_poll``), and calls ``on_wake`` when it changes. ``idle_for`` is the
    seconds since they last received a message; the watch backs off from the later of that
    and the signal's last change."""

    def __init__(
        self,
        signal: WakeupSignal,
        *,
        backoff: IdleBackoff,
        slowest_poll: Callable[[], float],
        idle_for: Callable[[], float],
        on_wake: Callable[[], None],
    ) -> None:
        self._signal = signal
        self.backoff = backoff
        self._slowest_poll = slowest_poll
        self._idle_for = idle_for
        self._on_wake = on_wake
        self._task: asyncio.Task[None] | None = None
        self.checks = 0
        self.wakes = 0

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.wait({task})

    @property
    def interval(self) -> float:
        """Seconds until the next read of the signal, now."""
        idle = min(self._idle_for(), self.backoff.idle_for())
        return self.backoff.interval_after(idle)

    async def _run(self) -> None:
        seen: str | None = None
        watching = False
        while True:
            interval = self.interval
            await asyncio.sleep(interval)
            if self._slowest_poll() <= interval:
                watching = False  # the receivers poll at least this often by themselves
                continue
            try:
                version = await self._signal.version()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.info("wake-up signal: read failed: %r", exc)
                continue
            self.checks += 1
            if watching and version != seen:
                self.wakes += 1
                self.backoff.active()
                self._on_wake()
            seen, watching = version, True
