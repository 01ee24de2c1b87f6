"""``list_instance_ids``: ids of ended instances, page by page (the portable SDK's call).

The backends index instances by creation time, not completion time, so the completion-time
range is applied here to each page the backend returns. A page whose instances all fall
outside the range is skipped rather than returned empty, so a caller gets either ids or the
last page (``continuation_token`` None); a page may hold fewer than ``page_size`` ids.

The token is None on the last page even when that page is full (the portable SDK's
contract, which its callers loop on): before returning a token, the pages after it are
looked at until one holds a match; when none does, the token is dropped.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime, timezone

from durable_azstorage.backend.protocol import Backend
from durable_azstorage.model.query import OrchestrationQuery, Page
from durable_azstorage.model.state import InstanceState
from durable_azstorage.model.status import TERMINAL_STATUSES, OrchestrationStatus

ENDED = tuple(sorted(TERMINAL_STATUSES, key=lambda status: status.value))
DEFAULT_PAGE_SIZE = 100


async def list_instance_ids(
    backend: Backend,
    *,
    runtime_status: Sequence[OrchestrationStatus | str] | None,
    completed_time_from: datetime | None,
    completed_time_to: datetime | None,
    page_size: int | None,
    continuation_token: str | None,
    completed_to_inclusive: bool = True,
) -> Page[str]:
    """One page of ids of instances in ``runtime_status`` (default: every ended status).

    ``completed_to_inclusive`` False makes ``completed_time_to`` an exclusive bound (the
    sidecar protocol's ``[from, to)``)."""
    statuses = (
        tuple(OrchestrationStatus.parse(s) for s in runtime_status) if runtime_status else ENDED
    )
    query = OrchestrationQuery(
        runtime_status=statuses,
        page_size=DEFAULT_PAGE_SIZE if page_size is None else page_size,
        continuation_token=continuation_token,
    )
    window = _Window(_utc(completed_time_from), _utc(completed_time_to), completed_to_inclusive)
    ids, token = await _next_ids(backend, query, window)
    if token is not None:
        more, _ = await _next_ids(
            backend, dataclasses.replace(query, continuation_token=token), window
        )
        if not more:
            token = None
    return Page(ids, token)


async def _next_ids(
    backend: Backend, query: OrchestrationQuery, window: _Window
) -> tuple[list[str], str | None]:
    """The ids of the next backend page holding a match (or of the last page), and its token."""
    while True:
        page = await backend.query_instances(query)
        ids = [s.instance_id for s in page.items if window.holds(s)]
        if ids or page.continuation_token is None:
            return ids, page.continuation_token
        query = dataclasses.replace(query, continuation_token=page.continuation_token)


@dataclasses.dataclass(frozen=True, slots=True)
class _Window:
    """The completion-time range ``[low, high]`` (``[low, high)`` unless ``inclusive``)."""

    low: datetime | None
    high: datetime | None
    inclusive: bool

    def holds(self, state: InstanceState) -> bool:
        if self.low is None and self.high is None:
            return True
        done = _utc(state.completed_at)
        if done is None:
            return False
        if self.low is not None and done < self.low:
            return False
        if self.high is None:
            return True
        return done <= self.high if self.inclusive else done < self.high


def _utc(value: datetime | None) -> datetime | None:
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=timezone.utc)
