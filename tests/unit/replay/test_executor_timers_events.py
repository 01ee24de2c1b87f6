"""Replay: durable timers, external events (case-insensitive, buffered FIFO, cancellable), send_event."""

from __future__ import annotations

from collections.abc import Generator
from datetime import datetime, timedelta
from typing import Any

from durable_azstorage.authoring.context import OrchestrationContext
from durable_azstorage.authoring.errors import TaskCancelledError
from durable_azstorage.authoring.registry import Registry
from durable_azstorage.authoring.tasks import when_any
from durable_azstorage.model.actions import (
    CompleteOrchestration,
    CreateTimer,
    SendEvent,
)
from durable_azstorage.model.status import OrchestrationStatus
from durable_azstorage.replay.executor import ExecutionResult, execute

from ..builders import (
    IID,
    T0,
    at,
    js,
    orch_completed,
    orch_started,
    raised,
    scheduled,
    sent,
    started,
    timer_created,
    timer_fired,
)


def _run(fn: Any, past: list[Any], new: list[Any], input: Any = None) -> ExecutionResult:
    r = Registry()
    r.add_orchestrator(fn, name="orch")
    return execute(r, IID, past, new)


def _result(result: ExecutionResult) -> Any:
    completion = result.completion
    assert completion is not None, result.actions
    assert completion.status is OrchestrationStatus.COMPLETED, completion.failure_details
    return completion.result


def test_a_timedelta_timer_fires_relative_to_the_episode_time() -> None:
    def orch(ctx: OrchestrationContext, _: Any) -> Generator[Any, Any, str]:
        yield ctx.create_timer(timedelta(minutes=5))
        return "woke"

    first = _run(orch, [], [orch_started(T0), started("orch")])
    assert first.actions == (CreateTimer(id=0, fire_at=T0 + timedelta(minutes=5)),)
    past = [orch_started(T0), started("orch"), timer_created(0, at(300)), orch_completed()]
    assert _result(_run(orch, past, [orch_started(at(300)), timer_fired(0, at(300))])) == js("woke")


def test_a_naive_datetime_timer_is_taken_as_utc() -> None:
    def orch(ctx: OrchestrationContext, _: Any) -> Generator[Any, Any, None]:
        yield ctx.create_timer(datetime(2030, 1, 1))

    result = _run(orch, [], [orch_started(), started("orch")])
    assert result.actions == (
        CreateTimer(id=0, fire_at=datetime.fromisoformat("2030-01-01T00:00:00+00:00")),
    )


def test_timers_reject_other_types() -> None:
    def orch(ctx: OrchestrationContext, _: Any) -> Generator[Any, Any, None]:
        yield ctx.create_timer(5)  # type: ignore[arg-type]

    completion = _run(orch, [], [orch_started(), started("orch")]).completion
    assert completion is not None and completion.failure_details is not None
    assert "datetime or timedelta" in completion.failure_details.message


def test_external_event_names_are_case_insensitive() -> None:
    def orch(ctx: OrchestrationContext, _: Any) -> Generator[Any, Any, Any]:
        return (yield ctx.wait_for_external_event("Approval"))

    past = [orch_started(), started("orch"), orch_completed()]
    assert _result(_run(orch, past, [orch_started(), raised("APPROVAL", {"ok": True})])) == js(
        {"ok": True}
    )


def test_early_events_are_buffered_fifo_per_name() -> None:
    def orch(ctx: OrchestrationContext, _: Any) -> Generator[Any, Any, Any]:
        yield ctx.create_timer(timedelta(seconds=1))
        a = yield ctx.wait_for_external_event("item")
        b = yield ctx.wait_for_external_event("other")
        c = yield ctx.wait_for_external_event("item")
        return [a, b, c]

    past = [
        orch_started(),
        started("orch"),
        timer_created(0, at(1)),
        orch_completed(),
        orch_started(),
        raised("item", 1),
        raised("other", "o"),
        raised("Item", 2),
        orch_completed(),
    ]
    assert _result(_run(orch, past, [orch_started(at(1)), timer_fired(0, at(1))])) == js(
        [1, "o", 2]
    )


def test_two_waiters_for_one_name_are_served_in_order() -> None:
    def orch(ctx: OrchestrationContext, _: Any) -> Generator[Any, Any, Any]:
        first = ctx.wait_for_external_event("e")
        second = ctx.wait_for_external_event("e")
        return [(yield first), (yield second)]

    past = [orch_started(), started("orch"), orch_completed()]
    assert _result(_run(orch, past, [orch_started(), raised("e", "x"), raised("e", "y")])) == js(
        ["x", "y"]
    )


def test_a_cancelled_event_wait_no_longer_receives_the_event() -> None:
    def orch(ctx: OrchestrationContext, _: Any) -> Generator[Any, Any, Any]:
        waiting = ctx.wait_for_external_event("approve")
        timeout = ctx.create_timer(timedelta(hours=1))
        winner = yield when_any([waiting, timeout])
        if winner is timeout:
            waiting.cancel()
            try:
                yield waiting
            except TaskCancelledError:
                pass
            late = yield ctx.wait_for_external_event("approve")
            return ["timed out", late]
        return ["approved", winner.get_result()]

    past = [
        orch_started(),
        started("orch"),
        timer_created(0, at(3600)),
        orch_completed(),
        orch_started(at(3600)),
        timer_fired(0, at(3600)),
        orch_completed(at(3600)),
    ]
    result = _run(orch, past, [orch_started(at(3700)), raised("approve", "late-yes")])
    assert _result(result) == js(["timed out", "late-yes"])
    approved = _run(orch, past[:4], [orch_started(at(5)), raised("approve", "yes")])
    assert _result(approved) == js(["approved", "yes"])


def test_a_cancelled_timer_that_still_fires_is_ignored() -> None:
    def orch(ctx: OrchestrationContext, _: Any) -> Generator[Any, Any, Any]:
        timer = ctx.create_timer(timedelta(seconds=10))
        event = ctx.wait_for_external_event("go")
        winner = yield when_any([timer, event])
        timer.cancel()
        yield ctx.call_activity("after")
        return winner is event

    past = [
        orch_started(),
        started("orch"),
        timer_created(0, at(10)),
        orch_completed(),
        orch_started(at(1)),
        raised("go"),
        scheduled(1, "after"),
        orch_completed(at(1)),
    ]
    result = _run(orch, past, [orch_started(at(10)), timer_fired(0, at(10))])
    assert result.actions == ()


def test_send_event_is_an_action_and_matches_event_sent_on_replay() -> None:
    def orch(ctx: OrchestrationContext, _: Any) -> Generator[Any, Any, str]:
        ctx.send_event("other-1", "Ping", data={"n": 1})
        yield ctx.create_timer(timedelta(seconds=1))
        return "sent"

    first = _run(orch, [], [orch_started(), started("orch")])
    assert first.actions[0] == SendEvent(
        id=0, instance_id="other-1", name="Ping", data=js({"n": 1})
    )
    past = [
        orch_started(),
        started("orch"),
        sent(0, "other-1", "Ping", {"n": 1}),
        timer_created(1, at(1)),
        orch_completed(),
    ]
    assert _result(_run(orch, past, [orch_started(at(1)), timer_fired(1, at(1))])) == js("sent")


def test_continue_as_new_carries_over_unconsumed_events_when_asked() -> None:
    def orch(ctx: OrchestrationContext, _: Any) -> Generator[Any, Any, None]:
        yield ctx.wait_for_external_event("tick")
        ctx.continue_as_new({"round": 2}, save_events=True)

    past = [orch_started(), started("orch"), orch_completed()]
    result = _run(
        orch, past, [orch_started(), raised("tick", 1), raised("tick", 2), raised("other", 3)]
    )
    completion = result.completion
    assert completion is not None
    assert completion.status is OrchestrationStatus.CONTINUED_AS_NEW
    assert completion.result == js({"round": 2})
    assert [(e.name, e.input) for e in completion.carryover_events] == [
        ("tick", "2"),
        ("other", "3"),
    ]  # type: ignore[attr-defined]


def test_continue_as_new_drops_unconsumed_events_by_default() -> None:
    def orch(ctx: OrchestrationContext, _: Any) -> None:
        ctx.continue_as_new(1)

    result = _run(orch, [], [orch_started(), started("orch"), raised("tick", 1)])
    assert result.completion == CompleteOrchestration(
        id=0, status=OrchestrationStatus.CONTINUED_AS_NEW, result="1"
    )
