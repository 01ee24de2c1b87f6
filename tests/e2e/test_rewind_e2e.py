"""Rewind end to end on every backend (memory, Azurite), for code that reacted to a failure.

Each scenario fails for real (activities raise while ``BROKEN`` holds their name), is
rewound after the test "deploys a fix" (clears ``BROKEN``), and must complete with the right
output; ``CALLS`` counts every activity call, so the tests see which work ran again.
The history rule itself is in ``client.rewind``; the planner's unit tests are in
tests/unit/test_rewind_plan.py.
"""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest
from e2e_backends import BACKENDS

from durable_azstorage import (
    ActivityContext,
    InvalidOperationError,
    OrchestrationContext,
    OrchestrationNotFoundError,
    OrchestrationStatus,
    RetryPolicy,
    TaskFailedError,
    TaskHubClient,
    TaskHubWorker,
)
from durable_azstorage.model.history import (
    EventRaised,
    GenericEvent,
    HistoryEvent,
    SubOrchestrationInstanceCreated,
    TaskFailed,
    TaskScheduled,
)
from durable_azstorage.testing.eventually import eventually

pytestmark = pytest.mark.parametrize("storage", BACKENDS, indirect=True)
TIMEOUT = 60
S = OrchestrationStatus
FAST = RetryPolicy(first_retry_interval=timedelta(milliseconds=100), max_number_of_attempts=3)
_lock = threading.Lock()
BROKEN: set[str] = set()
CALLS: dict[str, int] = {}


def act(ctx: ActivityContext, arg: str) -> str:
    """Counts the call under its input; fails while the input is broken."""
    with _lock:
        CALLS[arg] = CALLS.get(arg, 0) + 1
    if arg in BROKEN:
        raise RuntimeError(f"{arg} is broken")
    return arg.upper()


def retried(ctx: OrchestrationContext, _: Any):  # type: ignore[no-untyped-def]
    first = yield ctx.call_activity(act, input="a")
    second = yield ctx.call_activity(act, input="b", retry_policy=FAST)
    return [first, second]


def compensated(ctx: OrchestrationContext, _: Any):  # type: ignore[no-untyped-def]
    first = yield ctx.call_activity(act, input="a")
    try:
        second = yield ctx.call_activity(act, input="b")
    except TaskFailedError:
        yield ctx.call_activity(act, input="undo-a")
        raise
    return [first, second]


def fan_out(ctx: OrchestrationContext, n: int):  # type: ignore[no-untyped-def]
    tasks = [ctx.call_activity(act, input=f"f{i}") for i in range(n)]
    results, errors = [], []
    for task in tasks:  # await every branch, then fail with the first error
        try:
            results.append((yield task))
        except TaskFailedError as exc:
            errors.append(exc)
    if errors:
        raise errors[0]
    return results


def child(ctx: OrchestrationContext, key: str):  # type: ignore[no-untyped-def]
    first = yield ctx.call_activity(act, input=f"{key}-ok")
    second = yield ctx.call_activity(act, input=f"{key}-flaky", retry_policy=FAST)
    return [first, second]


def parent(ctx: OrchestrationContext, retry_child: bool):  # type: ignore[no-untyped-def]
    first = yield ctx.call_activity(act, input="p")
    policy = FAST if retry_child else None
    kid = yield ctx.call_sub_orchestrator(child, input="c", retry_policy=policy)
    return [first, kid]


def events(ctx: OrchestrationContext, _: Any):  # type: ignore[no-untyped-def]
    before = yield ctx.wait_for_external_event("before")
    slow = RetryPolicy(first_retry_interval=timedelta(seconds=1), max_number_of_attempts=2)
    middle = yield ctx.call_activity(act, input="e", retry_policy=slow)
    after = yield ctx.wait_for_external_event("after")
    return [before, middle, after]


def abandons_child(ctx: OrchestrationContext, _: Any):  # type: ignore[no-untyped-def]
    try:
        yield ctx.call_activity(act, input="x")
    except TaskFailedError:
        ctx.call_sub_orchestrator(waiter, input=None)  # started, never awaited
        raise
    return "ok"


def waiter(ctx: OrchestrationContext, _: Any):  # type: ignore[no-untyped-def]
    return (yield ctx.wait_for_external_event("never"))


@pytest.fixture
def running(worker: TaskHubWorker) -> TaskHubWorker:
    BROKEN.clear()
    CALLS.clear()
    for fn in (retried, compensated, fan_out, child, parent, events, abandons_child, waiter):
        worker.add_orchestrator(fn)
    worker.add_activity(act)
    worker.start()
    return worker


def fail_then_fix(client: TaskHubClient, instance_id: str, *broken: str) -> list[HistoryEvent]:
    """Wait for the instance to fail, fix ``broken``, and return the failed history."""
    state = client.wait_for_orchestration_completion(instance_id, timeout=TIMEOUT)
    assert state.runtime_status is S.FAILED, state.failure_details
    history = client.get_orchestration_history(instance_id)
    BROKEN.difference_update(broken)
    return history


def completed(client: TaskHubClient, instance_id: str) -> Any:
    state = client.wait_for_orchestration_completion(instance_id, timeout=TIMEOUT)
    assert state.runtime_status is S.COMPLETED, state.failure_details
    return state.get_output()


def test_retry_policy_exhausted_then_rewound(running: TaskHubWorker, client: TaskHubClient) -> None:
    BROKEN.add("b")
    iid = client.schedule_new_orchestration(retried, instance_id="rw-retry")
    failed = fail_then_fix(client, iid, "b")
    assert CALLS == {"a": 1, "b": 3}
    assert sum(isinstance(e, TaskFailed) for e in failed) == 3

    client.rewind_orchestration(iid, reason="fixed b")

    assert completed(client, iid) == ["A", "B"]
    assert CALLS == {"a": 1, "b": 4}  # a's result was kept; b ran once more and succeeded
    history = client.get_orchestration_history(iid)
    assert [e.data for e in history if isinstance(e, GenericEvent)] == ["rewind: fixed b"]
    assert [e.name for e in history if isinstance(e, TaskScheduled)] == ["act", "act"]


def test_compensation_then_rewound(running: TaskHubWorker, client: TaskHubClient) -> None:
    BROKEN.add("b")
    iid = client.schedule_new_orchestration(compensated, instance_id="rw-comp")
    fail_then_fix(client, iid, "b")
    assert CALLS == {"a": 1, "b": 1, "undo-a": 1}

    client.rewind_orchestration(iid)

    assert completed(client, iid) == ["A", "B"]
    assert CALLS == {"a": 1, "b": 2, "undo-a": 1}  # no second compensation: b succeeded


def test_fan_out_reruns_only_the_failed_branches(
    running: TaskHubWorker, client: TaskHubClient
) -> None:
    BROKEN.update({"f1", "f3"})
    iid = client.schedule_new_orchestration(fan_out, input=5, instance_id="rw-fan")
    fail_then_fix(client, iid, "f1", "f3")
    assert CALLS == {f"f{i}": 1 for i in range(5)}

    client.rewind_orchestration(iid)

    assert completed(client, iid) == ["F0", "F1", "F2", "F3", "F4"]
    assert CALLS == {"f0": 1, "f1": 2, "f2": 1, "f3": 2, "f4": 1}


@pytest.mark.parametrize("retry_child", [False, True], ids=["child-retries", "parent-retries-too"])
def test_failed_child_is_rewound_with_its_parent(
    running: TaskHubWorker, client: TaskHubClient, retry_child: bool
) -> None:
    BROKEN.add("c-flaky")
    iid = client.schedule_new_orchestration(
        parent, input=retry_child, instance_id=f"rw-p{retry_child:d}"
    )
    failed = fail_then_fix(client, iid, "c-flaky")
    kid = next(e.instance_id for e in failed if isinstance(e, SubOrchestrationInstanceCreated))
    assert kid == f"{iid}:0001"  # the default child id: parent id and sequence number
    assert client.wait_for_orchestration_completion(kid, timeout=TIMEOUT).runtime_status is S.FAILED
    attempts = 3 if retry_child else 1
    assert CALLS == {"p": 1, "c-ok": attempts, "c-flaky": 3 * attempts}

    client.rewind_orchestration(iid)

    assert completed(client, iid) == ["P", ["C-OK", "C-FLAKY"]]
    assert completed(client, kid) == ["C-OK", "C-FLAKY"]
    if retry_child:
        # The parent's later attempts re-created the same child id, so its current execution
        # answered a dropped task: the child is purged and created again from the start.
        assert CALLS == {"p": 1, "c-ok": 4, "c-flaky": 10}
    else:
        assert CALLS == {"p": 1, "c-ok": 1, "c-flaky": 4}  # rewound in place
    history = client.get_orchestration_history(iid)
    assert [e.instance_id for e in history if isinstance(e, SubOrchestrationInstanceCreated)] == [
        kid
    ]


def test_purged_failed_child_is_created_and_run_again(
    running: TaskHubWorker, client: TaskHubClient
) -> None:
    """As the portable SDK's reference backend: purge the failed child, rewind the parent."""
    BROKEN.add("c-flaky")
    iid = client.schedule_new_orchestration(parent, input=False, instance_id="rw-purged")
    failed = fail_then_fix(client, iid, "c-flaky")
    kid = next(e.instance_id for e in failed if isinstance(e, SubOrchestrationInstanceCreated))
    assert client.purge_orchestration(kid).deleted_instance_count == 1

    client.rewind_orchestration(iid, reason="purge and retry")

    assert completed(client, iid) == ["P", ["C-OK", "C-FLAKY"]]
    assert completed(client, kid) == ["C-OK", "C-FLAKY"]
    assert CALLS == {"p": 1, "c-ok": 2, "c-flaky": 4}  # the child ran again from its start


def test_events_raised_before_and_after_the_failure_survive(
    running: TaskHubWorker, client: TaskHubClient
) -> None:
    BROKEN.add("e")
    iid = client.schedule_new_orchestration(events, instance_id="rw-events")
    client.raise_orchestration_event(iid, "before", data=1)
    eventually(
        lambda: any(isinstance(e, TaskFailed) for e in client.get_orchestration_history(iid)),
        timeout=TIMEOUT,
        what="the first attempt to fail",
    )
    client.raise_orchestration_event(iid, "after", data=2)  # during the retry delay
    failed = fail_then_fix(client, iid, "e")
    first_failure = next(i for i, e in enumerate(failed) if isinstance(e, TaskFailed))
    raised = [i for i, e in enumerate(failed) if isinstance(e, EventRaised)]
    assert raised[0] < first_failure < raised[1]

    client.rewind_orchestration(iid)

    assert completed(client, iid) == [1, "E", 2]


def test_rewind_refuses_while_an_abandoned_child_runs(
    running: TaskHubWorker, client: TaskHubClient
) -> None:
    BROKEN.add("x")
    iid = client.schedule_new_orchestration(abandons_child, instance_id="rw-orphan")
    failed = fail_then_fix(client, iid, "x")
    orphan = next(e.instance_id for e in failed if isinstance(e, SubOrchestrationInstanceCreated))
    client.wait_for_orchestration_start(orphan, timeout=TIMEOUT)

    with pytest.raises(InvalidOperationError, match=f"{orphan}.*after the first failure.*Running"):
        client.rewind_orchestration(iid)
    assert client.get_orchestration_history(iid) == failed  # nothing written

    client.terminate_orchestration(orphan)
    client.wait_for_orchestration_completion(orphan, timeout=TIMEOUT)
    client.rewind_orchestration(iid)
    assert completed(client, iid) == "ok"
    assert client.get_orchestration_state(orphan) is None  # purged: nothing names it any more
    with pytest.raises(OrchestrationNotFoundError):
        client.get_orchestration_history(orphan)


def test_rewind_failure_paths(running: TaskHubWorker, client: TaskHubClient) -> None:
    with pytest.raises(OrchestrationNotFoundError, match="ghost"):
        client.rewind_orchestration("ghost")
    live = client.schedule_new_orchestration(waiter, instance_id="rw-live")
    client.wait_for_orchestration_start(live, timeout=TIMEOUT)
    with pytest.raises(InvalidOperationError, match="'rw-live'.*Running.*only Failed"):
        client.rewind_orchestration(live)
    done = client.schedule_new_orchestration(retried, instance_id="rw-done")
    completed(client, done)
    with pytest.raises(InvalidOperationError, match="'rw-done'.*Completed.*only Failed"):
        client.rewind_orchestration(done)
