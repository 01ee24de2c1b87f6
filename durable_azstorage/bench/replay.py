"""Replay cost: microseconds per replayed history event (``python -m durable_azstorage.bench.replay``).

Builds the real history of an orchestrator by running episodes (activity results fed back
as messages), until it holds about ``--events`` events, then times a full replay of that
history, which is what a worker pays when an instance is not in its cache.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Generator
from datetime import datetime, timedelta, timezone
from typing import Any

from durable_azstorage.authoring.context import ActivityContext, OrchestrationContext
from durable_azstorage.authoring.registry import Registry
from durable_azstorage.authoring.tasks import Task, when_all
from durable_azstorage.model.history import (
    ExecutionStarted,
    HistoryEvent,
    OrchestrationInstance,
    TaskCompleted,
    TaskScheduled,
)
from durable_azstorage.model.messages import TaskMessage
from durable_azstorage.replay.episode import run_episode
from durable_azstorage.replay.executor import execute
from durable_azstorage.serialization.converter import JsonDataConverter

_T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def _echo(ctx: ActivityContext, value: Any) -> Any:
    return value


def _sequence(ctx: OrchestrationContext, count: int) -> Generator[Task[Any], Any, int]:
    total = 0
    for i in range(count):
        total += (yield ctx.call_activity(_echo, input={"i": i, "payload": "x" * 32}))["i"]
    return total


def _fan_out(ctx: OrchestrationContext, count: int) -> Generator[Task[Any], Any, int]:
    results = yield when_all([ctx.call_activity(_echo, input={"i": i}) for i in range(count)])
    return sum(r["i"] for r in results)


def build_history(name: str, count: int) -> list[HistoryEvent]:
    """Run episodes until the orchestration completes; returns its full history."""
    registry = _registry()
    converter = JsonDataConverter()
    me = OrchestrationInstance(instance_id="bench", execution_id="e1")
    start = ExecutionStarted(
        timestamp=_T0, name=name, instance=me, input=converter.serialize(count)
    )
    history: list[HistoryEvent] = []
    messages = [TaskMessage(instance=me, event=start)]
    now = _T0
    while messages:
        now += timedelta(milliseconds=10)
        episode = run_episode(registry, "bench", history, messages, now=now, converter=converter)
        history.extend(episode.new_events)
        messages = []
        for request in episode.activity_messages:
            assert isinstance(request.event, TaskScheduled)
            done = TaskCompleted(
                task_scheduled_id=request.event.event_id, result=request.event.input, timestamp=now
            )
            messages.append(TaskMessage(instance=me, event=done))
    return history


def _registry() -> Registry:
    registry = Registry()
    registry.add_activity(_echo, name="echo")
    registry.add_orchestrator(_sequence, name="sequence")
    registry.add_orchestrator(_fan_out, name="fan_out")
    return registry


def measure(history: list[HistoryEvent], repeats: int) -> float:
    """Median microseconds per event of a full replay (past events only)."""
    registry = _registry()
    converter = JsonDataConverter()
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        execute(registry, "bench", history, (), converter=converter)
        samples.append((time.perf_counter() - started) / len(history) * 1e6)
    return statistics.median(samples)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1000, help="target history length")
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args(argv)
    # sequence: 4 events per activity (OrchestratorStarted, TaskCompleted, TaskScheduled,
    # OrchestratorCompleted); fan-out: 2 per activity plus a few.
    for name, count in (("sequence", args.events // 4 - 1), ("fan_out", args.events // 2 - 3)):
        history = build_history(name, count)
        micros = measure(history, args.repeats)
        print(
            f"{name:9s} {len(history):5d} events: {micros:6.2f} us/event, "
            f"{micros * len(history) / 1000:7.2f} ms per full replay"
        )


if __name__ == "__main__":
    main()
