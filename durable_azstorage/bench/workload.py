"""The orchestrations the benchmark runs, importable by worker processes (``scale``).

``worker_from_env`` is what ``durable-azstorage worker --app
durable_azstorage.bench.workload:worker_from_env`` loads: a worker for the hub named by the
``DURABLE_AZSTORAGE_*`` environment with every benchmark function registered.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from durable_azstorage.authoring.context import ActivityContext, OrchestrationContext
from durable_azstorage.authoring.tasks import Task, when_all
from durable_azstorage.azure.settings import AzureStorageSettings
from durable_azstorage.backend.protocol import Backend
from durable_azstorage.worker.worker import TaskHubWorker

SEQUENCE_LENGTH = 5  # activities per ``sequence`` orchestration


def bench_echo(ctx: ActivityContext, value: int) -> int:
    """The cheapest possible activity: what is measured is the engine, not the work."""
    return value + 1


def bench_sequence(ctx: OrchestrationContext, length: int) -> Generator[Task[Any], Any, int]:
    """``length`` activities one after the other (function chaining)."""
    value = 0
    for _ in range(length):
        value = yield ctx.call_activity(bench_echo, input=value)
    return value


def bench_fanout(ctx: OrchestrationContext, size: int) -> Generator[Task[Any], Any, int]:
    """``size`` activities in parallel, then their sum (fan-out/fan-in)."""
    results = yield when_all([ctx.call_activity(bench_echo, input=i) for i in range(size)])
    return int(sum(results))


def bench_single(ctx: OrchestrationContext, value: int) -> Generator[Task[Any], Any, int]:
    """One activity: the shortest useful orchestration (latency)."""
    result: int = yield ctx.call_activity(bench_echo, input=value)
    return result


def register(worker: TaskHubWorker) -> TaskHubWorker:
    """Register every benchmark function on ``worker``."""
    worker.add_activity(bench_echo)
    for fn in (bench_sequence, bench_fanout, bench_single):
        worker.add_orchestrator(fn)
    return worker


def make_worker(
    *,
    settings: AzureStorageSettings | None = None,
    backend: Backend | None = None,
    max_concurrent_activities: int = 10,
) -> TaskHubWorker:
    """A worker with the benchmark functions, from settings or an existing backend."""
    return register(
        TaskHubWorker(
            settings, backend=backend, max_concurrent_activities=max_concurrent_activities
        )
    )


def worker_from_env() -> TaskHubWorker:
    """The ``--app`` target of the worker processes started by ``bench scale``."""
    return make_worker(settings=AzureStorageSettings.from_env())
