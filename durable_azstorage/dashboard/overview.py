"""The hub overview: counts by status, throughput, partitions, backlogs, poison, requests.

Azure tables cannot count, so the counts come from one payload-free scan of the instance
index, at most ``MAX_COUNT_PAGES`` pages of ``COUNT_PAGE_SIZE`` rows (``complete`` False
beyond: the counts are then lower bounds, and the page says so). The same rows give the
created/completed-per-minute figures of the last ``RATE_WINDOW``. The whole overview is
cached for ``ttl`` seconds and computed by one caller at a time, so any number of open
browsers cost one computation per ``ttl``. One refresh costs (Azure):
``ceil(min(instances, 10 000) / 1 000)`` instance queries + 1 lease query + 2 per partition
+ 1 work-item queue + 1 poison listing (see the README for the measured figure).
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections import Counter, deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from durable_azstorage.client.async_client import AsyncTaskHubClient
from durable_azstorage.client.state import OrchestrationState
from durable_azstorage.dashboard import documents
from durable_azstorage.dashboard.capabilities import (
    CountsRequests,
    HubMonitor,
    PartitionLease,
    PoisonQuarantine,
)
from durable_azstorage.model.query import OrchestrationQuery
from durable_azstorage.model.status import OrchestrationStatus

COUNT_PAGE_SIZE = 1000
MAX_COUNT_PAGES = 10
RATE_WINDOW = timedelta(minutes=15)
REQUEST_WINDOW = 300.0  # seconds of request-count history kept for the per-minute rates


@dataclass(frozen=True, slots=True, kw_only=True)
class Overview:
    counts: dict[str, int]
    complete: bool
    scanned: int
    per_minute: list[dict[str, Any]]
    partitions: list[dict[str, Any]] | None
    work_item_backlog: int | None
    poison_count: int | None
    requests_per_minute: dict[str, float] | None
    computed_at: datetime

    def document(self) -> dict[str, Any]:
        return dataclasses.asdict(self) | {"computed_at": self.computed_at.isoformat()}


@dataclass(slots=True)
class _RequestRates:
    """Per-minute request rates by operation from successive counter snapshots."""

    samples: deque[tuple[float, Mapping[tuple[str, str], int]]] = field(default_factory=deque)

    def rates(self, counts: Mapping[tuple[str, str], int], now: float) -> dict[str, float]:
        self.samples.append((now, dict(counts)))
        while len(self.samples) > 2 and now - self.samples[1][0] >= REQUEST_WINDOW:
            self.samples.popleft()
        then, before = self.samples[0]
        minutes = (now - then) / 60
        if minutes <= 0:
            return {}
        out = {
            f"{service}.{op}": round((n - before.get((service, op), 0)) / minutes, 1)
            for (service, op), n in counts.items()
        }
        return dict(sorted(((k, v) for k, v in out.items() if v), key=lambda kv: -kv[1]))


class OverviewSource:
    """Computes the overview and caches it for ``ttl`` seconds."""

    def __init__(
        self,
        client: AsyncTaskHubClient,
        *,
        monitor: HubMonitor | None,
        quarantine: PoisonQuarantine | None,
        requests: CountsRequests | None,
        ttl: float = 5.0,
    ) -> None:
        self._client = client
        self._monitor = monitor
        self._quarantine = quarantine
        self._requests = requests
        self._ttl = ttl
        self._lock = asyncio.Lock()
        self._cached: tuple[float, Overview] | None = None
        self._rates = _RequestRates()

    async def get(self) -> Overview:
        async with self._lock:
            now = time.monotonic()
            if self._cached is not None and now - self._cached[0] < self._ttl:
                return self._cached[1]
            overview = await self._compute()
            self._cached = (time.monotonic(), overview)
            return overview

    async def _compute(self) -> Overview:
        now = datetime.now(timezone.utc)
        (states, complete), partitions, backlog, poison = await asyncio.gather(
            self._scan(), self._partitions(), self._backlog(), self._poison_count()
        )
        counts = Counter(s.runtime_status for s in states)
        requests = None
        if self._requests is not None:
            snapshot = self._requests.request_counter.snapshot()
            requests = self._rates.rates(snapshot.counts, time.monotonic())
        return Overview(
            counts={status.value: counts.get(status, 0) for status in OrchestrationStatus},
            complete=complete,
            scanned=len(states),
            per_minute=_per_minute(states, now),
            partitions=None if partitions is None else [documents.partition(p) for p in partitions],
            work_item_backlog=backlog,
            poison_count=poison,
            requests_per_minute=requests,
            computed_at=now,
        )

    async def _scan(self) -> tuple[list[OrchestrationState], bool]:
        query = OrchestrationQuery(page_size=COUNT_PAGE_SIZE)
        states: list[OrchestrationState] = []
        for _ in range(MAX_COUNT_PAGES):
            page = await self._client.query_orchestrations(query)
            states += page.items
            if page.continuation_token is None:
                return states, True
            query = dataclasses.replace(query, continuation_token=page.continuation_token)
        return states, False

    async def _partitions(self) -> list[PartitionLease] | None:
        if self._monitor is None:
            return None
        return list(await self._monitor.describe_partitions())

    async def _backlog(self) -> int | None:
        return None if self._monitor is None else await self._monitor.work_item_backlog()

    async def _poison_count(self) -> int | None:
        if self._quarantine is None:
            return None
        return len(await self._quarantine.list_poison())


def _per_minute(states: list[OrchestrationState], now: datetime) -> list[dict[str, Any]]:
    """Created and completed instances per minute over ``RATE_WINDOW``, oldest first."""
    minutes = int(RATE_WINDOW.total_seconds() // 60)
    top = now.replace(second=0, microsecond=0)
    first = top - timedelta(minutes=minutes - 1)
    created: Counter[datetime] = Counter()
    completed: Counter[datetime] = Counter()
    for s in states:
        for counter, at in ((created, s.created_at), (completed, s.completed_at)):
            if at is not None and at >= first:
                counter[at.replace(second=0, microsecond=0)] += 1
    return [
        {
            "minute": (first + timedelta(minutes=i)).isoformat(),
            "created": created[first + timedelta(minutes=i)],
            "completed": completed[first + timedelta(minutes=i)],
        }
        for i in range(minutes)
    ]
