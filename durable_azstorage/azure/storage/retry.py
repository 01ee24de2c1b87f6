"""Retrying transient storage failures, once, at the operation level.

Which failures: HTTP 408, 429, 500, 502, 503, 504 and failures to get any response
(connection refused/reset, timeouts). Never 409 or 412 (a conflict means someone else won a
race: the caller must re-read and decide, a blind retry would overwrite or duplicate), and
never any other 4xx (the request is wrong and will stay wrong).

How it composes with azure-core: the SDK clients are built with ``retry_total=0`` (see
``clients.py``), so the SDK's own retry policy passes every failure straight through and
tenacity is the only retry loop. Two stacked loops would multiply attempts (6 x 10) and hide
the real latency; one loop at the operation level also lets callers decide per operation
whether a retry is safe (a retried ``PutMessage`` whose first response was lost may enqueue
twice — acceptable, delivery is at-least-once — and a retried ``InsertEntity`` may answer 409
because the first attempt did succeed; callers that insert must treat that 409 accordingly).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import aiohttp
from azure.core.exceptions import (
    HttpResponseError,
    ServiceRequestError,
    ServiceResponseError,
)
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)

T = TypeVar("T")

TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})

_log = logging.getLogger(__name__)


def is_transient(exc: BaseException) -> bool:
    """True for failures worth retrying unchanged (see the module docstring)."""
    if isinstance(exc, HttpResponseError) and exc.status_code is not None:
        # ServiceResponseError subclasses HttpResponseError but has no status: handled below.
        return exc.status_code in TRANSIENT_STATUS
    return isinstance(
        exc,
        (
            ServiceRequestError,
            ServiceResponseError,
            aiohttp.ClientConnectionError,
            ConnectionError,
            asyncio.TimeoutError,
        ),
    )


@dataclass(frozen=True, slots=True)
class TransientRetry:
    """Exponential back-off with full jitter, bounded attempts.

    Wait before attempt n+1 is uniform in [0, min(max_wait, initial_wait * 2**n)] seconds; with
    the defaults and 6 attempts the worst case is ≈ 0.1+0.2+0.4+0.8+1.6 ≈ 3 s of waiting. Full
    jitter spreads the retries of many workers hit by the same throttling (429/503).
    """

    attempts: int = 6
    initial_wait: float = 0.1
    max_wait: float = 5.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"attempts: must be >= 1, got {self.attempts}")
        if self.initial_wait < 0 or self.max_wait < self.initial_wait:
            raise ValueError("initial_wait/max_wait: need 0 <= initial_wait <= max_wait")

    def retrying(self) -> AsyncRetrying:
        """A tenacity ``AsyncRetrying`` for ``async for attempt in policy.retrying(): ...``."""
        return AsyncRetrying(
            retry=retry_if_exception(is_transient),
            stop=stop_after_attempt(self.attempts),
            wait=wait_random_exponential(multiplier=self.initial_wait, max=self.max_wait),
            before_sleep=_log_retry,
            reraise=True,
        )

    async def call(self, operation: Callable[[], Awaitable[T]]) -> T:
        """Run ``operation()`` (a fresh awaitable per attempt), retrying transient failures.

        After the last attempt the original exception propagates unchanged.
        """
        result: T
        async for attempt in self.retrying():
            with attempt:
                result = await operation()
        return result


def _log_retry(state: RetryCallState) -> None:
    exc = state.outcome.exception() if state.outcome is not None else None
    status = getattr(exc, "status_code", None)
    # Only the type and status: exception texts of auth failures can quote request headers.
    _log.info(
        "transient storage failure (%s%s), attempt %d, retrying",
        type(exc).__name__,
        f" {status}" if status is not None else "",
        state.attempt_number,
    )
