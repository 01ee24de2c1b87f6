"""``list_instance_ids``: ids of ended instances, page by page (the portable SDK's call).

The backends index instances by creation time, not completion time, so the completion-time
range is applied here to each page the backend returns. A page whose instances all fall
outside the range is skipped rather than returned empty, so a caller gets either ids or the
last page (``continuation_token`` None); a page may hold fewer than ``page_size`` ids.
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
) -> Page[str]:
    """One page of ids of instances in ``runtime_status`` (default: every ended status)."""
    statuses = tuple(OrchestrationStatus.parse(s) for s in runtime_status) if runtime_status else ENDED
    query = OrchestrationQuery(
        runtime_status=statuses,
        page_size=DEFAULT_PAGE_SIZE if page_size is None else page_size,
        continuation_token=continuation_token,
    )
    low, high = _utc(completed_time_from), _utc(completed_time_to)
    while True:
        page = await backend.query_instances(query)
        ids = [s.instance_id for s in page.items if _completed_within(s, low, high)]
        if ids or page.continuation_token is None:
            return Page(ids, page.continuation_token)
        query = dataclasses.replace(query, continuation_token=page.continuation_token)


def _completed_within(state: InstanceState, low: datetime | None, high: datetime | None) -> bool:
    if low is None and high is None:
        return True
    done = _utc(state.completed_at)
    if done is None:
        return False
    return (low is None or done >= low) and (high is None or done <= high)


def _utc(value: datetime | None) -> datetime | None:
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=timezone.utc)
