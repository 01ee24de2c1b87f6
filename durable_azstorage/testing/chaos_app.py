"""The worker app of the chaos run (``durable-azstorage worker --app ...chaos_app:make_worker``).

``chaos_flow`` exercises what a crash can break: a sequence of activities, a fan-out, a
durable timer, a sub-orchestration, and an external event the client raises (sometimes
before the instance starts). Its output is a deterministic function of its input, so the
chaos run can check every instance. Each activity execution is recorded as an empty file in
``DURABLE_AZSTORAGE_CHAOS_RECORD`` (one per execution), so re-runs can be counted.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Generator
from datetime import timedelta
from pathlib import Path
from typing import Any

from durable_azstorage.authoring.context import ActivityContext, OrchestrationContext
from durable_azstorage.authoring.tasks import when_all
from durable_azstorage.azure.settings import AzureStorageSettings
from durable_azstorage.worker.worker import TaskHubWorker

RECORD_ENV = "DURABLE_AZSTORAGE_CHAOS_RECORD"
STEP_SECONDS = 0.05


def expected_output(number: int) -> dict[str, Any]:
    """What ``chaos_flow`` returns for ``number``."""
    return {
        "steps": [number * 10 + i for i in range(3)],
        "fanout": sum(number + i for i in range(4)),
        "child": number * 2,
        "event": f"go-{number}",
    }


def chaos_flow(ctx: OrchestrationContext, number: int) -> Generator[Any, Any, dict[str, Any]]:
    steps = []
    for i in range(3):
        steps.append((yield ctx.call_activity(work, input=number * 10 + i)))
    parts = yield when_all([ctx.call_activity(work, input=number + i) for i in range(4)])
    yield ctx.create_timer(timedelta(seconds=1))
    child = yield ctx.call_sub_orchestrator(chaos_child, input=number)
    event = yield ctx.wait_for_external_event("go")
    return {"steps": steps, "fanout": sum(parts), "child": child, "event": event}


def chaos_child(ctx: OrchestrationContext, number: int) -> Generator[Any, Any, int]:
    doubled = yield ctx.call_activity(double, input=number)
    return int(doubled)


def work(ctx: ActivityContext, value: int) -> int:
    _record(ctx, "work", value)
    time.sleep(STEP_SECONDS)
    return value


def double(ctx: ActivityContext, value: int) -> int:
    _record(ctx, "double", value)
    return value * 2


def _record(ctx: ActivityContext, name: str, value: int) -> None:
    folder = os.environ.get(RECORD_ENV)
    if folder:
        marker = f"{ctx.orchestration_id}.{ctx.task_id}.{name}.{value}.{uuid.uuid4().hex}"
        Path(folder, marker).touch()


def make_worker() -> TaskHubWorker:
    worker = TaskHubWorker(AzureStorageSettings.from_env())
    worker.add_orchestrator(chaos_flow)
    worker.add_orchestrator(chaos_child)
    worker.add_activity(work)
    worker.add_activity(double)
    return worker


__all__ = ["RECORD_ENV", "chaos_child", "chaos_flow", "expected_output", "make_worker"]
