"""Cross-process wake-up: work sent by another process reaches an idle worker in about a
``wakeup_interval`` instead of a full ``max_poll_interval``.

An idle worker backs off its queue polling so that idle cost stays low, which is exactly
what makes the first start after a quiet period slow when the client is another process (the
.NET provider's users wait up to its 30 s back-off). Polling every owned queue faster costs
one request per queue per poll; instead each worker watches *one* small blob
(``$wakeup`` in the hub's large-message container): a client touches it after it enqueued
(one PutBlob, at most once per ``wakeup_interval``), and a worker whose receivers are all
polling slower than ``wakeup_interval`` reads its ETag every ``wakeup_interval``. A change
wakes every receiver at once. The signal is only a hint: a missed or spurious wake-up costs
latency or one round of polls, never correctness, so its errors are logged, not raised.
``sleep_or_wake`` is the in-process half every receiver's idle wait uses.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from azure.core.exceptions import ResourceNotFoundError
from azure.storage.blob.aio import ContainerClient

from durable_azstorage.azure.storage.retry import TransientRetry

log = logging.getLogger(__name__)

WAKEUP_BLOB = "$wakeup"


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
        self, container: ContainerClient, retry: TransientRetry, *, min_touch_interval: float
    ) -> None:
        self._blob = container.get_blob_client(WAKEUP_BLOB)
        self._retry = retry
        self._min_touch_interval = min_touch_interval
        self._last_touch = float("-inf")
        self.touches = 0

    async def touch(self) -> None:
        """Tell idle workers to poll now; throttled, because one touch wakes them all."""
        now = time.monotonic()
        if now - self._last_touch < self._min_touch_interval:
            return
        self._last_touch = now
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
    """Reads the signal while the worker is idle and calls ``on_wake`` when it changes."""

    def __init__(
        self,
        signal: WakeupSignal,
        *,
        interval: float,
        slowest_poll: Callable[[], float],
        on_wake: Callable[[], None],
    ) -> None:
        self._signal = signal
        self._interval = interval
        self._slowest_poll = slowest_poll
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

    async def _run(self) -> None:
        seen: str | None = None
        watching = False
        while True:
            await asyncio.sleep(self._interval)
            if self._slowest_poll() <= self._interval:
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
                self._on_wake()
            seen, watching = version, True
