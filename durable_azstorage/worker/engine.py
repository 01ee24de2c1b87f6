"""The engine under every worker: backend lifecycle, two dispatchers, lock renewal, graceful stop.

``TaskHubWorker`` runs it with in-process executors; the gRPC sidecar runs the same engine
with executors that hand the work to portable-SDK workers (durabletask-go's split between the
backend, the worker loop and the ``Executor``). The engine does not know which: it fetches,
renews, handles poison, commits and stops the same way for both.

``Admission`` lets the executor side say when there is someone to run work: the dispatcher
acquires a slot before it fetches (so no message is locked while nobody can run it) and
releases it when the item is done. The sidecar's slots follow the connected SDK workers.

``episode_spans`` writes the orchestration-side spans of committed episodes; in-process
workers pass one, the sidecar does not (the portable-SDK worker writes its own).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, Protocol, TypeVar

from durable_azstorage.backend.protocol import Backend, DeliveryLimit
from durable_azstorage.replay.entity_episode import EntityExecutor
from durable_azstorage.replay.executor import OrchestrationExecutor
from durable_azstorage.telemetry.tracing import EpisodeSpans
from durable_azstorage.worker.activities import ActivityExecutor, ActivityProcessor
from durable_azstorage.worker.dispatcher import Dispatcher
from durable_azstorage.worker.orchestrations import OrchestrationProcessor

T = TypeVar("T")

DEFAULT_MAX_DEQUEUE_COUNT = 10


def engine_limits(
    *,
    max_concurrent_orchestrations: int,
    max_concurrent_activities: int,
    max_dequeue_count: int | None,
    settings: object,
) -> int:
    """Check the limits every engine front-end takes (each must be >= 1) and return the
    poison threshold: the one given, else the backend settings', else the default."""
    if max_dequeue_count is None:
        max_dequeue_count = (
            settings.max_dequeue_count
            if isinstance(settings, DeliveryLimit)
            else DEFAULT_MAX_DEQUEUE_COUNT
        )
    for name, value in (
        ("max_concurrent_orchestrations", max_concurrent_orchestrations),
        ("max_concurrent_activities", max_concurrent_activities),
        ("max_dequeue_count", max_dequeue_count),
    ):
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    return max_dequeue_count


class Admission(Protocol):
    """Slots for work items of one kind; the engine fetches only with a slot in hand."""

    async def acquire(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for a slot; False if none came."""
        ...

    def release(self) -> None:
        """Give back a slot taken by ``acquire``."""


class WorkerEngine:
    """Fetches, runs (through the executors), renews and completes work items of one backend."""

    def __init__(
        self,
        backend: Backend,
        *,
        orchestrations: OrchestrationExecutor,
        activities: ActivityExecutor,
        max_concurrent_orchestrations: int,
        max_concurrent_activities: int,
        max_dequeue_count: int,
        renew_interval: float,
        episode_threads: int,
        orchestration_admission: Admission | None = None,
        activity_admission: Admission | None = None,
        poll_timeout: float = 1.0,
        clock: Callable[[], datetime] | None = None,
        episode_spans: EpisodeSpans | None = None,
        logger: logging.Logger,
        entities: EntityExecutor | None = None,
    ) -> None:
        self._backend = backend
        self._entities = entities
        self._log = logger
        self._episode_threads = episode_threads
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._runs: list[asyncio.Future[None]] = []
        self._orchestrations = orchestrations
        self._activities = activities
        self._limits = (max_concurrent_orchestrations, max_concurrent_activities, max_dequeue_count)
        self._renew_interval = renew_interval
        self._admissions = (orchestration_admission, activity_admission)
        self._poll_timeout = poll_timeout
        self._clock = clock
        self._episode_spans = episode_spans
        self._dispatchers: list[Dispatcher[Any]] = []

    @property
    def in_flight(self) -> int:
        """Work items being processed right now (both kinds)."""
        return sum(d.in_flight for d in self._dispatchers)

    async def start(self) -> None:
        """Start the backend (a missing hub raises ``TaskHubNotFoundError``), then the dispatchers."""
        if self._runs:
            raise RuntimeError("this engine is already running")
        await self._backend.start()
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=self._episode_threads, thread_name_prefix="dtaz-episode"
        )
        self._dispatchers = self._build(self._pool)
        self._runs = [asyncio.ensure_future(d.run()) for d in self._dispatchers]

    def request_stop(self) -> None:
        """Stop fetching; work in flight continues."""
        for d in self._dispatchers:
            d.request_stop()

    async def stop(self, grace: float) -> None:
        """Stop fetching, give in-flight work ``grace`` seconds, then stop the backend.

        Items still running after ``grace`` are cancelled; their locks expire and the backend
        delivers them again (at-least-once).
        """
        self.request_stop()
        try:
            await asyncio.gather(*self._runs, return_exceptions=True)
            await asyncio.gather(*(d.drain(grace) for d in self._dispatchers))
            await self._backend.stop()
        finally:
            if self._pool is not None:
                self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
            self._runs = []

    def _build(self, pool: concurrent.futures.Executor) -> list[Dispatcher[Any]]:
        max_orch, max_act, max_dequeue = self._limits
        orch = OrchestrationProcessor(
            self._backend,
            self._orchestrations,
            episode_pool=pool,
            max_dequeue_count=max_dequeue,
            logger=self._log,
            clock=self._clock,
            entities=self._entities,
            spans=self._episode_spans,
        )
        act = ActivityProcessor(
            self._backend,
            self._activities,
            max_dequeue_count=max_dequeue,
            logger=self._log,
            clock=self._clock,
        )
        orch_admission, act_admission = self._admissions
        return [
            self._dispatcher(
                "orchestrations", orch.fetch, orch.process, orch.renew, max_orch, orch_admission
            ),
            self._dispatcher(
                "activities", act.fetch, act.process, act.renew, max_act, act_admission
            ),
        ]

    def _dispatcher(
        self,
        name: str,
        fetch: Callable[[float], Awaitable[T | None]],
        process: Callable[[T], Awaitable[None]],
        renew: Callable[[T], Awaitable[None]],
        max_concurrency: int,
        admission: Admission | None,
    ) -> Dispatcher[T]:
        if admission is not None:
            fetch, process = _admitted(admission, fetch, process)
        return Dispatcher(
            name,
            fetch=fetch,
            process=process,
            renew=renew,
            max_concurrency=max_concurrency,
            renew_interval=self._renew_interval,
            poll_timeout=self._poll_timeout,
            logger=self._log,
        )


def _admitted(
    admission: Admission,
    fetch: Callable[[float], Awaitable[T | None]],
    process: Callable[[T], Awaitable[None]],
) -> tuple[Callable[[float], Awaitable[T | None]], Callable[[T], Awaitable[None]]]:
    """Wrap fetch/process so that each item holds one admission slot from fetch to done."""

    async def admitted_fetch(timeout: float) -> T | None:
        if not await admission.acquire(timeout):
            return None
        try:
            item = await fetch(timeout)
        except BaseException:
            admission.release()
            raise
        if item is None:
            admission.release()
        return item

    async def admitted_process(item: T) -> None:
        try:
            await process(item)
        finally:
            admission.release()

    return admitted_fetch, admitted_process
