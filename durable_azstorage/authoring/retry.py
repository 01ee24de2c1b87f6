"""Retry policies for activities and sub-orchestrations.

Retries are durable: the wait between two attempts is a durable timer recorded in history,
so a worker restart neither loses nor shortens it, and replay recomputes the same schedule
from the same history (the clock used is ``current_utc_datetime``, never the wall clock).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """How often and how long to retry a failed task.

    Attempt ``n`` (1-based) that fails is followed by a delay of
    ``first_retry_interval * backoff_coefficient ** (n - 1)``, capped at
    ``max_retry_interval``, as long as fewer than ``max_number_of_attempts`` attempts ran and
    ``retry_timeout`` (measured from the first attempt) has not elapsed.
    """

    first_retry_interval: timedelta
    max_number_of_attempts: int
    backoff_coefficient: float = 1.0
    max_retry_interval: timedelta | None = None
    retry_timeout: timedelta | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.first_retry_interval, timedelta):
            raise TypeError("RetryPolicy.first_retry_interval must be a timedelta")
        if self.first_retry_interval <= timedelta(0):
            raise ValueError("RetryPolicy.first_retry_interval must be > 0")
        if isinstance(self.max_number_of_attempts, bool) or not isinstance(
            self.max_number_of_attempts, int
        ):
            raise TypeError("RetryPolicy.max_number_of_attempts must be an int")
        if self.max_number_of_attempts < 1:
            raise ValueError("RetryPolicy.max_number_of_attempts must be >= 1")
        if not self.backoff_coefficient >= 1.0:  # also rejects NaN
            raise ValueError("RetryPolicy.backoff_coefficient must be >= 1.0")
        if (
            self.max_retry_interval is not None
            and self.max_retry_interval < self.first_retry_interval
        ):
            raise ValueError("RetryPolicy.max_retry_interval must be >= first_retry_interval")
        if self.retry_timeout is not None and self.retry_timeout <= timedelta(0):
            raise ValueError("RetryPolicy.retry_timeout must be > 0")

    def delay_after(self, attempt: int) -> timedelta:
        """The wait after failed attempt ``attempt`` (1-based), before the cap is applied."""
        seconds = self.first_retry_interval.total_seconds() * self.backoff_coefficient ** (
            attempt - 1
        )
        if self.max_retry_interval is not None:
            seconds = min(seconds, self.max_retry_interval.total_seconds())
        return timedelta(seconds=seconds)

    def next_delay(
        self, attempt: int, *, first_attempt_at: datetime, now: datetime
    ) -> timedelta | None:
        """The delay before attempt ``attempt + 1``, or None when retrying must stop."""
        if attempt >= self.max_number_of_attempts:
            return None
        if self.retry_timeout is not None and now - first_attempt_at >= self.retry_timeout:
            return None
        return self.delay_after(attempt)
