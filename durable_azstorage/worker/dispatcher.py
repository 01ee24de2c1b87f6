"""A bounded-concurrency fetch/process loop, shared by the orchestration and activity sides.

The loop asks the backend for the next work item (``fetch`` waits up to ``poll_timeout``
seconds; adaptive polling is the backend's job), runs it as a task under a semaphore and
keeps renewing its lock while it runs. Stopping is graceful: the loop stops fetching, then
``drain`` waits for the items in flight, and cancels them only when the grace period ends
(their locks then expire and the backend redelivers them: at-least-once).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

from durable_azstorage.model.errors import LockLostError

T = TypeVar("T")


class Dispatcher(Generic[T]):
    """Fetches work items and processes up to ``max_concurrency`` of them at a time."""

    def __init__(
        self,
        name: str,
        *,
        fetch: Callable[[float], Awaitable[T | None]],
        process: Callable[[T], Awaitable[None]],
        renew: Callable[[T], Awaitable[None]],
        max_concurrency: int,
        renew_interval: float,
        poll_timeout: float = 1.0,
        error_delay: float = 1.0,
        logger: logging.Logger,
    ) -> None:
        if max_concurrency < 1:
            raise ValueError(f"max concurrency of {name} must be >= 1, got {max_concurrency}")
        self.name = name
        self._fetch = fetch
        self._process = process
        self._renew = renew
        self._renew_interval = renew_interval
        self._poll_timeout = poll_timeout
        self._error_delay = error_delay
        self._log = logger
        self._in_flight: set[asyncio.Task[None]] = set()
        self._slots = asyncio.Semaphore(max_concurrency)
        self._stopping = asyncio.Event()

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    async def run(self) -> None:
        """Fetch and dispatch until ``request_stop``; in-flight items keep running."""
        while not self._stopping.is_set():
            await self.step()

    async def step(self) -> asyncio.Task[None] | None:
        """One turn of the loop: wait for a free slot, fetch one item, start processing it.

        Returns the task processing the item, or None when nothing came, the fetch failed
        (logged, then ``error_delay`` waited) or the dispatcher is stopping. Tests drive the
        loop one turn at a time with it.
        """
        if self._stopping.is_set():
            return None
        stop_wait: asyncio.Future[Any] = asyncio.ensure_future(self._stopping.wait())
        try:
            await _first(self._slots.acquire(), stop_wait)
            if self._stopping.is_set():
                return None  # the slot (if acquired) is never needed again
            item = await self._fetch_or_stop(stop_wait)
        finally:
            stop_wait.cancel()
        if item is None:
            self._slots.release()
            return None
        task = asyncio.ensure_future(self._run_one(item))
        self._in_flight.add(task)
        task.add_done_callback(self._in_flight.discard)
        task.add_done_callback(lambda _t: self._slots.release())
        return task

    def request_stop(self) -> None:
        """Stop fetching; call from the dispatcher's event loop."""
        self._stopping.set()

    async def drain(self, grace: float) -> None:
        """Wait up to ``grace`` seconds for in-flight items, then cancel the rest."""
        pending = set(self._in_flight)
        if not pending:
            return
        _done, late = await asyncio.wait(pending, timeout=grace)
        for task in late:
            task.cancel()
        if late:
            self._log.warning(
                "%s: cancelled %d work item(s) still running after the %.1fs grace period; "
                "their locks will expire and they will be redelivered",
                self.name,
                len(late),
                grace,
            )
            await asyncio.wait(late)

    async def _fetch_or_stop(self, stop_wait: asyncio.Future[Any]) -> T | None:
        fetch = asyncio.ensure_future(self._fetch(self._poll_timeout))
        both: set[asyncio.Future[Any]] = {fetch, stop_wait}
        await asyncio.wait(both, return_when=asyncio.FIRST_COMPLETED)
        if not fetch.done():
            # Stopping: an item locked by this fetch would only wait for its lock to expire.
            fetch.cancel()
            await asyncio.wait({fetch})
        if fetch.cancelled():
            return None
        exc = fetch.exception()
        if exc is not None:
            self._log.error("%s: fetching a work item failed: %r", self.name, exc, exc_info=exc)
            await _first(asyncio.sleep(self._error_delay), stop_wait)
            return None
        return fetch.result()

    async def _run_one(self, item: T) -> None:
        renewer = asyncio.ensure_future(self._keep_renewing(item))
        try:
            await self._process(item)
        except asyncio.CancelledError:
            raise
        except Exception:  # the processors handle their own errors; this is a last resort
            self._log.exception("%s: unexpected error while processing a work item", self.name)
        finally:
            renewer.cancel()

    async def _keep_renewing(self, item: T) -> None:
        while True:
            await asyncio.sleep(self._renew_interval)
            try:
                await self._renew(item)
            except LockLostError as exc:
                self._log.warning("%s: lock lost while processing: %s", self.name, exc)
                return
            except Exception:
                self._log.exception("%s: renewing a lock failed; will retry", self.name)


async def _first(aw: Awaitable[object], stop_wait: asyncio.Future[Any]) -> None:
    """Await ``aw`` unless ``stop_wait`` completes first (then ``aw`` is cancelled)."""
    task: asyncio.Future[Any] = asyncio.ensure_future(aw)
    await asyncio.wait({task, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
    if not task.done():
        task.cancel()
        await asyncio.wait({task})
