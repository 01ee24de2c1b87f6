"""A simulated worker process: the engine's own processors, run one work item at a time.

No dispatcher loop, no threads: the simulation hands a worker a work item and a fate, and the
worker runs the real ``OrchestrationProcessor`` / ``ActivityProcessor`` code on it (episodes
run inline, so a seed replays exactly). A crash (``faults.Crash``) makes the worker drop
everything it holds, as a restarted process would; its locks expire on the clock.
"""

from __future__ import annotations

import concurrent.futures
import json
import logging
from collections.abc import Callable
from typing import Any, TypeVar

from durable_azstorage.authoring.registry import Registry
from durable_azstorage.backend.protocol import ActivityWorkItem, Backend, OrchestrationWorkItem
from durable_azstorage.replay.executor import LocalOrchestrationExecutor
from durable_azstorage.serialization.converter import JsonDataConverter
from durable_azstorage.testing.torture.faults import Crash, FaultyBackend
from durable_azstorage.worker.activities import ActivityProcessor, LocalActivityExecutor
from durable_azstorage.worker.orchestrations import OrchestrationProcessor

T = TypeVar("T")
MAX_DEQUEUE_COUNT = 1000
"""Poison handling is tested elsewhere; here a fault-heavy item must never be poisoned."""

_log = logging.getLogger("durable_azstorage.testing.torture")


class InlineExecutor(concurrent.futures.Executor):
    """Runs each submitted call at once, in the caller's thread (deterministic episodes)."""

    def submit(
        self, fn: Callable[..., T], /, *args: Any, **kwargs: Any
    ) -> concurrent.futures.Future[T]:
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # noqa: BLE001 - handed to the awaiting processor
            future.set_exception(exc)
        return future


def activity_key(item: ActivityWorkItem) -> tuple[str, int]:
    """(program key, task id): what activity executions are counted and explained by."""
    return program_key(item.input), item.task_id


def program_key(activity_input: str | None) -> str:
    data = json.loads(activity_input or "{}")
    return str(data.get("key", "")) if isinstance(data, dict) else ""


class SimulatedWorker:
    """One worker process with its own faulty view of the shared backend."""

    def __init__(
        self,
        name: str,
        backend: Backend,
        registry: Registry,
        *,
        now: Callable[[], Any],
        episode_pool: concurrent.futures.Executor,
    ) -> None:
        self.name = name
        self.faulty = FaultyBackend(backend)
        converter = JsonDataConverter()
        self._activity_code = LocalActivityExecutor(registry, converter, threads=1)
        self.orchestrations = OrchestrationProcessor(
            self.faulty.as_backend(),
            LocalOrchestrationExecutor(registry, converter, _log),
            episode_pool=episode_pool,
            max_dequeue_count=MAX_DEQUEUE_COUNT,
            logger=_log,
            clock=now,
        )
        self.activities = ActivityProcessor(
            self.faulty.as_backend(),
            self._activity_code,
            max_dequeue_count=MAX_DEQUEUE_COUNT,
            logger=_log,
            clock=now,
        )
        self.held: list[OrchestrationWorkItem | ActivityWorkItem] = []
        self.restarts = 0

    async def process(self, item: OrchestrationWorkItem | ActivityWorkItem) -> bool:
        """Run ``item`` through the engine; False if the worker crashed doing it."""
        try:
            if isinstance(item, OrchestrationWorkItem):
                await self.orchestrations.process(item)
            else:
                await self.activities.process(item)
        except Crash:
            return False
        finally:
            self.faulty.disarm()
        return True

    async def run_without_completing(self, item: ActivityWorkItem) -> None:
        """Run the activity's code; the caller then lets the worker die before completing."""
        await self._activity_code(item)

    def restart(self) -> None:
        """The process died and came back: everything it held is gone (locks expire)."""
        self.held.clear()
        self.restarts += 1

    def close(self) -> None:
        self._activity_code.close()
