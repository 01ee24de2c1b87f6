"""A fake clock that the simulation moves by hand, forwards and (as a fault) backwards.

``FakeClock`` refuses to go back, rightly for unit tests; real clocks do step back (NTP), and
the engine must survive it: visibility and lock deadlines are absolute times, so a backward
step only delays them, and a timer delivered "early" by the new clock is re-armed by replay.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta, timezone

EPOCH = datetime(2026, 1, 1, tzinfo=timezone.utc)


class SkewClock:
    """The ``Clock`` protocol on a number the simulation sets; single-threaded by design."""

    def __init__(self) -> None:
        self._now = EPOCH
        self._listeners: list[Callable[[], None]] = []

    def now(self) -> datetime:
        return self._now

    def seconds_until(self, when: datetime) -> float | None:
        return 0.0 if when <= self._now else None

    def subscribe(self, listener: Callable[[], None]) -> None:
        self._listeners.append(listener)

    def advance(self, seconds: float) -> None:
        """Move by ``seconds`` (negative: backwards) and wake every waiter."""
        self._now += timedelta(seconds=seconds)
        for listener in self._listeners:
            listener()

    @property
    def elapsed(self) -> float:
        return (self._now - EPOCH).total_seconds()
