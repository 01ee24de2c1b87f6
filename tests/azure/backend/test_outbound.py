"""Recovery re-derives an episode's outbound messages from its committed events.

Checked against the replay engine itself: for real episodes (activities, timers,
sub-orchestrations, events, completion notices, recursive terminate, continue-as-new), the
messages derived from the committed events equal the messages the episode produced (child
execution ids aside: a derived child start gets a fresh one).
"""

from __future__ import annotations

import dataclasses
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

from durable_azstorage.authoring.registry import Registry
from durable_azstorage.azure.tracking.history_derivation import derive_outbound, state_from_history
from durable_azstorage.model import history as h
from durable_azstorage.model.messages import TaskMessage
from durable_azstorage.model.status import OrchestrationStatus
from durable_azstorage.replay.episode import Episode, run_episode
from durable_azstorage.serialization.codec import encode_message
from durable_azstorage.serialization.converter import JsonDataConverter

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)


def busy(ctx: Any, _: Any):  # type: ignore[no-untyped-def]
    a = ctx.call_activity("work", input=1)
    t = ctx.create_timer(timedelta(hours=1))
    c = ctx.call_sub_orchestrator("kid", input=2, instance_id="kid-1")
    ctx.send_event("other-1", "ping", data={"x": 1})
    yield a
    yield t
    return (yield c)


def kid(ctx: Any, x: int) -> int:
    return x + 1


def looping(ctx: Any, n: int):  # type: ignore[no-untyped-def]
    yield ctx.call_activity("work", input=n)
    ctx.continue_as_new(n + 1)


def registry() -> Registry:
    r = Registry()
    r.add_orchestrator(busy, "busy")
    r.add_orchestrator(kid, "kid")
    r.add_orchestrator(looping, "looping")
    r.add_activity(lambda ctx, x: x, "work")
    return r


def start(name: str, iid: str, input: str, parent: h.ParentInstance | None = None) -> TaskMessage:
    me = h.OrchestrationInstance(instance_id=iid, execution_id=uuid.uuid4().hex)
    return TaskMessage(
        instance=me,
        event=h.ExecutionStarted(timestamp=NOW, name=name, instance=me, input=input, parent=parent),
    )


def episode(history: tuple[h.HistoryEvent, ...], *messages: TaskMessage) -> Episode:
    return run_episode(
        registry(),
        messages[0].instance.instance_id,
        history,
        messages,
        now=NOW,
        converter=JsonDataConverter(),
    )


def normalized(messages: list[TaskMessage] | tuple[TaskMessage, ...]) -> list[str]:
    out = []
    for m in messages:
        if isinstance(m.event, h.ExecutionStarted) and m.event.parent is not None:
            child = dataclasses.replace(m.instance, execution_id=None)
            m = dataclasses.replace(
                m, instance=child, event=dataclasses.replace(m.event, instance=child)
            )
        out.append(encode_message(m))
    return sorted(out)


def check(history: tuple[h.HistoryEvent, ...], ep: Episode) -> None:
    full = ep.new_events if ep.new_execution else (*history, *ep.new_events)
    first = 0 if ep.new_execution else len(history)
    derived = derive_outbound(full, first, continued_as_new=ep.new_execution)
    produced = (*ep.activity_messages, *ep.orchestrator_messages, *ep.timer_messages)
    assert normalized(derived.all) == normalized(produced)
    assert normalized(derived.activity) == normalized(ep.activity_messages)
    assert normalized(derived.timer) == normalized(ep.timer_messages)


def test_first_episode_messages_are_derived() -> None:
    s = start("busy", "p-1", "0")
    ep = episode((), s)
    assert len(ep.activity_messages) == 1 and len(ep.timer_messages) == 1
    assert len(ep.orchestrator_messages) == 2
    check((), ep)


def test_child_completion_notice_is_derived() -> None:
    parent = h.ParentInstance(
        name="busy",
        instance=h.OrchestrationInstance(instance_id="p-1", execution_id="e"),
        task_scheduled_id=2,
    )
    ep = episode((), start("kid", "kid-1", "2", parent))
    assert [type(m.event).__name__ for m in ep.orchestrator_messages] == [
        "SubOrchestrationInstanceCompleted"
    ]
    check((), ep)


def test_recursive_terminate_and_failure_notice_are_derived() -> None:
    parent = h.ParentInstance(
        name="x",
        instance=h.OrchestrationInstance(instance_id="gp", execution_id="e"),
        task_scheduled_id=7,
    )
    s = start("busy", "p-2", "0", parent)
    first = episode((), s)
    history = first.new_events
    terminate = TaskMessage(
        instance=s.instance, event=h.ExecutionTerminated(timestamp=NOW, input='"stop"')
    )
    ep = episode(history, terminate)
    kinds = sorted(type(m.event).__name__ for m in ep.orchestrator_messages)
    assert kinds == ["ExecutionTerminated", "SubOrchestrationInstanceFailed"]
    check(history, ep)


def test_continue_as_new_wake_up_is_derived() -> None:
    s = start("looping", "loop-1", "0")
    first = episode((), s)
    scheduled = next(e for e in first.new_events if isinstance(e, h.TaskScheduled))
    done = TaskMessage(
        instance=s.instance,
        event=h.TaskCompleted(timestamp=NOW, task_scheduled_id=scheduled.event_id, result="0"),
    )
    ep = episode(first.new_events, done)
    assert ep.new_execution
    check(first.new_events, ep)


def test_state_is_rebuilt_from_history() -> None:
    s = start("kid", "kid-2", "5")
    ep = episode((), s)
    state = state_from_history(
        "kid-2",
        ep.new_events,
        status=OrchestrationStatus.COMPLETED,
        completed_at=NOW,
        previous=None,
    )
    assert state is not None and ep.state is not None
    assert (state.runtime_status, state.output, state.input, state.name) == (
        ep.state.runtime_status,
        ep.state.output,
        ep.state.input,
        ep.state.name,
    )


def spin(ctx: Any, n: int):  # type: ignore[no-untyped-def]
    if n < 30:
        ctx.continue_as_new(n + 1)
        return None
    return n


def test_deferred_generation_wake_up_is_derived() -> None:
    r = registry()
    r.add_orchestrator(spin, "spin")
    s = start("spin", "spin-1", "0")
    ep = run_episode(r, "spin-1", (), (s,), now=NOW, converter=JsonDataConverter())
    assert ep.new_execution
    assert [type(m.event).__name__ for m in ep.orchestrator_messages] == ["GenericEvent"]
    check((), ep)
