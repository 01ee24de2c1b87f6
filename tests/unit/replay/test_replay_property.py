"""Property: replaying any prefix of a recorded history yields the same actions as the original run.

Hypothesis generates orchestration *programs* (sequences, fan-outs, timers, external events,
races, sub-orchestrations, retries, failures caught or not, send_event, continue-as-new);
one interpreter orchestrator runs them through the test driver, which records every
committed history. Then, for every history and every prefix ``H[:k]``:

* replay never raises;
* at an episode boundary (after the episode's incoming events) the actions equal exactly the
  events that episode recorded for them (same ids, names, inputs, completion);
* at any other cut, an action that history records later under the same sequence number is
  exactly that recorded one (cut inside an episode's incoming events, a later event of the
  same episode may still cancel a decision, e.g. a timer losing a race); cut between an
  episode's recorded decisions, every action must be recorded later; a completion always
  equals the recorded one.
"""

from __future__ import annotations

from collections.abc import Generator
from datetime import timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from durable_azstorage.authoring.context import ActivityContext, OrchestrationContext
from durable_azstorage.authoring.registry import Registry
from durable_azstorage.authoring.retry import RetryPolicy
from durable_azstorage.authoring.tasks import when_all, when_any
from durable_azstorage.model.actions import (
    CompleteOrchestration,
    CreateSubOrchestration,
    CreateTimer,
    OrchestratorAction,
    ScheduleTask,
    SendEvent,
)
from durable_azstorage.model.errors import TaskFailedError
from durable_azstorage.model.history import (
    EventSent,
    ExecutionCompleted,
    ExecutionResumed,
    ExecutionSuspended,
    HistoryEvent,
    OrchestratorCompleted,
    OrchestratorStarted,
    SubOrchestrationInstanceCreated,
    TaskScheduled,
    TimerCreated,
)
from durable_azstorage.replay.executor import execute

from .driver import Driver

EVENT_NAMES = ("approve", "Go")

step = st.one_of(
    st.tuples(st.just("act"), st.booleans(), st.booleans()),
    st.tuples(st.just("fan"), st.integers(1, 4), st.integers(-1, 3), st.booleans()),
    st.tuples(st.just("timer"), st.integers(1, 120)),
    st.tuples(st.just("event"), st.sampled_from(EVENT_NAMES)),
    st.tuples(st.just("race"), st.integers(1, 120), st.sampled_from(EVENT_NAMES)),
    st.tuples(st.just("sub"), st.booleans(), st.booleans()),
    st.tuples(st.just("retry"), st.integers(0, 3), st.integers(1, 3), st.booleans()),
    st.tuples(st.just("send"), st.sampled_from(("observer", "inst-1"))),
    st.tuples(st.just("uuid")),
    st.tuples(st.just("status")),
)
program = st.fixed_dictionaries(
    {
        "steps": st.lists(step, min_size=1, max_size=7),
        "rounds": st.integers(0, 2),
        "early": st.booleans(),
        "pause": st.booleans(),  # suspend before the first event, resume after it
    }
)


def interpreter(ctx: OrchestrationContext, prog: dict[str, Any]) -> Generator[Any, Any, Any]:
    out: list[Any] = []
    for i, (kind, *args) in enumerate(prog["steps"]):
        try:
            out.append((yield from _step(ctx, i, kind, args)))
        except TaskFailedError as exc:
            if not args or args[-1] is not True:
                raise
            out.append(["caught", exc.details.message])
    if prog["round"] < prog["rounds"]:
        ctx.continue_as_new({**prog, "round": prog["round"] + 1})
        return None
    return out


def _step(
    ctx: OrchestrationContext, i: int, kind: str, args: list[Any]
) -> Generator[Any, Any, Any]:
    if kind == "act":
        return (yield ctx.call_activity("work", input={"i": i, "fail": args[0]}))
    if kind == "fan":
        n, bad = args[0], args[1]
        return (
            yield when_all(
                [ctx.call_activity("work", input={"i": j, "fail": j == bad}) for j in range(n)]
            )
        )
    if kind == "timer":
        yield ctx.create_timer(timedelta(seconds=args[0]))
        return ctx.current_utc_datetime.isoformat()
    if kind == "event":
        return (yield ctx.wait_for_external_event(args[0]))
    if kind == "race":
        timer = ctx.create_timer(timedelta(seconds=args[0]))
        event = ctx.wait_for_external_event(args[1])
        winner = yield when_any([timer, event])
        (event if winner is timer else timer).cancel()
        return "timer" if winner is timer else winner.get_result()
    if kind == "sub":
        return (yield ctx.call_sub_orchestrator("child", input={"i": i, "fail": args[0]}))
    if kind == "retry":
        policy = RetryPolicy(
            first_retry_interval=timedelta(seconds=5), max_number_of_attempts=args[1]
        )
        return (
            yield ctx.call_activity(
                "flaky", input={"key": i, "fails": args[0]}, retry_policy=policy
            )
        )
    if kind == "send":
        ctx.send_event(args[0], "note", data=i)
        return None
    if kind == "uuid":
        return ctx.new_uuid()
    ctx.set_custom_status({"at": i})
    return None


def child(ctx: OrchestrationContext, arg: dict[str, Any]) -> Generator[Any, Any, Any]:
    return (yield ctx.call_activity("work", input=arg))


def work(ctx: ActivityContext, arg: dict[str, Any]) -> Any:
    if arg["fail"]:
        raise ValueError(f"work {arg['i']} failed")
    return arg["i"]


def _registry() -> Registry:
    attempts: dict[Any, int] = {}

    def flaky(ctx: ActivityContext, arg: dict[str, Any]) -> str:
        key = (ctx.orchestration_id, arg["key"])
        attempts[key] = attempts.get(key, 0) + 1
        if attempts[key] <= arg["fails"]:
            raise RuntimeError(f"attempt {attempts[key]} failed")
        return f"ok after {attempts[key]}"

    r = Registry()
    r.add_orchestrator(interpreter)
    r.add_orchestrator(child)
    r.add_activity(work)
    r.add_activity(flaky)
    return r


def _deliver_events(prog: dict[str, Any]) -> Any:
    names = [a[0] for kind, *a in prog["steps"] if kind == "event"] + [
        a[1] for kind, *a in prog["steps"] if kind == "race"
    ]
    pending = list(names) * (prog["rounds"] + 1)
    pause = ["suspend"] if prog["pause"] and not prog["early"] else []

    def on_idle(driver: Driver) -> bool:
        if pause == ["resume"]:  # a later episode: deliver what was held back
            pause.clear()
            driver.send("inst-1", ExecutionResumed(timestamp=driver.now))
            return True
        if not pending:
            return False
        if pause == ["suspend"]:  # the event is recorded while suspended, delivered on resume
            pause[0] = "resume"
            driver.send("inst-1", ExecutionSuspended(timestamp=driver.now, reason="pause"))
            driver.raise_event("inst-1", pending.pop(0).upper(), data="paused")
            return True
        driver.raise_event("inst-1", pending.pop(0).upper(), data=len(pending))
        return True

    return pending, on_idle


_RECORDING = (
    TaskScheduled,
    TimerCreated,
    SubOrchestrationInstanceCreated,
    EventSent,
    ExecutionCompleted,
)


def as_action(event: HistoryEvent) -> OrchestratorAction:
    """The action that made the engine record ``event``."""
    if isinstance(event, TaskScheduled):
        return ScheduleTask(
            id=event.event_id,
            name=event.name,
            input=event.input,
            version=event.version,
            tags=event.tags,
        )
    if isinstance(event, TimerCreated):
        return CreateTimer(id=event.event_id, fire_at=event.fire_at)
    if isinstance(event, SubOrchestrationInstanceCreated):
        return CreateSubOrchestration(
            id=event.event_id,
            name=event.name,
            instance_id=event.instance_id,
            input=event.input,
            version=event.version,
        )
    if isinstance(event, EventSent):
        return SendEvent(
            id=event.event_id, instance_id=event.instance_id, name=event.name, data=event.input
        )
    assert isinstance(event, ExecutionCompleted)
    return CompleteOrchestration(
        id=event.event_id,
        status=event.status,
        result=event.result,
        failure_details=event.failure_details,
    )


def _comparable(action: OrchestratorAction | None) -> Any:
    if isinstance(action, CompleteOrchestration):
        details = action.failure_details
        return (
            "complete",
            action.status,
            action.result,
            (details.error_type, details.message) if details else None,
        )
    return action


def boundaries(history: list[HistoryEvent]) -> dict[int, list[HistoryEvent]]:
    """Cut index after each episode's incoming events -> the events its actions recorded."""
    cuts: dict[int, list[HistoryEvent]] = {}
    start = None
    for i, event in enumerate(history):
        if isinstance(event, OrchestratorStarted):
            start = i
        elif isinstance(event, OrchestratorCompleted) and start is not None:
            episode = history[start:i]
            first = next(
                (j for j, e in enumerate(episode) if isinstance(e, _RECORDING)), len(episode)
            )
            cuts[start + first] = episode[first:]
            start = None
    return cuts


def check_history(registry: Registry, instance_id: str, history: list[HistoryEvent]) -> None:
    cuts = boundaries(history)
    strict = {cut + j for cut, recorded in cuts.items() for j in range(len(recorded) + 1)}
    recorded_end = next((e for e in history if isinstance(e, ExecutionCompleted)), None)
    for k in range(len(history) + 1):
        result = execute(registry, instance_id, history[:k], [])
        actions = [_comparable(a) for a in result.actions]
        if k in cuts:
            assert actions == [_comparable(as_action(e)) for e in cuts[k]], f"episode boundary {k}"
            continue
        future = {e.event_id: as_action(e) for e in history[k:] if isinstance(e, _RECORDING[:4])}
        for action in result.actions:
            if isinstance(action, CompleteOrchestration):
                if recorded_end is not None:
                    assert _comparable(action) == _comparable(as_action(recorded_end)), (
                        f"prefix {k}"
                    )
                continue
            if action.id in future or k in strict:
                assert _comparable(future.get(action.id)) == _comparable(action), (
                    f"prefix {k}: {action}"
                )


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(prog=program)
def test_replaying_any_prefix_reproduces_the_original_decisions(prog: dict[str, Any]) -> None:
    registry = _registry()
    pending, on_idle = _deliver_events(prog)
    driver = Driver(registry, on_idle=on_idle)
    driver.start("interpreter", {**prog, "round": 0})
    if prog["early"]:
        while pending:
            driver.raise_event("inst-1", pending.pop(0), data="early")
    driver.run()
    assert "inst-1" in driver.states
    for instance_id, history in driver.all_histories():
        check_history(registry, instance_id, history)
