"""run_episode: start, completion, discarded messages, restart, terminate, suspend/resume."""

from __future__ import annotations

import dataclasses
from collections.abc import Generator
from datetime import timedelta
from typing import Any

import pytest

from durable_azstorage.authoring.context import OrchestrationContext
from durable_azstorage.authoring.registry import Registry
from durable_azstorage.model.history import (
    EventRaised,
    ExecutionCompleted,
    ExecutionStarted,
    ExecutionTerminated,
    HistoryEvent,
    OrchestratorCompleted,
    OrchestratorStarted,
    TaskScheduled,
    TimerFired,
)
from durable_azstorage.model.status import OrchestrationStatus
from durable_azstorage.replay.episode import Episode, run_episode
from durable_azstorage.serialization.converter import JsonDataConverter

from ..builders import (
    EXEC,
    IID,
    T0,
    at,
    completed,
    execution_completed,
    js,
    me,
    msg,
    orch_completed,
    orch_started,
    parent_of,
    raised,
    resumed,
    scheduled,
    started,
    sub_created,
    suspended,
    terminated,
    timer_created,
    timer_fired,
)

NOW = at(100)


def approval(ctx: OrchestrationContext, order: Any) -> Generator[Any, Any, Any]:
    ctx.set_custom_status("reserving")
    reserved = yield ctx.call_activity("reserve", input=order)
    decision = yield ctx.wait_for_external_event("decision")
    return [reserved, decision]


@pytest.fixture
def registry() -> Registry:
    r = Registry()
    r.add_orchestrator(approval)
    r.add_orchestrator(lambda ctx, x: x, name="echo")
    return r


def episode(
    registry: Registry, history: list[HistoryEvent], *messages: Any, now: Any = NOW
) -> Episode:
    ids = iter(f"new-{i}" for i in range(100))
    return run_episode(
        registry,
        IID,
        history,
        list(messages),
        now=now,
        converter=JsonDataConverter(),
        new_execution_id=lambda: next(ids),
    )


def types(events: Any) -> list[str]:
    return [type(e).__name__ for e in events]


RESERVING = [
    orch_started(T0),
    started("approval", {"id": 7}, tags={"team": "a"}, version="1"),
    scheduled(0, "reserve", {"id": 7}),
    orch_completed(T0),
]


def test_a_start_message_begins_the_instance(registry: Registry) -> None:
    start = started("approval", {"id": 7}, tags={"team": "a"}, version="1")
    ep = episode(registry, [], msg(start))
    assert types(ep.new_events) == [
        "OrchestratorStarted",
        "ExecutionStarted",
        "TaskScheduled",
        "OrchestratorCompleted",
    ]
    assert ep.new_events[0] == OrchestratorStarted(timestamp=NOW)
    assert not ep.new_execution and ep.discarded == ()
    (request,) = ep.activity_messages
    assert request.instance == me() and isinstance(request.event, TaskScheduled)
    assert request.event.name == "reserve" and request.event.input == js({"id": 7})
    state = ep.state
    assert state is not None
    assert (state.name, state.runtime_status, state.created_at, state.last_updated_at) == (
        "approval",
        OrchestrationStatus.RUNNING,
        T0,
        NOW,
    )
    assert (state.input, state.custom_status, state.tags, state.version, state.execution_id) == (
        js({"id": 7}),
        js("reserving"),
        {"team": "a"},
        "1",
        EXEC,
    )
    assert state.completed_at is None and state.output is None


def test_completion_records_execution_completed_and_the_output(registry: Registry) -> None:
    history = RESERVING + [orch_started(at(1)), completed(0, "ok"), orch_completed(at(1))]
    ep = episode(registry, history, msg(raised("Decision", "yes"), execution_id=None))
    assert types(ep.new_events) == [
        "OrchestratorStarted",
        "EventRaised",
        "ExecutionCompleted",
        "OrchestratorCompleted",
    ]
    state = ep.state
    assert state is not None and state.runtime_status is OrchestrationStatus.COMPLETED
    assert state.output == js(["ok", "yes"]) and state.completed_at == NOW


def test_messages_for_an_unknown_instance_are_discarded(registry: Registry) -> None:
    ep = episode(registry, [], msg(raised("decision")))
    assert ep.new_events == () and ep.state is None
    assert [reason for _, reason in ep.discarded] == ["no such instance (it has not been started)"]


def test_a_duplicate_start_for_the_running_execution_is_discarded(registry: Registry) -> None:
    ep = episode(registry, RESERVING, msg(started("approval", {"id": 7})))
    assert ep.new_events == () and ep.state is None
    assert "duplicate ExecutionStarted" in ep.discarded[0][1]


def test_events_to_a_completed_instance_are_dropped(registry: Registry) -> None:
    history = RESERVING + [
        orch_started(),
        completed(0),
        execution_completed(1, "done"),
        orch_completed(),
    ]
    ep = episode(registry, history, msg(raised("decision")), msg(terminated("late")))
    assert ep.new_events == () and ep.state is None
    assert all("already ended (Completed)" in reason for _, reason in ep.discarded)


def test_a_start_with_a_new_execution_id_restarts_an_ended_instance(registry: Registry) -> None:
    history = RESERVING + [
        orch_started(),
        completed(0),
        execution_completed(1, "done"),
        orch_completed(),
    ]
    restart = started("approval", {"id": 8}, execution_id="exec-2", ts=at(50))
    ep = episode(registry, history, msg(raised("stale")), msg(restart, execution_id="exec-2"))
    assert ep.new_execution
    assert types(ep.new_events) == [
        "OrchestratorStarted",
        "ExecutionStarted",
        "TaskScheduled",
        "OrchestratorCompleted",
    ]
    assert ep.new_events[1] == restart
    assert (
        ep.state is not None and ep.state.execution_id == "exec-2" and ep.state.created_at == at(50)
    )
    assert ep.activity_messages[0].instance == me("exec-2")
    assert len(ep.discarded) == 1


def test_continue_as_new_records_the_chains_first_execution_id(registry: Registry) -> None:
    def again(ctx: OrchestrationContext, n: int) -> None:
        if n < 2:
            ctx.continue_as_new(n + 1)

    registry.add_orchestrator(again)
    ep = episode(registry, [], msg(started("again", 0, parent=parent_of(3))))
    # Three generations ran in one episode; the last one's start is committed, and it still
    # names the execution id the parent started (through generation 1, "new-0").
    (last_start,) = [e for e in ep.new_events if isinstance(e, ExecutionStarted)]
    assert (last_start.instance.execution_id, last_start.generation) == ("new-1", 2)
    assert last_start.first_execution_id == EXEC and last_start.parent == parent_of(3)


def test_a_re_sent_start_of_a_continued_as_new_chain_is_discarded_after_it_ended(
    registry: Registry,
) -> None:
    # Generation 1 of a child first started (by its parent) as EXEC; it has ended.
    gen1 = dataclasses.replace(
        started("echo", 1, execution_id="exec-gen1", parent=parent_of(3), generation=1),
        first_execution_id=EXEC,
    )
    history = [orch_started(), gen1, execution_completed(0, 1), orch_completed()]
    stale = started("echo", 0, parent=parent_of(3))  # the parent's recovery re-sends this
    ep = episode(registry, history, msg(stale))
    assert ep.new_events == () and ep.state is None and not ep.new_execution
    assert "stale ExecutionStarted" in ep.discarded[0][1]

    retry = started("echo", 0, execution_id="exec-attempt-2", parent=parent_of(3))
    ep = episode(registry, history, msg(retry, execution_id="exec-attempt-2"))
    assert ep.new_execution and ep.state is not None and ep.state.execution_id == "exec-attempt-2"


def test_a_late_start_of_an_earlier_sdk_retry_attempt_is_discarded_after_the_child_ended(
    registry: Registry,
) -> None:
    # The child ran attempt 1 (the SDK's retry under task 3) to its end.
    attempt = dataclasses.replace(parent_of(3), schedule_index=1)
    history = [
        orch_started(),
        started("echo", 1, execution_id="exec-a1", parent=attempt),
        execution_completed(0, 1),
        orch_completed(),
    ]
    late = started("echo", 0, execution_id="exec-a0", parent=parent_of(3))  # attempt 0, re-sent
    ep = episode(registry, history, msg(late, execution_id="exec-a0"))
    assert ep.new_events == () and "stale ExecutionStarted" in ep.discarded[0][1]

    later = dataclasses.replace(parent_of(3), schedule_index=2)
    retry = started("echo", 2, execution_id="exec-a2", parent=later)
    ep = episode(registry, history, msg(retry, execution_id="exec-a2"))
    assert ep.new_execution and ep.state is not None and ep.state.execution_id == "exec-a2"


def test_a_start_for_another_execution_while_running_is_discarded(registry: Registry) -> None:
    ep = episode(
        registry, RESERVING, msg(started("approval", execution_id="exec-9"), execution_id="exec-9")
    )
    assert ep.new_events == () and "is running execution" in ep.discarded[0][1]


def test_messages_for_an_older_execution_are_discarded(registry: Registry) -> None:
    ep = episode(registry, RESERVING, msg(completed(0, "stale"), execution_id="exec-0"))
    assert ep.new_events == () and "addressed to execution 'exec-0'" in ep.discarded[0][1]


def test_duplicate_and_unknown_results_are_discarded_before_reaching_history(
    registry: Registry,
) -> None:
    ep = episode(
        registry, RESERVING, msg(completed(0, "a")), msg(completed(0, "b")), msg(completed(5))
    )
    assert types(ep.new_events) == ["OrchestratorStarted", "TaskCompleted", "OrchestratorCompleted"]
    reasons = [reason for _, reason in ep.discarded]
    assert "duplicate task response for id 0" in reasons[0]
    assert "no TaskScheduled event with id 5" in reasons[1]


def test_terminate_ends_the_instance_and_drops_new_decisions(registry: Registry) -> None:
    ep = episode(registry, RESERVING, msg(completed(0, "ok")), msg(terminated("operator said so")))
    assert types(ep.new_events) == [
        "OrchestratorStarted",
        "TaskCompleted",
        "ExecutionTerminated",
        "ExecutionCompleted",
        "OrchestratorCompleted",
    ]
    state = ep.state
    assert state is not None and state.runtime_status is OrchestrationStatus.TERMINATED
    assert state.output == js("operator said so") and state.completed_at == NOW
    assert ep.activity_messages == () and ep.timer_messages == ()


def test_messages_after_a_terminate_in_the_same_batch_are_discarded(registry: Registry) -> None:
    ep = episode(registry, RESERVING, msg(terminated()), msg(raised("decision")))
    assert "already ended (Terminated)" in ep.discarded[0][1]


def test_suspended_instances_record_events_but_do_not_run_the_code(registry: Registry) -> None:
    ep = episode(registry, RESERVING, msg(suspended("maintenance")), msg(completed(0, "ok")))
    assert types(ep.new_events) == [
        "OrchestratorStarted",
        "ExecutionSuspended",
        "TaskCompleted",
        "OrchestratorCompleted",
    ]
    assert ep.state is not None and ep.state.runtime_status is OrchestrationStatus.SUSPENDED
    history = RESERVING + list(ep.new_events)
    while_suspended = episode(registry, history, msg(raised("decision", "yes")))
    assert while_suspended.state is not None
    assert while_suspended.state.runtime_status is OrchestrationStatus.SUSPENDED
    history += list(while_suspended.new_events)
    resumed_ep = episode(registry, history, msg(resumed()))
    assert (
        resumed_ep.state is not None
        and resumed_ep.state.runtime_status is OrchestrationStatus.COMPLETED
    )
    assert resumed_ep.state.output == js(["ok", "yes"])


def test_suspend_twice_and_resume_when_running_are_discarded(registry: Registry) -> None:
    history = RESERVING + [orch_started(), suspended(), orch_completed()]
    assert "already suspended" in episode(registry, history, msg(suspended())).discarded[0][1]
    assert "not suspended" in episode(registry, RESERVING, msg(resumed())).discarded[0][1]


def test_a_suspended_instance_can_be_terminated(registry: Registry) -> None:
    history = RESERVING + [orch_started(), suspended(), orch_completed()]
    ep = episode(registry, history, msg(terminated("stop")))
    assert ep.state is not None and ep.state.runtime_status is OrchestrationStatus.TERMINATED


def parent_of_two(ctx: OrchestrationContext, _: Any) -> Generator[Any, Any, Any]:
    return (yield ctx.call_sub_orchestrator("echo", input=1)), (
        yield ctx.wait_for_external_event("x")
    )


def test_terminate_recurses_into_running_sub_orchestrations(registry: Registry) -> None:
    registry.add_orchestrator(parent_of_two)
    history = [
        orch_started(),
        started("parent_of_two"),
        sub_created(0, "echo", input=1),
        orch_completed(),
    ]
    ep = episode(registry, history, msg(terminated("bye")))
    (stop,) = ep.orchestrator_messages
    assert stop.instance.instance_id == f"{IID}:0000" and stop.instance.execution_id is None
    assert isinstance(stop.event, ExecutionTerminated) and stop.event.recurse
    assert stop.event.input == js("bye")
    shallow = episode(registry, history, msg(terminated("bye", recurse=False)))
    assert shallow.orchestrator_messages == ()


def test_timers_are_sent_to_self_with_their_fire_time(registry: Registry) -> None:
    def sleeper(ctx: OrchestrationContext, _: Any) -> Generator[Any, Any, None]:
        yield ctx.create_timer(timedelta(days=30))

    registry.add_orchestrator(sleeper)
    ep = episode(registry, [], msg(started("sleeper")))
    (timer,) = ep.timer_messages
    assert timer.instance == me() and isinstance(timer.event, TimerFired)
    assert timer.event.fire_at == NOW + timedelta(days=30) == timer.visible_at()


def test_a_timer_delivered_early_is_re_armed_instead_of_firing(registry: Registry) -> None:
    def sleeper(ctx: OrchestrationContext, _: Any) -> Generator[Any, Any, str]:
        yield ctx.create_timer(at(10_000))
        return "done"

    registry.add_orchestrator(sleeper)
    history = [orch_started(), started("sleeper"), timer_created(0, at(10_000)), orch_completed()]
    early = msg(timer_fired(0, at(10_000)))
    ep = episode(registry, history, early, now=at(5_000))
    assert ep.new_events == () and ep.timer_messages == (early,)
    assert ep.state is not None and ep.state.runtime_status is OrchestrationStatus.RUNNING
    assert "not due until" in ep.discarded[0][1]
    on_time = episode(registry, history, early, now=at(10_000))
    assert (
        on_time.state is not None and on_time.state.runtime_status is OrchestrationStatus.COMPLETED
    )


def test_an_unregistered_orchestrator_fails_the_instance(registry: Registry) -> None:
    ep = episode(registry, [], msg(started("missing")))
    assert ep.state is not None and ep.state.runtime_status is OrchestrationStatus.FAILED
    assert ep.state.failure_details is not None
    assert "'missing' is not registered" in ep.state.failure_details.message
    assert isinstance(ep.new_events[-2], ExecutionCompleted)


def test_events_carry_their_own_timestamps_and_markers_use_now(registry: Registry) -> None:
    ep = episode(registry, RESERVING, msg(raised("decision", ts=at(3))))
    assert ep.new_events[0] == OrchestratorStarted(timestamp=NOW)
    assert isinstance(ep.new_events[1], EventRaised) and ep.new_events[1].timestamp == at(3)
    assert ep.new_events[-1] == OrchestratorCompleted(timestamp=NOW)
    assert isinstance(RESERVING[1], ExecutionStarted)


def test_terminate_in_the_same_batch_as_the_start_wins_over_an_immediate_return(
    registry: Registry,
) -> None:
    ep = episode(registry, [], msg(started("echo", 7)), msg(terminated("cancelled before start")))
    assert types(ep.new_events) == [
        "OrchestratorStarted",
        "ExecutionStarted",
        "ExecutionTerminated",
        "ExecutionCompleted",
        "OrchestratorCompleted",
    ]
    completion = ep.new_events[3]
    assert isinstance(completion, ExecutionCompleted)
    assert completion.status is OrchestrationStatus.TERMINATED
    assert ep.state is not None and ep.state.runtime_status is OrchestrationStatus.TERMINATED
    assert ep.state.output == js("cancelled before start")
