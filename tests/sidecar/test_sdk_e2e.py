"""The real portable SDK (``TaskHubGrpcWorker`` + ``TaskHubGrpcClient``) against the sidecar on Azurite.

The SDK worker runs the code; our engine (through ``WorkItemService``) locks, replays the
decisions into history and commits them on the Azure backend. Each test checks what the
SDK's client reports and, where it matters, what our own client reads from storage.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import pytest
from durabletask import task
from durabletask.client import OrchestrationStatus, TaskHubGrpcClient
from durabletask.worker import TaskHubGrpcWorker

from durable_azstorage import TaskHubClient
from durable_azstorage.model.history import EventRaised, ExecutionStarted
from durable_azstorage.testing.eventually import eventually

if TYPE_CHECKING:
    from sidecar_support import RunningSidecar

TIMEOUT = 30


# --- code run by the SDK worker -------------------------------------------------------------
def greet(ctx: task.ActivityContext, name: str) -> str:
    return f"Hello {name}!"


def square(ctx: task.ActivityContext, n: int) -> int:
    return n * n


ATTEMPTS: dict[str, int] = {}


def flaky(ctx: task.ActivityContext, succeed_on: int) -> str:
    key = f"{ctx.orchestration_id}/{ctx.task_id}"
    ATTEMPTS[key] = ATTEMPTS.get(key, 0) + 1
    if ATTEMPTS[key] < succeed_on:
        raise ValueError(f"bad input, attempt {ATTEMPTS[key]}")
    return f"ok after {ATTEMPTS[key]}"


def sequence(ctx: task.OrchestrationContext, _: Any):  # type: ignore[no-untyped-def]
    results = []
    for city in ("Tokyo", "Seattle", "London"):
        results.append((yield ctx.call_activity(greet, input=city)))
    return results


def fan_out(ctx: task.OrchestrationContext, count: int):  # type: ignore[no-untyped-def]
    squares = yield task.when_all([ctx.call_activity(square, input=i) for i in range(count)])
    return sum(squares)


def child(ctx: task.OrchestrationContext, name: str):  # type: ignore[no-untyped-def]
    greeting = yield ctx.call_activity(greet, input=name)
    return {"child": ctx.instance_id, "parent": ctx.parent_instance_id, "greeting": greeting}


def parent(ctx: task.OrchestrationContext, names: list[str]):  # type: ignore[no-untyped-def]
    return (yield task.when_all([ctx.call_sub_orchestrator(child, input=n) for n in names]))


def approval(ctx: task.OrchestrationContext, seconds: float):  # type: ignore[no-untyped-def]
    event = ctx.wait_for_external_event("approval")
    timer = ctx.create_timer(timedelta(seconds=seconds))
    winner = yield task.when_any([event, timer])
    if winner is event:
        return f"approved:{event.get_result()}"
    return "timed out"


def retrying(ctx: task.OrchestrationContext, _: Any):  # type: ignore[no-untyped-def]
    policy = task.RetryPolicy(first_retry_interval=timedelta(seconds=0.2), max_number_of_attempts=3)
    first = yield ctx.call_activity(flaky, input=2, retry_policy=policy)
    ctx.set_custom_status(first)
    yield ctx.call_activity(
        flaky, input=99, retry_policy=policy
    )  # fails 3 times: the instance fails
    return "unreachable"


def collector(ctx: task.OrchestrationContext, seen: list[str]):  # type: ignore[no-untyped-def]
    item = yield ctx.wait_for_external_event("item")
    seen = [*seen, item]
    if len(seen) < 3:
        ctx.continue_as_new(seen, save_events=True)
        return None
    return seen


RELEASE = threading.Event()
STARTED = threading.Event()


def blocking(ctx: task.ActivityContext, _: Any) -> str:
    key = f"blocking/{ctx.orchestration_id}"
    ATTEMPTS[key] = ATTEMPTS.get(key, 0) + 1
    if ATTEMPTS[key] == 1:
        STARTED.set()
        RELEASE.wait(TIMEOUT)  # the first worker is stopped while this runs
        return "first attempt (answer lost with its worker)"
    return f"attempt {ATTEMPTS[key]}"


def resilient(ctx: task.OrchestrationContext, _: Any):  # type: ignore[no-untyped-def]
    before = yield ctx.call_activity(greet, input="before")
    during = yield ctx.call_activity(blocking)
    return [before, during]


def _sdk_worker(address: str) -> TaskHubGrpcWorker:
    w = TaskHubGrpcWorker(host_address=address)
    for orchestrator in (
        sequence,
        fan_out,
        child,
        parent,
        approval,
        retrying,
        collector,
        resilient,
    ):
        w.add_orchestrator(orchestrator)
    for activity in (greet, square, flaky, blocking):
        w.add_activity(activity)
    return w


@pytest.fixture(scope="module")
def sdk_worker(sidecar: RunningSidecar) -> Iterator[TaskHubGrpcWorker]:
    w = _sdk_worker(sidecar.address)
    w.start()
    try:
        yield w
    finally:
        w.stop()


@pytest.fixture(scope="module")
def our_client(sidecar: RunningSidecar) -> Iterator[TaskHubClient]:
    c = TaskHubClient(sidecar.settings)
    try:
        yield c
    finally:
        c.close()


def _run(client: TaskHubGrpcClient, orchestrator: Any, data: Any = None) -> Any:
    iid = client.schedule_new_orchestration(orchestrator, input=data)
    state = client.wait_for_orchestration_completion(iid, timeout=TIMEOUT)
    assert state is not None
    assert state.runtime_status == OrchestrationStatus.COMPLETED, state.failure_details
    return state.get_output()


# --- tests --------------------------------------------------------------------------------------
def test_activity_sequence(sdk_worker: TaskHubGrpcWorker, sdk_client: TaskHubGrpcClient) -> None:
    assert _run(sdk_client, sequence) == ["Hello Tokyo!", "Hello Seattle!", "Hello London!"]


def test_fan_out_fan_in(sdk_worker: TaskHubGrpcWorker, sdk_client: TaskHubGrpcClient) -> None:
    assert _run(sdk_client, fan_out, 12) == sum(i * i for i in range(12))


def test_sub_orchestrations(
    sdk_worker: TaskHubGrpcWorker, sdk_client: TaskHubGrpcClient, our_client: TaskHubClient
) -> None:
    iid = sdk_client.schedule_new_orchestration(parent, input=["a", "b"])
    state = sdk_client.wait_for_orchestration_completion(iid, timeout=TIMEOUT)
    assert state is not None and state.runtime_status == OrchestrationStatus.COMPLETED, state
    results = state.get_output()
    assert [r["greeting"] for r in results] == ["Hello a!", "Hello b!"]
    assert {r["parent"] for r in results} == {iid}
    for r in results:  # the children are real instances in our store, with their parent
        child_state = our_client.get_orchestration_state(r["child"])
        assert child_state is not None and child_state.parent_instance_id == iid
        assert child_state.runtime_status.value == "Completed"


def test_external_event_and_timer_race_with_when_any(
    sdk_worker: TaskHubGrpcWorker, sdk_client: TaskHubGrpcClient
) -> None:
    approved = sdk_client.schedule_new_orchestration(approval, input=30)
    timed_out = sdk_client.schedule_new_orchestration(approval, input=1)
    sdk_client.wait_for_orchestration_start(approved, timeout=TIMEOUT)
    sdk_client.raise_orchestration_event(approved, "approval", data="yes")
    for iid, expected in ((approved, "approved:yes"), (timed_out, "timed out")):
        state = sdk_client.wait_for_orchestration_completion(iid, timeout=TIMEOUT)
        assert state is not None and state.get_output() == expected


def test_retries_and_failure_details_round_trip(
    sdk_worker: TaskHubGrpcWorker, sdk_client: TaskHubGrpcClient, our_client: TaskHubClient
) -> None:
    iid = sdk_client.schedule_new_orchestration(retrying)
    state = sdk_client.wait_for_orchestration_completion(iid, timeout=TIMEOUT)
    assert state is not None and state.runtime_status == OrchestrationStatus.FAILED
    assert state.get_custom_status() == "ok after 2"  # the first call succeeded on its retry
    details = state.failure_details
    assert details is not None and details.error_type == "durabletask.task.TaskFailedError"
    assert "bad input, attempt 3" in details.message
    inner = details.inner_failure
    assert inner is not None and inner.error_type == "builtins.ValueError"
    assert inner.message == "bad input, attempt 3"
    assert inner.stack_trace is not None and "in flaky" in inner.stack_trace
    assert [v for k, v in ATTEMPTS.items() if k.startswith(iid)] == [2, 3]
    # Our own client reads the same failure from storage: type, message, trace, inner failure.
    ours = our_client.get_orchestration_state(iid)
    assert ours is not None and ours.failure_details is not None
    assert ours.failure_details.error_type == details.error_type
    assert ours.failure_details.message == details.message
    assert ours.failure_details.stack_trace == details.stack_trace
    assert ours.failure_details.inner_failure is not None
    assert ours.failure_details.inner_failure.error_type == "builtins.ValueError"
    assert ours.failure_details.inner_failure.stack_trace == inner.stack_trace


def test_events_before_start_carried_over_by_continue_as_new_and_a_worker_disconnect(
    new_sidecar: Callable[..., RunningSidecar],
) -> None:
    """No SDK worker is connected at first: the sidecar locks nothing, the events wait in the
    queue; the first episode then sees the start and all three events, and continue-as-new
    carries the unread ones. Then a worker is stopped while it runs an activity: the item is
    abandoned and a second worker finishes the orchestration."""
    running = new_sidecar()
    sdk_client = TaskHubGrpcClient(host_address=running.address)
    our_client = TaskHubClient(running.settings)
    first = _sdk_worker(running.address)
    second = _sdk_worker(running.address)
    stopper: threading.Thread | None = None
    try:
        collect = sdk_client.schedule_new_orchestration(collector, input=[])
        for item in ("a", "b", "c"):
            sdk_client.raise_orchestration_event(collect, "item", data=item)
        time.sleep(0.5)
        assert our_client.get_orchestration_state(collect).runtime_status.value == "Pending"  # type: ignore[union-attr]
        RELEASE.clear()
        STARTED.clear()
        keep = sdk_client.schedule_new_orchestration(
            resilient, instance_id=f"resilient-{uuid.uuid4().hex[:8]}"
        )
        first.start()

        state = sdk_client.wait_for_orchestration_completion(collect, timeout=TIMEOUT)
        assert state is not None and state.get_output() == ["a", "b", "c"], state
        history = our_client.get_orchestration_history(collect)
        generations = [e for e in history if isinstance(e, ExecutionStarted)]
        carried = [e.input for e in history if isinstance(e, EventRaised)]
        assert len(generations) == 1 and json.loads(generations[0].input or "") == [
            "a",
            "b",
        ]  # the last one
        assert [json.loads(c or "") for c in carried] == [
            "c"
        ]  # carried over: unread by earlier generations
        # the earlier generations' histories, through the SDK's history call by execution id
        executions = our_client.list_execution_ids(collect)
        assert len(executions) == 3 and executions[-1] == generations[0].instance.execution_id
        inputs = []
        for execution_id in executions:
            earlier = sdk_client.get_orchestration_history(collect, execution_id=execution_id)
            starts = [e for e in earlier if type(e).__name__ == "ExecutionStartedEvent"]
            inputs.append(json.loads(starts[0].input or ""))
        assert inputs == [[], ["a"], ["a", "b"]]

        assert STARTED.wait(TIMEOUT), "the blocking activity never started"
        stopper = threading.Thread(target=first.stop)  # blocks until the activity returns
        stopper.start()
        eventually(
            lambda: running.server is not None and running.server.work_items.connected_workers,
            until=lambda connected: connected == 0,
            timeout=TIMEOUT,
            what="the first worker's stream to close (value: connected workers)",
        )
        second.start()
        state = sdk_client.wait_for_orchestration_completion(keep, timeout=TIMEOUT)
        assert state is not None and state.runtime_status == OrchestrationStatus.COMPLETED, state
        assert state.get_output() == ["Hello before!", "attempt 2"]
        assert ATTEMPTS[f"blocking/{keep}"] == 2
    finally:
        RELEASE.set()
        if stopper is not None:
            stopper.join(TIMEOUT)
        first.stop()
        second.stop()
        sdk_client.close()
        our_client.close()
