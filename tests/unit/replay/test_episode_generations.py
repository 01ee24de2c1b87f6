"""run_episode: continue-as-new, sub-orchestration start and parent notices, end to end with
the test driver."""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import replace
from typing import Any

from durable_azstorage.authoring.context import OrchestrationContext
from durable_azstorage.authoring.errors import OrchestrationTerminatedError
from durable_azstorage.authoring.registry import Registry
from durable_azstorage.model.errors import TaskFailedError
from durable_azstorage.model.failure import qualified_type_name
from durable_azstorage.model.history import (
    ExecutionCompleted,
    ExecutionStarted,
    GenericEvent,
    OrchestrationInstance,
    SubOrchestrationInstanceCompleted,
    SubOrchestrationInstanceCreated,
    SubOrchestrationInstanceFailed,
)
from durable_azstorage.model.outbound import WAKE_UP, child_execution_id
from durable_azstorage.model.status import OrchestrationStatus
from durable_azstorage.replay.episode import MAX_GENERATIONS_PER_EPISODE, Episode, run_episode
from durable_azstorage.serialization.converter import JsonDataConverter

from ..builders import (
    IID,
    T0,
    at,
    js,
    msg,
    orch_completed,
    orch_started,
    parent_of,
    raised,
    started,
    terminated,
)
from .driver import Driver


def counter(ctx: OrchestrationContext, n: int) -> Generator[Any, Any, Any]:
    if n < 3:
        yield ctx.wait_for_external_event("tick")
        ctx.send_event("observer", "progress", data=n)
        ctx.continue_as_new(n + 1, save_events=True)
        return None
    return n


COUNTER_STARTED = [orch_started(), started("counter", 0), orch_completed()]


def _two_ticks(new_execution_id: Callable[[], str]) -> Episode:
    """``counter``'s generation 0 gets two ticks: it continues twice in one episode."""
    r = Registry()
    r.add_orchestrator(counter)
    return run_episode(
        r,
        IID,
        COUNTER_STARTED,
        [msg(raised("tick")), msg(raised("tick", "extra"))],
        now=at(5),
        converter=JsonDataConverter(),
        new_execution_id=new_execution_id,
    )


def test_continue_as_new_replaces_the_history_and_runs_the_next_generation_now() -> None:
    ep = _two_ticks(lambda: "gen-2")
    assert ep.new_execution
    # generation 1 started with the carried-over "extra" tick, consumed it at once and
    # continued again: generation 2 is what gets persisted, waiting for a tick
    first = ep.new_events[1]
    assert isinstance(first, ExecutionStarted)
    assert (first.input, first.generation, first.instance.execution_id, first.name) == (
        "2",
        2,
        "gen-2",
        "counter",
    )
    assert [type(e).__name__ for e in ep.new_events] == [
        "OrchestratorStarted",
        "ExecutionStarted",
        "OrchestratorCompleted",
    ]
    assert ep.state is not None
    assert (
        ep.state.runtime_status,
        ep.state.generation,
        ep.state.execution_id,
        ep.state.input,
    ) == (OrchestrationStatus.RUNNING, 2, "gen-2", "2")
    # the send_event calls of generations 0 and 1 are not lost with their histories
    assert [m.event.input for m in ep.orchestrator_messages] == ["0", "1"]  # type: ignore[attr-defined]


def test_carried_over_events_open_the_next_generation() -> None:
    def keeper(ctx: OrchestrationContext, n: int) -> Generator[Any, Any, Any]:
        yield ctx.wait_for_external_event("go")
        if n == 0:
            ctx.continue_as_new(1, save_events=True)
            return None
        return (yield ctx.wait_for_external_event("other"))

    r = Registry()
    r.add_orchestrator(keeper)
    history = [orch_started(), started("keeper", 0), orch_completed()]
    ep = run_episode(
        r,
        IID,
        history,
        [msg(raised("go")), msg(raised("other", "o"))],
        now=at(5),
        converter=JsonDataConverter(),
        new_execution_id=lambda: "gen-2",
    )
    assert [type(e).__name__ for e in ep.new_events] == [
        "OrchestratorStarted",
        "ExecutionStarted",
        "EventRaised",
        "OrchestratorCompleted",
    ]
    assert ep.state is not None and ep.state.runtime_status is OrchestrationStatus.RUNNING


def test_continue_as_new_to_completion_with_the_driver() -> None:
    r = Registry()
    r.add_orchestrator(counter)
    d = Driver(r)
    d.start("counter", 0)
    d.run()
    for _ in range(3):
        d.raise_event(IID, "tick")
        d.run()
    state = d.states[IID]
    assert state.runtime_status is OrchestrationStatus.COMPLETED and state.output == "3"
    assert state.generation == 3
    assert (
        len(
            {
                s.instance.execution_id
                for _, h in d.all_histories()
                for s in h[1:2]
                if isinstance(s, ExecutionStarted)
            }
        )
        == 4
    )


def forever(ctx: OrchestrationContext, n: int) -> None:
    ctx.continue_as_new(n + 1)


def test_a_tight_continue_as_new_loop_is_capped_and_woken_by_a_message() -> None:
    r = Registry()
    r.add_orchestrator(forever)
    ids = iter(range(1000))
    ep = run_episode(
        r,
        IID,
        [],
        [msg(started("forever", 0))],
        now=at(1),
        converter=JsonDataConverter(),
        new_execution_id=lambda: f"g{next(ids)}",
    )
    assert ep.new_execution
    start = ep.new_events[1]
    assert isinstance(start, ExecutionStarted) and start.generation == MAX_GENERATIONS_PER_EPISODE
    (wake,) = ep.orchestrator_messages
    assert isinstance(wake.event, GenericEvent) and wake.event.data == WAKE_UP
    assert wake.instance == start.instance
    assert ep.state is not None and ep.state.runtime_status is OrchestrationStatus.RUNNING
    nxt = run_episode(
        r,
        IID,
        list(ep.new_events),
        [wake],
        now=at(2),
        converter=JsonDataConverter(),
        new_execution_id=lambda: f"g{next(ids)}",
    )
    assert nxt.new_execution and nxt.state is not None
    assert nxt.state.generation == 2 * MAX_GENERATIONS_PER_EPISODE


def parent(ctx: OrchestrationContext, _: Any) -> Generator[Any, Any, Any]:
    results = []
    for mode in ("ok", "fail", "hang"):
        try:
            results.append((yield ctx.call_sub_orchestrator(child, input=mode)))
        except TaskFailedError as exc:
            results.append([exc.details.error_type, exc.details.message])
    return results


def child(ctx: OrchestrationContext, mode: str) -> Generator[Any, Any, Any]:
    if mode == "fail":
        raise ValueError("child failed")
    if mode == "hang":
        yield ctx.wait_for_external_event("never")
    return f"child {ctx.instance_id} of {ctx.parent_instance_id}"


def test_sub_orchestrations_start_with_a_parent_and_notify_it() -> None:
    r = Registry()
    r.add_orchestrator(parent)
    r.add_orchestrator(child)
    d = Driver(r)
    d.start("parent")
    d.run()
    hanging = f"{IID}:0002"
    assert d.states[hanging].runtime_status is OrchestrationStatus.RUNNING
    assert d.states[hanging].parent_instance_id == IID
    d.send(hanging, terminated("no longer needed"))
    d.run()
    state = d.states[IID]
    assert state.runtime_status is OrchestrationStatus.COMPLETED
    assert d.converter.deserialize(state.output) == [
        f"child {IID}:0000 of {IID}",
        ["builtins.ValueError", "child failed"],
        [
            qualified_type_name(OrchestrationTerminatedError),
            f"sub-orchestration '{hanging}' was terminated: \"no longer needed\"",
        ],
    ]


def test_the_child_start_message_names_the_parent_and_a_fresh_execution() -> None:
    r = Registry()
    r.add_orchestrator(parent)
    ep = run_episode(r, IID, [], [msg(started("parent"))], now=at(1), converter=JsonDataConverter())
    (start,) = ep.orchestrator_messages
    event = start.event
    assert isinstance(event, ExecutionStarted)
    created = next(e for e in ep.new_events if isinstance(e, SubOrchestrationInstanceCreated))
    parent_execution = ep.state.execution_id if ep.state else None
    assert start.instance.instance_id == f"{IID}:0000"
    # Derived, not random: recovery re-sends the very same start (the child drops it as a
    # duplicate), while another attempt under the same task id gets another execution.
    assert start.instance.execution_id == child_execution_id(
        OrchestrationInstance(instance_id=IID, execution_id=parent_execution), created, []
    )
    earlier_attempt = replace(created, timestamp=at(0))
    assert start.instance.execution_id != child_execution_id(
        OrchestrationInstance(instance_id=IID, execution_id=parent_execution),
        created,
        [earlier_attempt],
    )
    assert event.instance == start.instance and event.input == js("ok") and event.timestamp == at(1)
    assert event.parent is not None and event.parent.task_scheduled_id == 0
    assert event.parent.instance.instance_id == IID and event.parent.name == "parent"


def test_a_completed_child_notifies_its_parent_execution() -> None:
    r = Registry()
    r.add_orchestrator(lambda ctx, x: x * 2, name="double")
    r.add_orchestrator(lambda ctx, x: 1 / x, name="divide")
    ok = run_episode(
        r,
        "c1",
        [],
        [msg(started("double", 4, instance_id="c1", parent=parent_of(3)), instance_id="c1")],
        now=T0,
        converter=JsonDataConverter(),
    )
    (notice,) = ok.orchestrator_messages
    assert notice.instance == parent_of(3).instance
    assert notice.event == SubOrchestrationInstanceCompleted(
        timestamp=T0, task_scheduled_id=3, result="8"
    )
    assert ok.state is not None and ok.state.parent_instance_id == "parent-1"
    bad = run_episode(
        r,
        "c1",
        [],
        [msg(started("divide", 0, instance_id="c1", parent=parent_of(3)), instance_id="c1")],
        now=T0,
        converter=JsonDataConverter(),
    )
    event = bad.orchestrator_messages[0].event
    assert isinstance(event, SubOrchestrationInstanceFailed)
    assert event.failure_details.error_type == "builtins.ZeroDivisionError"


# --- executions an episode ends (archived by the backend before its commit) -----------------
def test_each_generation_that_continued_is_handed_over_whole_oldest_first() -> None:
    ep = _two_ticks(iter(["gen-1", "gen-2"]).__next__)
    first, second = ep.ended_executions  # generations 0 and 1 (1 ran within this episode)
    assert first.events[: len(COUNTER_STARTED)] == tuple(COUNTER_STARTED)
    assert first.execution_id == "exec-1"
    start = next(e for e in second.events if isinstance(e, ExecutionStarted))
    assert (start.generation, start.input) == (1, "1")
    assert second.execution_id == start.instance.execution_id == "gen-1"
    for ended, new_input in ((first, "1"), (second, "2")):
        end = [e for e in ended.events if isinstance(e, ExecutionCompleted)]
        assert [(e.status, e.result) for e in end] == [
            (OrchestrationStatus.CONTINUED_AS_NEW, new_input)
        ]
        assert type(ended.events[-1]).__name__ == "OrchestratorCompleted"


def test_a_restart_hands_over_the_execution_it_replaces() -> None:
    r = Registry()
    r.add_orchestrator(forever)
    done = [
        orch_started(),
        started("forever", 0),
        ExecutionCompleted(status=OrchestrationStatus.COMPLETED, result="0"),
        orch_completed(),
    ]
    ep = run_episode(
        r,
        IID,
        done,
        [msg(started("forever", 99, execution_id="exec-2"), execution_id="exec-2")],
        now=at(5),
        converter=JsonDataConverter(),
    )
    assert ep.ended_executions[0].execution_id == "exec-1"
    assert ep.ended_executions[0].events == tuple(done)
    # then the restarted execution continued as new, generation after generation
    assert ep.ended_executions[1].execution_id == "exec-2"
    assert len(ep.ended_executions) == 1 + MAX_GENERATIONS_PER_EPISODE


def test_an_episode_that_ends_nothing_hands_over_nothing() -> None:
    r = Registry()
    r.add_orchestrator(counter)
    ep = run_episode(
        r, IID, [], [msg(started("counter", 0))], now=at(1), converter=JsonDataConverter()
    )
    assert ep.ended_executions == ()
