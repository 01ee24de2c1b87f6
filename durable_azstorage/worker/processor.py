"""What the orchestration and activity processors share: their dependencies and the backoff.

Each processor turns one locked work item into a completion; both need the backend, the
poison threshold, a logger and a clock, and both back off the same way when an item fails
for a reason that may pass. Running the user's code is not theirs: they get an executor
(in-process, or the gRPC sidecar's remote one).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

from durable_azstorage.backend.protocol import Backend

MAX_BACKOFF = timedelta(seconds=60)

DEFERRAL_DELAY = timedelta(seconds=2)
"""How long a deferred item (a version this worker rejects, no SDK worker that can take it)
stays hidden before it is offered again; such give-backs never count toward poison."""


def abandon_delay(dequeue_count: int, *, deferred: bool = False) -> timedelta:
    """Exponential backoff for a failed item: 0.5 s, 1 s, 2 s ... capped at ``MAX_BACKOFF``;
    ``DEFERRAL_DELAY`` for a deferred one."""
    if deferred:
        return DEFERRAL_DELAY
    seconds = 0.5 * 2 ** max(0, min(dequeue_count - 1, 10))
    return min(timedelta(seconds=seconds), MAX_BACKOFF)


class WorkItemProcessor:
    """Holds the dependencies every work-item processor needs."""

    def __init__(
        self,
        backend: Backend,
        *,
        max_dequeue_count: int,
        logger: logging.Logger,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self._backend = backend
        self._max_dequeue_count = max_dequeue_count
        self._log = logger
        self._clock = clock or _utcnow


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)
