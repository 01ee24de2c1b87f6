"""``plan_rewind`` / ``settle_children``: the history a rewind keeps, checked two ways.

* Table-driven: hand-built histories (retry, compensation, fan-out, late results, timers,
  events after the cut, a dangling suspension) and every child outcome.
* Property: hypothesis generates orchestration programs (activities that fail, with and
  without RetryPolicy, compensation that re-raises or recovers, fan-outs failing fast or
  collecting every result, sub-orchestrations with retries, timers, external events,
  send_event). The test driver runs each with some activities broken; a FAILED instance is
  rewound through the planner (as the client does), the activities are fixed, and it must
  complete with the output of a run where nothing ever failed, without non-determinism,
  continuing from the kept history (a prefix of the final one) and never re-running a task
  whose result it kept.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Generator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from durable_azstorage.authoring.context import ActivityContext, OrchestrationContext
from durable_azstorage.authoring.registry import Registry
from durable_azstorage.authoring.retry import RetryPolicy
from durable_azstorage.authoring.tasks import when_all
from durable_azstorage.client.rewind import (
    ChildView,
    RewindPlan,
    find_cut,
    plan_rewind,
    rewind_data,
    settle_children,
)
from durable_azstorage.model.errors import InvalidOperationError, TaskFailedError
from durable_azstorage.model.failure import FailureDetails
from durable_azstorage.model.history import (
    EventRaised,
    EventSent,
    ExecutionCompleted,
    ExecutionStarted,
    ExecutionSuspended,
    GenericEvent,
    HistoryEvent,
    OrchestrationInstance,
    OrchestratorCompleted,
    OrchestratorStarted,
    SubOrchestrationInstanceCompleted,
    SubOrchestrationInstanceCreated,
    SubOrchestrationInstanceFailed,
    TaskCompleted,
    TaskFailed,
    TaskScheduled,
    TimerCreated,
    TimerFired,
)
from durable_azstorage.model.status import OrchestrationStatus

from .replay.driver import Driver

S = OrchestrationStatus
FAIL = FailureDetails(error_type="builtins.RuntimeError", message="broken")
T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
ME = OrchestrationInstance(instance_id="p", execution_id="e1")
SCHEDULING = (TaskScheduled, TimerCreated, SubOrchestrationInstanceCreated, EventSent)


def head() -> list[HistoryEvent]:
    return [OrchestratorStarted(timestamp=T0), ExecutionStarted(name="o", instance=ME)]


def os_(s: float = 0) -> OrchestratorStarted:
    return OrchestratorStarted(timestamp=T0 + timedelta(seconds=s))


OC = OrchestratorCompleted()
END = ExecutionCompleted(status=S.FAILED, failure_details=FAIL)


def sched(i: int, name: str = "a") -> TaskScheduled:
    return TaskScheduled(event_id=i, name=name)


def done(i: int) -> TaskCompleted:
    return TaskCompleted(task_scheduled_id=i, result=str(i))


def failed(i: int) -> TaskFailed:
    return TaskFailed(task_scheduled_id=i, failure_details=FAIL)


def timer(i: int) -> TimerCreated:
    return TimerCreated(event_id=i, fire_at=T0)


def fired(i: int) -> TimerFired:
    return TimerFired(timer_id=i, fire_at=T0)


def kinds(events: tuple[HistoryEvent, ...]) -> list[str]:
    out = []
    for e in events:
        ref = getattr(e, "task_scheduled_id", getattr(e, "timer_id", e.event_id))
        out.append(f"{type(e).__name__}({ref})" if ref != -1 else type(e).__name__)
    return out


# --- table-driven ---------------------------------------------------------------------------
RETRY = [  # a(0) fails, retry timer 1, attempt 2 as task 2 fails, instance fails
    *head(),
    sched(0),
    OC,
    os_(1),
    failed(0),
    timer(1),
    OC,
    os_(2),
    fired(1),
    sched(2),
    OC,
    os_(3),
    failed(2),
    END,
    OC,
]
COMPENSATION = [  # ok(0) done, b(1) fails, compensation c(2) done, re-raised
    *head(),
    sched(0, "ok"),
    OC,
    os_(1),
    done(0),
    sched(1, "b"),
    OC,
    os_(2),
    failed(1),
    sched(2, "c"),
    OC,
    os_(3),
    done(2),
    END,
    OC,
]
FAN_FAIL_FAST = [  # 4 tasks; 1 fails with 0 done in the same batch, 2 and 3 answer after the end
    *head(),
    sched(0),
    sched(1),
    sched(2),
    sched(3),
    OC,
    os_(1),
    done(0),
    failed(1),
    END,
    OC,
]
EVENTS = [  # event before the cut, event during the retry delay, dangling suspension
    *head(),
    EventRaised(name="first"),
    sched(0),
    OC,
    os_(1),
    failed(0),
    timer(1),
    OC,
    os_(2),
    EventRaised(name="second"),
    OC,
    os_(3),
    fired(1),
    sched(2),
    OC,
    os_(4),
    failed(2),
    ExecutionSuspended(),
    END,
    OC,
]
PENDING_TIMER = [  # a timer still pending when the code raised by itself
    *head(),
    timer(0),
    sched(1),
    OC,
    os_(1),
    done(1),
    END,
    OC,
]
LATE_RESULT_AFTER_CUT = [  # 1 completes after the cut: kept, with its episode's framing
    *head(),
    sched(0),
    sched(1),
    OC,
    os_(1),
    failed(0),
    timer(2),
    OC,
    os_(2),
    done(1),
    OC,
    os_(3),
    fired(2),
    sched(3),
    OC,
    os_(4),
    failed(3),
    END,
    OC,
]


@pytest.mark.parametrize(
    ("history", "expected", "rerun"),
    [
        (
            RETRY,
            [
                "OrchestratorStarted",
                "ExecutionStarted",
                "OrchestratorCompleted",
                "OrchestratorStarted",
                "OrchestratorCompleted",
            ],
            ["a"],
        ),
        (
            COMPENSATION,
            [
                "OrchestratorStarted",
                "ExecutionStarted",
                "TaskScheduled(0)",
                "OrchestratorCompleted",
                "OrchestratorStarted",
                "TaskCompleted(0)",
                "OrchestratorCompleted",
                "OrchestratorStarted",
                "OrchestratorCompleted",
            ],
            ["b"],
        ),
        (
            FAN_FAIL_FAST,
            [
                "OrchestratorStarted",
                "ExecutionStarted",
                "TaskScheduled(0)",
                "OrchestratorCompleted",
                "OrchestratorStarted",
                "TaskCompleted(0)",
                "OrchestratorCompleted",
            ],
            ["a", "a", "a"],
        ),
        (
            EVENTS,
            [
                "OrchestratorStarted",
                "ExecutionStarted",
                "EventRaised",
                "OrchestratorCompleted",
                "OrchestratorStarted",
                "OrchestratorCompleted",
                "OrchestratorStarted",
                "EventRaised",
                "OrchestratorCompleted",
                "OrchestratorStarted",
                "OrchestratorCompleted",
            ],
            ["a"],
        ),
        (
            PENDING_TIMER,
            [
                "OrchestratorStarted",
                "ExecutionStarted",
                "TaskScheduled(1)",
                "OrchestratorCompleted",
                "OrchestratorStarted",
                "TaskCompleted(1)",
                "OrchestratorCompleted",
            ],
            [],
        ),
        (
            LATE_RESULT_AFTER_CUT,
            [
                "OrchestratorStarted",
                "ExecutionStarted",
                "TaskScheduled(1)",
                "OrchestratorCompleted",
                "OrchestratorStarted",
                "OrchestratorCompleted",
                "OrchestratorStarted",
                "TaskCompleted(1)",
                "OrchestratorCompleted",
            ],
            ["a"],
        ),
    ],
    ids=["retry", "compensation", "fan-fail-fast", "events", "pending-timer", "late-result"],
)
def test_kept_history(history: list[HistoryEvent], expected: list[str], rerun: list[str]) -> None:
    plan = plan_rewind(history)
    assert kinds(plan.history) == expected
    assert list(plan.rerun_activities) == rerun
    assert_prefix_consistent(history, plan)


def test_cut_is_the_first_failure_or_the_failing_completion() -> None:
    assert find_cut(RETRY) == 5
    assert find_cut(PENDING_TIMER) == 7  # no failure event: the code raised by itself
    assert find_cut(head()) is None
    assert plan_rewind(head()).history == tuple(head())


def test_rewind_marker_data() -> None:
    assert rewind_data(None) == "rewind"
    assert rewind_data("fixed") == "rewind: fixed"


# --- children -------------------------------------------------------------------------------
def with_child(
    answer: HistoryEvent | None, later: tuple[HistoryEvent, ...] = ()
) -> list[HistoryEvent]:
    """Child 0 created, then activity 9 fails first (the cut); the child's answer after it."""
    events: list[HistoryEvent] = [
        *head(),
        SubOrchestrationInstanceCreated(event_id=0, name="c", instance_id="p:0000"),
        sched(9),
        OC,
        os_(1),
        failed(9),
    ]
    if answer is not None:
        events.append(answer)
    return [*events, OC, *later, END]


def view(
    status: OrchestrationStatus,
    *,
    task: int = 0,
    execution: str | None = "e1",
    owner: str = "p",
    output: str | None = None,
) -> ChildView:
    return ChildView(
        status=status,
        output=output,
        completed_at=T0,
        parent=OrchestrationInstance(instance_id=owner, execution_id=execution),
        parent_task_id=task,
    )


def test_failed_child_is_rewound_in_place() -> None:
    plan = plan_rewind(
        with_child(SubOrchestrationInstanceFailed(task_scheduled_id=0, failure_details=FAIL))
    )
    settled = settle_children(plan, ME, {"p:0000": view(S.FAILED)}, now=T0)
    assert settled.rewind_children == ("p:0000",) and settled.orphans == ()
    assert any(isinstance(e, SubOrchestrationInstanceCreated) for e in settled.history)


def test_completed_child_whose_answer_was_dropped_answers_now() -> None:
    plan = plan_rewind(with_child(None))
    settled = settle_children(plan, ME, {"p:0000": view(S.COMPLETED, output='"x"')}, now=T0)
    assert settled.history[-1] == SubOrchestrationInstanceCompleted(
        timestamp=T0, task_scheduled_id=0, result='"x"'
    )
    assert settled.rewind_children == ()


@pytest.mark.parametrize("status", [S.RUNNING, S.PENDING, S.SUSPENDED])
def test_running_child_is_awaited(status: OrchestrationStatus) -> None:
    plan = plan_rewind(with_child(None))
    settled = settle_children(plan, ME, {"p:0000": view(status)}, now=T0)
    assert settled.history == plan.history and settled.rewind_children == ()


def test_child_recreated_by_a_dropped_retry_is_created_again() -> None:
    later = (
        os_(2),
        SubOrchestrationInstanceCreated(event_id=5, name="c", instance_id="p:0000"),
        OC,
    )
    plan = plan_rewind(
        with_child(
            SubOrchestrationInstanceFailed(task_scheduled_id=0, failure_details=FAIL), later=later
        )
    )
    settled = settle_children(plan, ME, {"p:0000": view(S.FAILED, task=5)}, now=T0)
    assert not any(isinstance(e, SubOrchestrationInstanceCreated) for e in settled.history)
    assert settled.orphans == ("p:0000",) and settled.rewind_children == ()


def test_purged_child_is_created_again() -> None:
    plan = plan_rewind(
        with_child(SubOrchestrationInstanceFailed(task_scheduled_id=0, failure_details=FAIL))
    )
    settled = settle_children(plan, ME, {"p:0000": None}, now=T0)
    assert not any(isinstance(e, SubOrchestrationInstanceCreated) for e in settled.history)
    assert settled.orphans == () and settled.rewind_children == ()


def test_children_created_after_the_cut_are_orphans() -> None:
    later = (
        os_(2),
        SubOrchestrationInstanceCreated(event_id=5, name="comp", instance_id="p:0005"),
        OC,
    )
    plan = plan_rewind(
        with_child(SubOrchestrationInstanceCompleted(task_scheduled_id=0), later=later)
    )
    assert plan.dropped_children == ("p:0005",) and plan.open_children == ()
    assert settle_children(plan, ME, {}, now=T0).orphans == ("p:0005",)


@pytest.mark.parametrize(
    ("child", "message"),
    [
        (view(S.TERMINATED), "sub-orchestration 'p:0000' of 'p': it is Terminated; only Failed"),
        (view(S.FAILED, owner="q"), "now belongs to an instance started by 'q'"),
    ],
)
def test_children_that_block_the_rewind(child: ChildView | None, message: str) -> None:
    plan = plan_rewind(
        with_child(SubOrchestrationInstanceFailed(task_scheduled_id=0, failure_details=FAIL))
    )
    with pytest.raises(InvalidOperationError, match=message):
        settle_children(plan, ME, {"p:0000": child}, now=T0)


# --- validity of a kept history ---------------------------------------------------------------
def assert_prefix_consistent(original: list[HistoryEvent], plan: RewindPlan) -> None:
    """The kept history is a subsequence of the original that replay can continue from.

    No failure and no completion are kept; every scheduling event kept lies before the cut
    (so the code reproduces it); every kept result follows its kept scheduling event; every
    external event is kept; before the cut only scheduling events are ever dropped.
    """
    kept = list(plan.history)
    positions = iter(range(len(original)))
    index = []
    for event in kept:  # subsequence, order preserved (identity: no event is fabricated)
        index.append(next(i for i in positions if original[i] is event))
    cut = len(original) if plan.cut is None else plan.cut
    scheduled: set[int] = set()
    for event, i in zip(kept, index, strict=False):
        assert not isinstance(
            event, (TaskFailed, SubOrchestrationInstanceFailed, ExecutionCompleted)
        )
        if isinstance(event, SCHEDULING):
            assert i < cut, f"scheduling event {event} kept after the cut"
            scheduled.add(event.event_id)
        ref = getattr(event, "task_scheduled_id", getattr(event, "timer_id", None))
        if ref is not None:
            assert ref in scheduled, f"{event} answers nothing kept before it"
    assert [e for e in original if isinstance(e, EventRaised)] == [
        e for e in kept if isinstance(e, EventRaised)
    ]
    dropped_before_cut = [e for i, e in enumerate(original[:cut]) if i not in set(index)]
    assert all(isinstance(e, (TaskScheduled, TimerCreated)) for e in dropped_before_cut)


# --- property: rewind then fix, and the instance completes as if nothing had failed ----------
BROKEN: set[str] = set()
CALLS: list[str] = []
QUICK = RetryPolicy(first_retry_interval=timedelta(seconds=1), max_number_of_attempts=2)

step = st.one_of(
    st.tuples(st.just("act"), st.sampled_from(("raise", "compensate", "recover"))),
    st.tuples(st.just("retry")),
    st.tuples(st.just("fan"), st.integers(1, 4), st.booleans()),
    st.tuples(st.just("sub"), st.booleans()),
    st.tuples(st.just("event")),
    st.tuples(st.just("timer")),
    st.tuples(st.just("send")),
)


def program_runner(ctx: OrchestrationContext, steps: list[list[Any]]) -> Generator[Any, Any, Any]:
    out: list[Any] = []
    for i, (kind, *args) in enumerate(steps):
        out.append((yield from _run_step(ctx, f"s{i}", kind, args)))
    return out


def _run_step(
    ctx: OrchestrationContext, key: str, kind: str, args: list[Any]
) -> Generator[Any, Any, Any]:
    if kind == "act":
        try:
            return (yield ctx.call_activity("work", input=key))
        except TaskFailedError:
            if args[0] == "raise":
                raise
            yield ctx.call_activity("work", input=f"undo-{key}")
            if args[0] == "compensate":
                raise
            return "recovered"
    if kind == "retry":
        return (yield ctx.call_activity("work", input=key, retry_policy=QUICK))
    if kind == "fan":
        tasks = [ctx.call_activity("work", input=f"{key}.{j}") for j in range(args[0])]
        if args[1]:
            return (yield when_all(tasks))
        results, errors = [], []
        for task in tasks:  # collect every result, then fail
            try:
                results.append((yield task))
            except TaskFailedError as exc:
                errors.append(exc)
        if errors:
            raise errors[0]
        return results
    if kind == "sub":
        return (
            yield ctx.call_sub_orchestrator(
                "child", input=key, retry_policy=QUICK if args[0] else None
            )
        )
    if kind == "event":
        return (yield ctx.wait_for_external_event("go"))
    if kind == "timer":
        yield ctx.create_timer(timedelta(seconds=2))
        return "tick"
    ctx.send_event("observer", "note", data=key)
    return "sent"


def child(ctx: OrchestrationContext, key: str) -> Generator[Any, Any, Any]:
    first = yield ctx.call_activity("work", input=f"{key}.child", retry_policy=QUICK)
    return [first, (yield ctx.call_activity("work", input=f"{key}.child2"))]


def work(ctx: ActivityContext, key: str) -> str:
    CALLS.append(key)
    if key in BROKEN:
        raise RuntimeError(f"{key} is broken")
    return key.upper()


def registry() -> Registry:
    r = Registry()
    r.add_orchestrator(program_runner)
    r.add_orchestrator(child)
    r.add_activity(work)
    return r


def simulate(steps: list[list[Any]], broken: set[str]) -> Driver:
    """Run the program; external events are raised one at a time while the instance runs."""
    BROKEN.clear()
    BROKEN.update(broken)
    CALLS.clear()

    wanted = sum(kind == "event" for kind, *_ in steps)

    def on_idle(driver: Driver) -> bool:
        state = driver.states.get("p")
        if state is None or state.runtime_status.is_terminal:
            return False
        if sum(isinstance(e, EventRaised) for e in driver.histories["p"]) >= wanted:
            return False
        driver.raise_event("p", "go", data="go")
        return True

    driver = Driver(registry(), on_idle=on_idle, idle_before_timers=True)
    driver.start("program_runner", steps, instance_id="p")
    driver.run()
    return driver


def driver_rewind(driver: Driver, instance_id: str) -> dict[str, tuple[HistoryEvent, ...]]:
    """What ``client.management.rewind`` does, on the driver's lists instead of a backend."""
    steps: list[tuple[str, Any]] = []
    todo = [instance_id]
    while todo:
        iid = todo.pop(0)
        state = driver.states[iid]
        assert state.runtime_status is S.FAILED
        plan = plan_rewind(driver.histories[iid])
        assert_prefix_consistent(driver.histories[iid], plan)
        views: dict[str, ChildView | None] = {}
        for ref in plan.open_children:
            child_state = driver.states.get(ref.instance_id)
            started = (
                next(
                    e
                    for e in driver.histories.get(ref.instance_id, [])
                    if isinstance(e, ExecutionStarted)
                )
                if child_state
                else None
            )
            views[ref.instance_id] = (
                None
                if child_state is None or started is None
                else ChildView(
                    status=child_state.runtime_status,
                    output=child_state.output,
                    completed_at=child_state.completed_at,
                    parent=started.parent.instance if started.parent else None,
                    parent_task_id=started.parent.task_scheduled_id if started.parent else None,
                )
            )
        me = OrchestrationInstance(instance_id=iid, execution_id=state.execution_id)
        settled = settle_children(plan, me, views, now=driver.now)
        steps.append((iid, settled))
        todo.extend(settled.rewind_children)
    kept: dict[str, tuple[HistoryEvent, ...]] = {}
    for iid, settled in steps:
        for orphan in settled.orphans:
            orphan_state = driver.states.pop(orphan, None)
            assert orphan_state is None or orphan_state.runtime_status.is_terminal
            driver.histories.pop(orphan, None)
        driver.histories[iid] = list(settled.history)
        driver.states[iid] = dataclasses.replace(driver.states[iid], runtime_status=S.RUNNING)
        driver.send(iid, GenericEvent(timestamp=driver.now, data=rewind_data("fixed")))
        kept[iid] = settled.history
    return kept


def _keys(steps: list[list[Any]]) -> list[str]:
    keys = []
    for i, (kind, *args) in enumerate(steps):
        if kind in ("act", "retry"):
            keys.append(f"s{i}")
        elif kind == "fan":
            keys.extend(f"s{i}.{j}" for j in range(args[0]))
        elif kind == "sub":
            keys.extend([f"s{i}.child", f"s{i}.child2"])
    return keys


@st.composite
def scenario(draw: st.DrawFn) -> tuple[list[list[Any]], set[str]]:
    steps = [list(s) for s in draw(st.lists(step, min_size=1, max_size=6))]
    keys = _keys(steps)
    broken = draw(st.sets(st.sampled_from(keys), min_size=1)) if keys else set()
    return steps, broken


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=scenario())
def test_rewound_instance_completes_as_if_nothing_had_failed(
    case: tuple[list[list[Any]], set[str]],
) -> None:
    steps, broken = case
    clean = simulate(steps, set())
    expected = clean.states["p"]
    assert expected.runtime_status is S.COMPLETED

    driver = simulate(steps, broken)
    if driver.states["p"].runtime_status is not S.FAILED:
        return  # every failure was recovered from: nothing to rewind
    kept = driver_rewind(driver, "p")
    kept_results = {
        (iid, e.task_scheduled_id)
        for iid, h in kept.items()
        for e in h
        if isinstance(e, TaskCompleted)
    }
    BROKEN.clear()
    driver.run()

    final = driver.states["p"]
    assert final.runtime_status is S.COMPLETED, final.failure_details
    assert final.output == expected.output
    for iid, history in kept.items():
        now = driver.histories[iid]
        assert now[: len(history)] == list(history), f"{iid} did not continue from the kept history"
        rescheduled = [e.event_id for e in now[len(history) :] if isinstance(e, TaskScheduled)]
        assert not {(iid, t) for t in rescheduled} & kept_results, "a kept result was re-run"
