"""Wait for a condition instead of sleeping: ``eventually`` (threads) and ``eventually_async``.

Tests of a concurrent engine must wait for something to happen (a status, a message, a
log line). A bare ``sleep`` is either too short (flaky under load, e.g. with parallel test
workers) or too long (a slow suite); polling a condition with a deadline is neither. On
timeout the error says what was awaited and the last value seen, so a failure explains
itself instead of reading "timed out".

``probe`` is called until ``until(value)`` holds (default: the value is truthy); the value
is returned. Exceptions raised by ``probe`` propagate at once: a probe that can fail
transiently must catch that itself, so real errors are never retried away.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, overload

T = TypeVar("T")

_UNSEEN = object()


class EventuallyTimeout(AssertionError):
    """The awaited condition did not hold within the timeout (an assertion failure)."""


def _failure(what: str | None, timeout: float, last: object, probes: int) -> EventuallyTimeout:
    seen = "nothing (the probe never returned)" if last is _UNSEEN else repr(last)
    if len(seen) > 2000:
        seen = seen[:2000] + "…"
    return EventuallyTimeout(
        f"timed out after {timeout:g} s waiting for {what or 'a condition'} "
        f"({probes} probes); last value: {seen}"
    )


def eventually(
    probe: Callable[[], T],
    *,
    until: Callable[[T], object] = bool,
    timeout: float = 10.0,
    interval: float = 0.05,
    what: str | None = None,
) -> T:
    """Call ``probe`` every ``interval`` s until ``until(value)`` holds; return that value.

    Raises:
        EventuallyTimeout: the condition did not hold within ``timeout`` seconds (the
            probe is always called at least once, and once more at the deadline).
    """
    deadline = time.monotonic() + timeout
    last: object = _UNSEEN
    probes = 0
    while True:
        expired = time.monotonic() >= deadline
        value = probe()
        probes += 1
        if until(value):
            return value
        last = value
        if expired:
            raise _failure(what, timeout, last, probes)
        time.sleep(max(0.0, min(interval, deadline - time.monotonic())))


@overload
async def eventually_async(
    probe: Callable[[], Awaitable[T]],
    *,
    until: Callable[[T], object] = ...,
    timeout: float = ...,
    interval: float = ...,
    what: str | None = ...,
) -> T: ...


@overload
async def eventually_async(
    probe: Callable[[], T],
    *,
    until: Callable[[T], object] = ...,
    timeout: float = ...,
    interval: float = ...,
    what: str | None = ...,
) -> T: ...


async def eventually_async(
    probe: Callable[[], Any],
    *,
    until: Callable[[Any], object] = bool,
    timeout: float = 10.0,
    interval: float = 0.05,
    what: str | None = None,
) -> Any:
    """``eventually`` for event-loop code: ``probe`` may be sync or ``async``; waits yield.

    The sync flavour would block the loop that has to make the condition true; this one
    sleeps with ``asyncio.sleep`` and measures time on the running loop's clock.

    Raises:
        EventuallyTimeout: as ``eventually``.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last: object = _UNSEEN
    probes = 0
    while True:
        expired = loop.time() >= deadline
        value = probe()
        if inspect.isawaitable(value):
            value = await value
        probes += 1
        if until(value):
            return value
        last = value
        if expired:
            raise _failure(what, timeout, last, probes)
        await asyncio.sleep(max(0.0, min(interval, deadline - loop.time())))
