"""Time for the in-memory backend: the real clock, or a fake one that tests move by hand.

Visibility delays and lock expiry are computed from ``Clock.now()``. A waiter (``lock_next_*``)
sleeps until the next visibility deadline: on the real clock that is a real sleep of
``seconds_until(deadline)``; on the fake clock time only moves when a test calls
``advance()``, which notifies subscribers so that waiters re-check at once. Unit tests that
cover minutes of lock timeouts therefore run instantly.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        ...

    def seconds_until(self, when: datetime) -> float | None:
        """Real seconds to sleep before ``when`` may have come; None if the clock only moves
        when told to (a waiter then waits for a ``subscribe`` notification instead)."""
        ...

    def subscribe(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` (from any thread) whenever time jumps."""
        ...


class SystemClock:
    """The wall clock."""

    def now(self) -> datetime:
        return datetime.now(timezone.utc)

    def seconds_until(self, when: datetime) -> float | None:
        return max(0.0, (when - self.now()).total_seconds())

    def subscribe(self, listener: Callable[[], None]) -> None:
        """Real time never jumps; nothing to notify."""


class FakeClock:
    """A clock that stands still until ``advance()``; for instant, deterministic tests."""

    def __init__(self, start: datetime | None = None) -> None:
        start = start or datetime(2026, 1, 1, tzinfo=timezone.utc)
        if start.tzinfo is None:
            raise ValueError("FakeClock start must be timezone-aware")
        self._now = start.astimezone(timezone.utc)
        self._listeners: list[Callable[[], None]] = []
        self._lock = threading.Lock()

    def now(self) -> datetime:
        return self._now

    def seconds_until(self, when: datetime) -> float | None:
        return 0.0 if when <= self._now else None

    def subscribe(self, listener: Callable[[], None]) -> None:
        with self._lock:
            self._listeners.append(listener)

    def advance(self, delta: timedelta | float) -> datetime:
        """Move time forward (``delta`` in seconds or a timedelta) and wake every waiter."""
        step = delta if isinstance(delta, timedelta) else timedelta(seconds=delta)
        if step < timedelta(0):
            raise ValueError(f"a clock cannot go backwards (advance by {step})")
        with self._lock:
            self._now += step
            listeners = list(self._listeners)
        for listener in listeners:
            listener()
        return self._now
