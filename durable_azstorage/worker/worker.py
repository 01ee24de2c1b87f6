"""TaskHubWorker: runs registered orchestrators and activities against a backend.

A ``WorkerEngine`` (two dispatchers, orchestrations and activities, on one asyncio loop)
runs the registered code through the in-process executors. ``start()`` runs that loop on a
background thread for synchronous programs; asyncio programs ``await run_async()`` instead.
Stopping is graceful: both dispatchers stop fetching, in-flight work gets ``grace`` to
finish, then the backend is stopped (work items still locked then simply expire and are
redelivered elsewhere).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any

from durable_azstorage.authoring.registry import Registry
from durable_azstorage.authoring.versioning import VersioningOptions
from durable_azstorage.backend.protocol import Backend, BackendSettings, LockTimeout, OwnClock
from durable_azstorage.replay.entity_episode import LocalEntityExecutor
from durable_azstorage.replay.executor import LocalOrchestrationExecutor
from durable_azstorage.serialization.converter import DataConverter, JsonDataConverter
from durable_azstorage.telemetry.tracing import EpisodeSpans
from durable_azstorage.worker.activities import LocalActivityExecutor
from durable_azstorage.worker.concurrency import (
    DEFAULT_ACTIVITIES,
    DEFAULT_ORCHESTRATIONS,
    ConcurrencyOptions,
)
from durable_azstorage.worker.engine import WorkerEngine, engine_limits

_DEFAULT_RENEW_INTERVAL = 10.0


class TaskHubWorker:
    """Runs orchestrations and activities; give it ``settings`` or a ``backend``, not both."""

    def __init__(
        self,
        settings: BackendSettings | None = None,
        *,
        backend: Backend | None = None,
        converter: DataConverter | None = None,
        max_concurrent_orchestrations: int | None = None,
        max_concurrent_activities: int | None = None,
        max_dequeue_count: int | None = None,
        lock_renew_interval: timedelta | None = None,
        logger: logging.Logger | None = None,
        concurrency_options: ConcurrencyOptions | None = None,
    ) -> None:
        if (settings is None) == (backend is None):
            raise ValueError("TaskHubWorker needs exactly one of settings or backend=")
        orchestrations, activities, activity_threads = _concurrency(
            concurrency_options, max_concurrent_orchestrations, max_concurrent_activities
        )
        max_dequeue_count = engine_limits(
            max_concurrent_orchestrations=orchestrations,
            max_concurrent_activities=activities,
            max_dequeue_count=max_dequeue_count,
            settings=settings,
        )
        if settings is not None:
            backend = settings.create_backend()
        assert backend is not None  # exactly one of the two was given
        self._backend: Backend = backend
        self._converter = converter or JsonDataConverter()
        self._registry = Registry()
        self._max_orchestrations = orchestrations
        self._max_activities = activities
        self._activity_threads = activity_threads
        self._max_dequeue_count = max_dequeue_count
        self._renew_interval = renew_interval_for(self._backend, lock_renew_interval)
        self._log = logger or logging.getLogger("durable_azstorage.worker")
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_requested: asyncio.Event | None = None
        self._grace = 30.0
        self._running = threading.Event()
        self._start_error: BaseException | None = None

    # --- registration ----------------------------------------------------------------------
    @property
    def backend(self) -> Backend:
        return self._backend

    def add_orchestrator(self, fn: Callable[..., Any], name: str | None = None) -> str:
        """Register an orchestrator (generator or plain function); returns its name."""
        return self._registry.add_orchestrator(fn, name)

    def add_activity(self, fn: Callable[..., Any], name: str | None = None) -> str:
        """Register an activity (plain or ``async def``); returns its name."""
        return self._registry.add_activity(fn, name)

    def add_entity(self, fn: Callable[..., Any], name: str | None = None) -> str:
        """Register an entity function or ``DurableEntity`` subclass; returns its (lower-cased) name."""
        return self._registry.add_entity(fn, name)

    def use_versioning(self, options: VersioningOptions) -> None:
        """Run only the instance versions ``options`` allows (as the portable SDK's worker);
        ``options.default_version`` is given to sub-orchestrations started without one."""
        if not isinstance(options, VersioningOptions):
            raise TypeError(
                f"use_versioning takes VersioningOptions, got {type(options).__qualname__}"
            )
        if self._running.is_set() or self._stop_requested is not None:
            raise RuntimeError("versioning cannot change while the worker is running")
        self._registry.versioning = options

    # --- asyncio ---------------------------------------------------------------------------
    async def run_async(self) -> None:
        """Run until ``stop_async()`` (or cancellation); then drain and stop the backend."""
        if self._stop_requested is not None:
            raise RuntimeError("this TaskHubWorker is already running")
        self._loop = asyncio.get_running_loop()
        self._stop_requested = asyncio.Event()
        activities = LocalActivityExecutor(
            self._registry, self._converter, threads=self._activity_threads
        )
        engine = WorkerEngine(
            self._backend,
            orchestrations=LocalOrchestrationExecutor(self._registry, self._converter, self._log),
            activities=activities,
            entities=LocalEntityExecutor(self._registry, self._converter),
            max_concurrent_orchestrations=self._max_orchestrations,
            max_concurrent_activities=self._max_activities,
            max_dequeue_count=self._max_dequeue_count,
            renew_interval=self._renew_interval,
            episode_threads=min(self._max_orchestrations, 4),  # replay is CPU-bound
            clock=backend_clock(self._backend),
            episode_spans=EpisodeSpans(),
            logger=self._log,
        )
        try:
            # A missing hub raises TaskHubNotFoundError: create it first (CLI `hub create`).
            await engine.start()
        except BaseException:
            self._stop_requested = None
            activities.close()
            raise
        self._running.set()
        self._log.info(
            "worker started: %d orchestrator(s), %d activity(ies)",
            len(self._registry.orchestrator_names),
            len(self._registry.activity_names),
        )
        try:
            await self._stop_requested.wait()
        finally:
            # Also runs on cancellation: shield the drain so in-flight work still finishes.
            await asyncio.shield(self._shutdown(engine, activities))

    async def stop_async(self, grace: timedelta = timedelta(seconds=30)) -> None:
        """Ask ``run_async`` to stop; in-flight work gets ``grace`` to finish."""
        self._grace = grace.total_seconds()
        if self._stop_requested is not None:
            self._stop_requested.set()

    async def _shutdown(self, engine: WorkerEngine, activities: LocalActivityExecutor) -> None:
        try:
            await engine.stop(self._grace)
        finally:
            activities.close()
            self._stop_requested = None
            self._running.clear()
            self._log.info("worker stopped")

    # --- background thread -----------------------------------------------------------------
    def start(self) -> None:
        """Run the worker on a background thread; returns once it is receiving work."""
        if self._thread is not None:
            raise RuntimeError("this TaskHubWorker was already started")
        self._thread = threading.Thread(target=self._thread_main, name="dtaz-worker", daemon=True)
        self._thread.start()
        while not self._running.wait(0.05):
            if not self._thread.is_alive():
                error, self._start_error = self._start_error, None
                self._thread = None
                if isinstance(error, Exception):
                    raise error  # e.g. TaskHubNotFoundError from the backend
                raise RuntimeError("TaskHubWorker failed to start") from error

    def stop(self, grace: timedelta = timedelta(seconds=30)) -> None:
        """Finish in-flight work (up to ``grace``), stop the backend and join the thread."""
        thread, loop = self._thread, self._loop
        if thread is None or loop is None:
            return
        if threading.current_thread() is thread:
            raise RuntimeError("stop() would wait for its own thread; use `await stop_async()`")
        if loop.is_running():
            asyncio.run_coroutine_threadsafe(self.stop_async(grace), loop)
        thread.join()
        self._thread = None

    def _thread_main(self) -> None:
        try:
            asyncio.run(self.run_async())
        except BaseException as exc:  # reported by start() or logged
            self._start_error = exc
            if self._running.is_set():
                self._log.exception("worker loop crashed")

    def __enter__(self) -> TaskHubWorker:
        """Returns the worker unstarted (as the portable SDK does): register, then ``start()``;
        leaving the block stops it gracefully."""
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _concurrency(
    options: ConcurrencyOptions | None, orchestrations: int | None, activities: int | None
) -> tuple[int, int, int]:
    """(orchestrations, activities, activity threads) from either spelling; mixing is refused."""
    if options is None:
        orchestrations = DEFAULT_ORCHESTRATIONS if orchestrations is None else orchestrations
        activities = DEFAULT_ACTIVITIES if activities is None else activities
        return orchestrations, activities, activities
    if orchestrations is not None or activities is not None:
        raise ValueError(
            "pass either concurrency_options= or max_concurrent_orchestrations= / "
            "max_concurrent_activities=, not both"
        )
    return options.orchestrations, options.activities, options.activity_threads


def renew_interval_for(backend: Backend, configured: timedelta | None) -> float:
    """Renew at a third of the backend's lock timeout when it exposes one."""
    if configured is not None:
        return max(configured.total_seconds(), 0.05)
    if isinstance(backend, LockTimeout):
        return max(backend.lock_timeout.total_seconds() / 3, 0.05)
    return _DEFAULT_RENEW_INTERVAL


def backend_clock(backend: Backend) -> Callable[[], datetime] | None:
    """Use the backend's clock (e.g. a fake clock in tests) for episode timestamps."""
    return backend.clock.now if isinstance(backend, OwnClock) else None
