"""Replay: when_all / when_any fan-out and fan-in, and sub-orchestrations."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from durable_azstorage.authoring.context import OrchestrationContext
from durable_azstorage.authoring.registry import Registry
from durable_azstorage.authoring.tasks import Task, when_all, when_any
from durable_azstorage.model.actions import CreateSubOrchestration, ScheduleTask
from durable_azstorage.model.errors import TaskFailedError
from durable_azstorage.model.status import OrchestrationStatus
from durable_azstorage.replay.executor import ExecutionResult, execute

from ..builders import (
    IID,
    completed,
    failed,
    js,
    orch_completed,
    orch_started,
    scheduled,
    started,
    sub_completed,
    sub_created,
    sub_failed,
)


def _run(fn: Any, past: list[Any], new: list[Any]) -> ExecutionResult:
    r = Registry()
    r.add_orchestrator(fn, name="orch")
    r.add_orchestrator(lambda ctx, x: x, name="child")
    return execute(r, IID, past, new)


def fan_out(ctx: OrchestrationContext, _: Any) -> Generator[Any, Any, Any]:
    try:
        return (yield when_all([ctx.call_activity("work", input=i) for i in range(3)]))
    except TaskFailedError as exc:
        return f"failed: {exc.details.message}"


FANNED = [
    orch_started(),
    started("orch"),
    scheduled(0, "work", 0),
    scheduled(1, "work", 1),
    scheduled(2, "work", 2),
    orch_completed(),
]


def test_fan_out_schedules_every_task_in_one_episode() -> None:
    result = _run(fan_out, [], [orch_started(), started("orch")])
    assert result.actions == tuple(ScheduleTask(id=i, name="work", input=js(i)) for i in range(3))


def test_when_all_returns_results_in_task_order_whatever_the_completion_order() -> None:
    result = _run(
        fan_out, FANNED, [orch_started(), completed(2, "c"), completed(0, "a"), completed(1, "b")]
    )
    assert result.completion is not None and result.completion.result == js(["a", "b", "c"])


def test_when_all_waits_for_every_child_before_raising_the_first_failure() -> None:
    partial = _run(fan_out, FANNED, [orch_started(), failed(1, "first"), completed(0, "a")])
    assert partial.completion is None, "must keep waiting for task 2"
    done = _run(
        fan_out,
        FANNED,
        [orch_started(), failed(1, "first"), completed(0, "a"), failed(2, "second")],
    )
    assert done.completion is not None and done.completion.result == js("failed: first")


def test_when_any_result_is_the_winning_task() -> None:
    def race(ctx: OrchestrationContext, _: Any) -> Generator[Any, Any, Any]:
        slow = ctx.call_activity("slow")
        fast = ctx.call_activity("fast")
        winner: Task[Any] = yield when_any([slow, fast])
        return ["fast" if winner is fast else "slow", winner.get_result()]

    past = [
        orch_started(),
        started("orch"),
        scheduled(0, "slow"),
        scheduled(1, "fast"),
        orch_completed(),
    ]
    result = _run(race, past, [orch_started(), completed(1, 42), completed(0, 7)])
    assert result.completion is not None and result.completion.result == js(["fast", 42])


def test_when_any_with_a_failed_winner_lets_the_code_inspect_it() -> None:
    def race(ctx: OrchestrationContext, _: Any) -> Generator[Any, Any, Any]:
        winner: Task[Any] = yield when_any([ctx.call_activity("a"), ctx.call_activity("b")])
        return winner.is_failed

    past = [orch_started(), started("orch"), scheduled(0, "a"), scheduled(1, "b"), orch_completed()]
    result = _run(race, past, [orch_started(), failed(0)])
    assert result.completion is not None and result.completion.result == "true"


def test_yielding_already_completed_tasks_in_a_long_loop_does_not_recurse() -> None:
    def fan_in(ctx: OrchestrationContext, _: Any) -> Generator[Any, Any, Any]:
        tasks = [ctx.call_activity("w", input=i) for i in range(3000)]
        yield when_all(tasks)
        total = 0
        for t in tasks:
            total += yield t
        return total

    past = [
        orch_started(),
        started("orch"),
        *[scheduled(i, "w", i) for i in range(3000)],
        orch_completed(),
    ]
    result = _run(fan_in, past, [orch_started(), *[completed(i, 1) for i in range(3000)]])
    assert result.completion is not None and result.completion.result == "3000"


def parent(ctx: OrchestrationContext, _: Any) -> Generator[Any, Any, Any]:
    a = yield ctx.call_sub_orchestrator("child", input=1)
    try:
        yield ctx.call_sub_orchestrator("child", input=2, instance_id="explicit", version="2.0")
    except TaskFailedError as exc:
        return [a, exc.details.message]
    return [a, "no failure"]


def test_sub_orchestrations_get_a_deterministic_default_instance_id() -> None:
    result = _run(parent, [], [orch_started(), started("orch")])
    assert result.actions == (
        CreateSubOrchestration(id=0, name="child", instance_id=f"{IID}:0000", input="1"),
    )
    past = [orch_started(), started("orch"), sub_created(0, "child", input=1), orch_completed()]
    second = _run(parent, past, [orch_started(), sub_completed(0, "one")])
    assert second.actions == (
        CreateSubOrchestration(
            id=1, name="child", instance_id="explicit", input="2", version="2.0"
        ),
    )


def test_a_failed_sub_orchestration_raises_task_failed_error_in_the_parent() -> None:
    past = [
        orch_started(),
        started("orch"),
        sub_created(0, "child", input=1),
        orch_completed(),
        orch_started(),
        sub_completed(0, "one"),
        sub_created(1, "child", "explicit", 2),
        orch_completed(),
    ]
    result = _run(parent, past, [orch_started(), sub_failed(1, "child broke")])
    assert result.completion is not None
    assert result.completion.status is OrchestrationStatus.COMPLETED
    assert result.completion.result == js(["one", "child broke"])


def test_when_all_raises_the_failure_of_the_first_failed_task_in_list_order() -> None:
    done = _run(
        fan_out,
        FANNED,
        [orch_started(), failed(2, "third"), failed(1, "second"), completed(0, "a")],
    )
    assert done.completion is not None and done.completion.result == js("failed: second")
