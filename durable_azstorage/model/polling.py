"""``IdleBackoff``: how long a poller waits before its next poll, from how long it has been idle.

Every poll of Azure Storage is a billed request, and nothing in it pushes: work from another
process is only seen by polling. The rule used by every poller here is one line: wait
``ratio`` times the time since work was last seen, between ``fastest`` and ``slowest``. So the
delay a poller adds to new work is at most a fixed fraction of the quiet time before it (and
at most ``slowest``), while the number of polls in a quiet period grows only with its
logarithm: about ``ln(slowest / fastest) / ratio`` polls to reach ``slowest``, then one per
``slowest``. ``ratio=1`` is the classic doubling per empty poll; a small ratio keeps a poller
fast for a while after work (a "hot window" that fades instead of ending at a cliff).

The clock is injected (``time.monotonic`` by default) so that the policy is tested with a
fake one.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable


class IdleBackoff:
    """The poll interval after an idle time; ``active()`` records that work was just seen."""

    def __init__(
        self,
        *,
        fastest: float,
        slowest: float,
        ratio: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not (math.isfinite(fastest) and fastest > 0):
            raise ValueError(f"fastest: must be a positive number of seconds, got {fastest!r}")
        if not (math.isfinite(slowest) and slowest >= fastest):
            raise ValueError(f"slowest: must be at least fastest ({fastest:g} s), got {slowest!r}")
        if not (math.isfinite(ratio) and ratio > 0):
            raise ValueError(f"ratio: must be a positive number, got {ratio!r}")
        self.fastest = fastest
        self.slowest = slowest
        self.ratio = ratio
        self._clock = clock
        self._since = clock()

    def active(self) -> None:
        """Work was seen now: the next waits start again from ``fastest``."""
        self._since = self._clock()

    def idle_for(self) -> float:
        """Seconds since work was last seen (or since the poller was made)."""
        return max(0.0, self._clock() - self._since)

    def interval(self) -> float:
        """Seconds to wait before the next poll, now."""
        return self.interval_after(self.idle_for())

    def interval_after(self, idle: float) -> float:
        """Seconds between polls after ``idle`` seconds without work."""
        return min(self.slowest, max(self.fastest, self.ratio * idle))

    def polls_within(self, seconds: float) -> float:
        """About how many polls the first ``seconds`` of a quiet period cost (the integral of
        ``1 / interval``): what a burst of activity leaves behind, for cost estimates."""
        hot_until = self.fastest / self.ratio  # below this idle time the interval is fastest
        capped_from = self.slowest / self.ratio
        polls = min(seconds, hot_until) / self.fastest
        if seconds > hot_until:
            polls += math.log(min(seconds, capped_from) / hot_until) / self.ratio
        if seconds > capped_from:
            polls += (seconds - capped_from) / self.slowest
        return polls
