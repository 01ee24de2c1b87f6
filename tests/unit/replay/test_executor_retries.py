"""Replay: retry policies become durable timers followed by a re-scheduled task."""

from __future__ import annotations

from collections.abc import Generator
from datetime import timedelta
from typing import Any

from durable_azstorage.authoring.context import OrchestrationContext
from durable_azstorage.authoring.registry import Registry
from durable_azstorage.authoring.retry import RetryPolicy
from durable_azstorage.model.actions import CreateSubOrchestration, CreateTimer, ScheduleTask
from durable_azstorage.model.errors import TaskFailedError
from durable_azstorage.model.status import OrchestrationStatus
from durable_azstorage.replay.executor import ExecutionResult, execute

from ..builders import (
    IID,
    T0,
    at,
    completed,
    failed,
    js,
    orch_completed,
    orch_started,
    scheduled,
    started,
    sub_created,
    sub_failed,
    timer_created,
    timer_fired,
)

POLICY = RetryPolicy(
    first_retry_interval=timedelta(seconds=10), max_number_of_attempts=3, backoff_coefficient=2.0
)


def flaky(ctx: OrchestrationContext, _: Any) -> Generator[Any, Any, Any]:
    try:
        return (yield ctx.call_activity("flaky", input="x", retry_policy=POLICY))
    except TaskFailedError as exc:
        return f"gave up: {exc.details.message}"


def _run(past: list[Any], new: list[Any], fn: Any = flaky) -> ExecutionResult:
    r = Registry()
    r.add_orchestrator(fn, name="orch")
    return execute(r, IID, past, new)


EP1 = [orch_started(T0), started("orch"), scheduled(0, "flaky", "x"), orch_completed()]
EP2 = [orch_started(at(1)), failed(0, "one"), timer_created(1, at(11)), orch_completed()]
EP3 = [orch_started(at(11)), timer_fired(1, at(11)), scheduled(2, "flaky", "x"), orch_completed()]
EP4 = [orch_started(at(12)), failed(2, "two"), timer_created(3, at(32)), orch_completed()]
EP5 = [orch_started(at(32)), timer_fired(3, at(32)), scheduled(4, "flaky", "x"), orch_completed()]


def test_a_failure_schedules_a_durable_retry_timer() -> None:
    result = _run(EP1, [orch_started(at(1)), failed(0, "one")])
    assert result.actions == (CreateTimer(id=1, fire_at=at(11)),)


def test_the_timer_reschedules_the_same_activity() -> None:
    result = _run(EP1 + EP2, [orch_started(at(11)), timer_fired(1, at(11))])
    assert result.actions == (ScheduleTask(id=2, name="flaky", input=js("x")),)


def test_the_delay_grows_with_the_backoff_coefficient() -> None:
    result = _run(EP1 + EP2 + EP3, [orch_started(at(12)), failed(2, "two")])
    assert result.actions == (CreateTimer(id=3, fire_at=at(12 + 20)),)


def test_a_retry_that_succeeds_returns_its_result() -> None:
    result = _run(EP1 + EP2 + EP3, [orch_started(at(12)), completed(2, "ok")])
    assert result.completion is not None and result.completion.result == js("ok")


def test_exhausted_retries_fail_the_task_with_the_last_failure() -> None:
    result = _run(EP1 + EP2 + EP3 + EP4 + EP5, [orch_started(at(33)), failed(4, "three")])
    assert result.completion is not None and result.completion.result == js("gave up: three")


def test_retry_timeout_stops_retrying_even_with_attempts_left() -> None:
    policy = RetryPolicy(
        first_retry_interval=timedelta(seconds=10),
        max_number_of_attempts=10,
        retry_timeout=timedelta(seconds=30),
    )

    def orch(ctx: OrchestrationContext, _: Any) -> Generator[Any, Any, Any]:
        return (yield ctx.call_activity("flaky", input="x", retry_policy=policy))

    past = EP1 + [
        orch_started(at(31)),
        failed(0, "late"),
    ]
    result = _run(past, [], fn=orch)
    assert result.completion is not None and result.completion.status is OrchestrationStatus.FAILED
    assert result.completion.failure_details is not None
    assert result.completion.failure_details.message.endswith("late")


def test_the_max_retry_interval_caps_the_delay() -> None:
    policy = RetryPolicy(
        first_retry_interval=timedelta(seconds=10),
        max_number_of_attempts=5,
        backoff_coefficient=10.0,
        max_retry_interval=timedelta(seconds=15),
    )

    def orch(ctx: OrchestrationContext, _: Any) -> Generator[Any, Any, Any]:
        return (yield ctx.call_activity("flaky", input="x", retry_policy=policy))

    past = EP1 + EP2 + EP3
    result = _run(past, [orch_started(at(12)), failed(2, "two")], fn=orch)
    assert result.actions == (CreateTimer(id=3, fire_at=at(12 + 15)),)


def test_sub_orchestration_retries_reuse_the_child_instance_id() -> None:
    policy = RetryPolicy(first_retry_interval=timedelta(seconds=5), max_number_of_attempts=2)

    def orch(ctx: OrchestrationContext, _: Any) -> Generator[Any, Any, Any]:
        return (yield ctx.call_sub_orchestrator("child", input=1, retry_policy=policy))

    past = [
        orch_started(),
        started("orch"),
        sub_created(0, "child", input=1),
        orch_completed(),
        orch_started(at(1)),
        sub_failed(0),
        timer_created(1, at(6)),
        orch_completed(),
    ]
    result = _run(past, [orch_started(at(6)), timer_fired(1, at(6))], fn=orch)
    assert result.actions == (
        CreateSubOrchestration(id=2, name="child", instance_id=f"{IID}:0000", input="1"),
    )
