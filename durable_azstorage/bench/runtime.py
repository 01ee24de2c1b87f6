"""An in-process worker and client on one task hub, and waiting for many instances at once.

The worker and the client get *separate* backends (as in production, where they are usually
different processes), so each one's storage requests are counted on its own and a message
the client enqueues does not wake the worker's poller (``shared_backend=True`` makes the
client use the worker's backend instead, which does).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from durable_azstorage.azure.provider import AzureStorageBackend
from durable_azstorage.azure.settings import AzureStorageSettings
from durable_azstorage.azure.storage.metrics import RequestCounts
from durable_azstorage.bench.workload import bench_single, make_worker
from durable_azstorage.client.async_client import AsyncTaskHubClient
from durable_azstorage.client.state import OrchestrationState
from durable_azstorage.model.query import OrchestrationQuery
from durable_azstorage.model.status import OrchestrationStatus
from durable_azstorage.worker.worker import TaskHubWorker


@dataclass
class Runtime:
    """A running worker, a client, and their backends (for request counts)."""

    worker: TaskHubWorker
    client: AsyncTaskHubClient
    worker_backend: AzureStorageBackend
    client_backend: AzureStorageBackend


@asynccontextmanager
async def hub(settings: AzureStorageSettings) -> AsyncIterator[AsyncTaskHubClient]:
    """A client on a freshly created hub, deleted again on exit (also on failure)."""
    backend = AzureStorageBackend(settings)
    client = AsyncTaskHubClient(backend=backend)
    await client.create_task_hub()
    try:
        yield client
    finally:
        try:
            await client.delete_task_hub()
        finally:
            await backend.stop()


@asynccontextmanager
async def in_process(
    settings: AzureStorageSettings,
    *,
    shared_backend: bool = False,
    max_concurrent_activities: int = 10,
    activity_prefetch: int | None = None,
) -> AsyncIterator[Runtime]:
    """Create the hub, run a worker on this loop, yield; stop the worker and delete the hub.

    ``activity_prefetch`` overrides the backend's work-item messages per receive (an
    experiment knob: not reachable through ``AzureStorageSettings``).
    """
    async with hub(settings) as admin:
        extra: dict[str, Any] = {}
        if activity_prefetch is not None:
            extra["activity_prefetch"] = activity_prefetch
        worker_backend = AzureStorageBackend(settings, **extra)
        worker = make_worker(
            backend=worker_backend, max_concurrent_activities=max_concurrent_activities
        )
        client_backend = worker_backend if shared_backend else AzureStorageBackend(settings)
        client = AsyncTaskHubClient(backend=client_backend)
        run = asyncio.ensure_future(worker.run_async())
        try:
            await warm_up(client, run)
            yield Runtime(worker, client, worker_backend, client_backend)
        finally:
            await worker.stop_async(timedelta(seconds=5))
            await asyncio.gather(run, return_exceptions=True)
            if not shared_backend:
                await client_backend.stop()
            del admin


async def warm_up(client: AsyncTaskHubClient, run: asyncio.Future[None] | None = None) -> None:
    """Run one orchestration to the end so that start-up and connection set-up are not measured.

    ``run`` is the worker's task: if it ends (e.g. cannot start), its error is raised here.
    """
    instance_id = await client.schedule_new_orchestration(bench_single, input=0)
    waiting = asyncio.ensure_future(wait_all(client, [instance_id], timeout=120, poll=0.05))
    watched: set[asyncio.Future[Any]] = {waiting}
    if run is not None:
        watched.add(run)
    await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
    if not waiting.done():
        waiting.cancel()
        assert run is not None
        run.result()
        raise RuntimeError("the benchmark worker stopped during warm-up")
    waiting.result()


QUERY_ABOVE = 32
QUERY_POLL = 1.0
ENDED_QUERY = OrchestrationQuery(
    runtime_status=tuple(s for s in OrchestrationStatus if s.is_terminal), page_size=1000
)


async def wait_all(
    client: AsyncTaskHubClient,
    instance_ids: Sequence[str],
    *,
    timeout: float,
    on_done: Callable[[int], None] | None = None,
    poll: float = 0.25,
) -> list[OrchestrationState]:
    """Poll until every instance is terminal; the states in ``instance_ids`` order.

    Timings are taken from the stored ``created_at``/``completed_at``, so the poll interval
    does not inflate them. Raises ``TimeoutError`` naming how many are still running, and
    ``RuntimeError`` if one did not complete successfully.

    Up to ``QUERY_ABOVE`` instances are read one by one; more are found with one query of
    the ended instances per ``QUERY_POLL`` seconds (one request per 1,000 rows): reading
    each of 1,000 instances every quarter second cost more storage requests than the
    worker under test (5,588 reads for 100 orchestrations) and competed with it for Azurite.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    done: dict[str, OrchestrationState] = {}
    limit = asyncio.Semaphore(16)
    wanted = frozenset(instance_ids)
    by_query = len(instance_ids) > QUERY_ABOVE
    if by_query:
        poll = max(poll, QUERY_POLL)

    async def check(instance_id: str) -> None:
        async with limit:
            state = await client.get_orchestration_state(instance_id, fetch_payloads=False)
        if state is not None and state.is_terminal:
            done[instance_id] = state

    async def check_ended() -> None:
        ended = await client.get_all_orchestration_states(ENDED_QUERY)
        done.update((s.instance_id, s) for s in ended if s.instance_id in wanted)

    while len(done) < len(instance_ids):
        if by_query:
            await check_ended()
        else:
            await asyncio.gather(*(check(i) for i in instance_ids if i not in done))
        if on_done is not None:
            on_done(len(done))
        if len(done) == len(instance_ids):
            break
        if loop.time() > deadline:
            raise TimeoutError(
                f"{len(instance_ids) - len(done)} of {len(instance_ids)} orchestrations did not "
                f"finish within {timeout:g}s"
            )
        await asyncio.sleep(poll)
    failed = [s for s in done.values() if s.runtime_status is not OrchestrationStatus.COMPLETED]
    if failed:
        first = failed[0]
        raise RuntimeError(
            f"{len(failed)} orchestration(s) did not complete; {first.instance_id}: "
            f"{first.runtime_status.value} {first.failure_details}"
        )
    return [done[i] for i in instance_ids]


def by_operation_name(counts: RequestCounts) -> dict[str, int]:
    """Counts keyed ``"service.Operation"`` (JSON keys), sorted."""
    return {f"{svc}.{op}": n for (svc, op), n in sorted(counts.counts.items())}


def elapsed(state: OrchestrationState) -> float:
    """Seconds from creation to completion, from the instance's stored timestamps."""
    end = state.completed_at or state.last_updated_at
    return (end - state.created_at).total_seconds()


def span(states: Sequence[OrchestrationState]) -> float:
    """Seconds from the first creation to the last completion."""
    first = min(s.created_at for s in states)
    last = max((s.completed_at or s.last_updated_at) for s in states)
    return (last - first).total_seconds()


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) with linear interpolation between order statistics."""
    if not values:
        raise ValueError("percentile of no values")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def latency_summary(values: Sequence[float]) -> dict[str, float]:
    """p50/p95/p99/max/mean in seconds, rounded to the millisecond."""
    return {
        "p50": round(percentile(values, 50), 4),
        "p95": round(percentile(values, 95), 4),
        "p99": round(percentile(values, 99), 4),
        "max": round(max(values), 4),
        "mean": round(sum(values) / len(values), 4),
    }
