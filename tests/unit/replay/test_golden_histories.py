"""Golden histories: recorded JSON histories replay to the same result, and the engine still
records the same history for the same scenario.

Each ``histories/<scenario>.json`` holds one instance's history in the storage format
(``serialization.codec``), produced by running the scenario below through the test driver.
A change that makes old histories replay differently (or the engine record something else)
fails here. Regenerate deliberately with ``DURABLE_GOLDEN_REGENERATE=1`` and review the diff.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Generator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from durable_azstorage.authoring.context import ActivityContext, OrchestrationContext
from durable_azstorage.authoring.registry import Registry
from durable_azstorage.authoring.retry import RetryPolicy
from durable_azstorage.authoring.tasks import when_all, when_any
from durable_azstorage.model.errors import TaskFailedError
from durable_azstorage.model.failure import FailureDetails
from durable_azstorage.model.history import ExecutionCompleted, HistoryEvent
from durable_azstorage.replay.executor import execute
from durable_azstorage.serialization.codec import decode_event, encode_event

from .driver import Driver
from .test_replay_property import check_history

HISTORIES = Path(__file__).parent / "histories"


def say_hello(ctx: ActivityContext, name: str) -> str:
    return f"Hello {name}!"


def fail_on(ctx: ActivityContext, arg: Any) -> Any:
    if arg == "bad":
        raise ValueError(f"cannot process {arg}")
    return arg


def hello_cities(ctx: OrchestrationContext, _: Any) -> Generator[Any, Any, Any]:
    results = []
    for city in ("Tokyo", "Seattle", "London"):
        results.append((yield ctx.call_activity(say_hello, input=city)))
    return results


def fan_out_fan_in(ctx: OrchestrationContext, items: list[str]) -> Generator[Any, Any, Any]:
    try:
        return (yield when_all([ctx.call_activity(fail_on, input=i) for i in items]))
    except TaskFailedError as exc:
        ctx.set_custom_status({"failed": exc.details.message})
        return (yield when_all([ctx.call_activity(say_hello, input=i) for i in items]))


def approval(ctx: OrchestrationContext, _: Any) -> Generator[Any, Any, Any]:
    timeout = ctx.create_timer(timedelta(hours=1))
    decision = ctx.wait_for_external_event("Approval")
    winner = yield when_any([timeout, decision])
    if winner is decision:
        timeout.cancel()
        return {"approved": decision.get_result(), "id": ctx.new_uuid()}
    return {"approved": False}


def parent_with_child(ctx: OrchestrationContext, _: Any) -> Generator[Any, Any, Any]:
    ok = yield ctx.call_sub_orchestrator(hello_cities)
    try:
        yield ctx.call_sub_orchestrator(fan_out_fan_in, input=["bad"], instance_id="child-explicit")
    except TaskFailedError as exc:
        return [ok, exc.details.error_type]
    return [ok, "no failure"]


def retried(ctx: OrchestrationContext, _: Any) -> Generator[Any, Any, Any]:
    policy = RetryPolicy(
        first_retry_interval=timedelta(seconds=30),
        max_number_of_attempts=3,
        backoff_coefficient=2.0,
    )
    try:
        yield ctx.call_activity(fail_on, input="bad", retry_policy=policy)
    except TaskFailedError as exc:
        ctx.send_event("auditor", "gave-up", data=exc.details.message)
        return "gave up"
    return "unexpected"


def counter(ctx: OrchestrationContext, n: int) -> Generator[Any, Any, Any]:
    yield ctx.create_timer(timedelta(minutes=1))
    if n < 2:
        ctx.continue_as_new(n + 1)
        return None
    return n


def _registry() -> Registry:
    r = Registry()
    for fn in (hello_cities, fan_out_fan_in, approval, parent_with_child, retried, counter):
        r.add_orchestrator(fn)
    r.add_activity(say_hello)
    r.add_activity(fail_on)
    return r


def _approve_once(driver: Driver) -> bool:
    driver.raise_event("inst-1", "APPROVAL", data=True)
    driver.on_idle = None
    return True


SCENARIOS: dict[str, tuple[str, Any, Callable[[Driver], bool] | None, str]] = {
    # file name: (orchestrator, input, on_idle, instance whose history is stored)
    "sequence": ("hello_cities", None, None, "inst-1"),
    "fan_out_fan_in": ("fan_out_fan_in", ["a", "bad", "c"], None, "inst-1"),
    "external_event_race": ("approval", None, _approve_once, "inst-1"),
    "sub_orchestrations": ("parent_with_child", None, None, "inst-1"),
    "retries": ("retried", None, None, "inst-1"),
    "continue_as_new": ("counter", 0, None, "inst-1"),
}


def _normalized(events: list[HistoryEvent]) -> list[dict[str, Any]]:
    """Encoded events with stack traces blanked (they hold machine-specific file paths)."""
    return [encode_event(_strip_traces(e)) for e in events]


def _strip_traces(value: Any) -> Any:
    if isinstance(value, FailureDetails):
        return dataclasses.replace(
            value, stack_trace=None, inner_failure=_strip_traces(value.inner_failure)
        )
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        changes = {
            f.name: _strip_traces(getattr(value, f.name))
            for f in dataclasses.fields(value)
            if isinstance(getattr(value, f.name), FailureDetails)
        }
        return dataclasses.replace(value, **changes) if changes else value
    return value


def _record(name: str) -> list[HistoryEvent]:
    orchestrator, input, on_idle, instance_id = SCENARIOS[name]
    driver = Driver(_registry(), on_idle=on_idle, idle_before_timers=True)
    driver.start(orchestrator, input)
    driver.run()
    return driver.histories[instance_id]


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_golden_history_replays_to_the_recorded_result(name: str) -> None:
    path = HISTORIES / f"{name}.json"
    if os.environ.get("DURABLE_GOLDEN_REGENERATE"):
        path.write_text(json.dumps(_normalized(_record(name)), indent=1) + "\n", encoding="utf-8")
    document = json.loads(path.read_text(encoding="utf-8"))
    history = [decode_event(item, path=f"{name}[{i}]") for i, item in enumerate(document)]
    recorded = [e for e in history if isinstance(e, ExecutionCompleted)]
    assert len(recorded) == 1, "a golden history ends with its ExecutionCompleted"
    registry = _registry()
    result = execute(registry, "inst-1", history, [])
    completion = result.completion
    assert completion is not None
    assert (completion.status, completion.result) == (recorded[0].status, recorded[0].result)
    check_history(registry, "inst-1", history)


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_the_engine_still_records_the_golden_history(name: str) -> None:
    expected = json.loads((HISTORIES / f"{name}.json").read_text(encoding="utf-8"))
    assert _normalized(_record(name)) == expected
