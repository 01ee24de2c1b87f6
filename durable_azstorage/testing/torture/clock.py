"""Time for the simulation: a fake clock moved by hand (in-memory backend) or real time.

``FakeClock`` refuses to go back, rightly for unit tests; real clocks do step back (NTP), and
the engine must survive it: visibility and lock deadlines are absolute times, so a backward
step only delays them, and a timer delivered "early" by the new clock is re-armed by replay.
``SkewClock`` therefore moves both ways. Against Azurite time is real: ``RealTime`` sleeps.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Protocol

EPOCH = datetime(2026, 1, 1, tzinfo=timezone.utc)


class Time(Protocol):
    """What the simulation needs of time; the numbers are seconds."""

    lock_timeout: float
    """How long a received work item stays locked (the backend's visibility timeout)."""
    lock_wait: float
    """How long a worker waits for a work item before concluding there is none."""
    idle_step: float
    """How far the drain moves time when nothing is left to do (past every delay)."""
    backwards: bool
    """Whether time may be stepped back (a fault)."""
    drain_rounds: int
    """How many rounds the drain tries before it reports the instances still running."""

    def now(self) -> datetime: ...

    @property
    def elapsed(self) -> float: ...

    async def advance(self, seconds: float) -> None: ...


class SkewClock:
    """The backend ``Clock`` and the simulation's ``Time`` on one number set by hand."""

    lock_timeout = 30.0
    lock_wait = 0.0
    idle_step = 61.0
    backwards = True
    drain_rounds = 400

    def __init__(self) -> None:
        self._now = EPOCH
        self._listeners: list[Callable[[], None]] = []

    def now(self) -> datetime:
        return self._now

    def seconds_until(self, when: datetime) -> float | None:
        return 0.0 if when <= self._now else None

    def subscribe(self, listener: Callable[[], None]) -> None:
        self._listeners.append(listener)

    async def advance(self, seconds: float) -> None:
        """Move by ``seconds`` (negative: backwards) and wake every waiter."""
        self._now += timedelta(seconds=seconds)
        for listener in self._listeners:
            listener()

    @property
    def elapsed(self) -> float:
        return (self._now - EPOCH).total_seconds()


class RealTime:
    """Wall-clock time; ``advance`` sleeps (capped just past the lock timeout)."""

    lock_wait = 0.5
    idle_step = 1.0
    backwards = False
    drain_rounds = 60

    def __init__(self, lock_timeout: float) -> None:
        self.lock_timeout = lock_timeout
        self._started = time.monotonic()

    def now(self) -> datetime:
        return datetime.now(timezone.utc)

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self._started

    async def advance(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, min(seconds, self.lock_timeout + 1)))
