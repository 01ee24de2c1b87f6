"""Every authoring feature of API.md, end to end: worker + sync client on the in-memory backend."""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid
from datetime import timedelta
from typing import Any

import pytest

from durable_azstorage import (
    ActivityContext,
    OrchestrationContext,
    OrchestrationFailedError,
    OrchestrationStatus,
    RetryPolicy,
    TaskFailedError,
    TaskHubClient,
    TaskHubWorker,
    when_all,
    when_any,
)
from durable_azstorage.model.history import (
    ExecutionCompleted,
    ExecutionStarted,
    TaskCompleted,
    TaskScheduled,
)
from durable_azstorage.testing.eventually import eventually

TIMEOUT = 10


class CardDeclined(Exception):
    """A user exception whose qualified name must survive the durable boundary."""


def qualified(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def hello(ctx: ActivityContext, name: str) -> str:
    return f"Hello {name}!"


def test_function_chaining(worker: TaskHubWorker, client: TaskHubClient) -> None:
    def chain(ctx: OrchestrationContext, _: Any):  # type: ignore[no-untyped-def]
        a = yield ctx.call_activity(hello, input="Tokyo")
        b = yield ctx.call_activity("hello", input="London")  # by name works too
        c = yield ctx.call_activity(hello, input="Seattle")
        return [a, b, c]

    worker.add_orchestrator(chain)
    worker.add_activity(hello)
    worker.start()
    iid = client.schedule_new_orchestration(chain)
    state = client.wait_for_orchestration_completion(iid, timeout=TIMEOUT)
    assert state.runtime_status is OrchestrationStatus.COMPLETED
    assert state.get_output() == ["Hello Tokyo!", "Hello London!", "Hello Seattle!"]
    assert state.name == "chain"
    assert state.completed_at is not None


def test_plain_function_orchestrator(worker: TaskHubWorker, client: TaskHubClient) -> None:
    def add_one(ctx: OrchestrationContext, n: int) -> int:
        return n + 1

    worker.add_orchestrator(add_one)
    worker.start()
    iid = client.schedule_new_orchestration(add_one, input=41)
    assert client.wait_for_orchestration_completion(iid, timeout=TIMEOUT).get_output() == 42


def test_fan_out_fan_in(worker: TaskHubWorker, client: TaskHubClient) -> None:
    def square(ctx: ActivityContext, n: int) -> int:
        return n * n

    def fan(ctx: OrchestrationContext, n: int):  # type: ignore[no-untyped-def]
        results = yield when_all([ctx.call_activity(square, input=i) for i in range(n)])
        return sum(results)

    worker.add_orchestrator(fan)
    worker.add_activity(square)
    worker.start()
    iid = client.schedule_new_orchestration(fan, input=20)
    state = client.wait_for_orchestration_completion(iid, timeout=TIMEOUT)
    assert state.get_output() == sum(i * i for i in range(20))


def test_when_all_waits_for_every_task_then_raises_the_first_failure(
    worker: TaskHubWorker, client: TaskHubClient
) -> None:
    def fails_fast(ctx: ActivityContext, _: Any) -> None:
        raise CardDeclined("declined")

    def slow_ok(ctx: ActivityContext, _: Any) -> str:
        threading.Event().wait(0.3)
        return "ok"

    def both(ctx: OrchestrationContext, _: Any):  # type: ignore[no-untyped-def]
        try:
            yield when_all([ctx.call_activity(fails_fast), ctx.call_activity(slow_ok)])
        except TaskFailedError as exc:
            return exc.details.error_type
        return "no error"

    worker.add_orchestrator(both)
    worker.add_activity(fails_fast)
    worker.add_activity(slow_ok)
    worker.start()
    iid = client.schedule_new_orchestration(both)
    state = client.wait_for_orchestration_completion(iid, timeout=TIMEOUT)
    assert state.get_output() == qualified(CardDeclined)
    history = client.get_orchestration_history(iid)
    kinds = [type(e) for e in history]
    # The slow task's completion was recorded before the orchestration ended: when_all waited.
    assert TaskCompleted in kinds
    assert kinds.index(TaskCompleted) < kinds.index(ExecutionCompleted)


def _approval(ctx: OrchestrationContext, timeout_s: float):  # type: ignore[no-untyped-def]
    approval = ctx.wait_for_external_event("Approval")
    timeout = ctx.create_timer(timedelta(seconds=timeout_s))
    winner = yield when_any([approval, timeout])
    if winner is approval:
        timeout.cancel()
        return f"approved by {approval.get_result()}"
    return "timed out"


def test_when_any_timer_wins_without_approval(worker: TaskHubWorker, client: TaskHubClient) -> None:
    worker.add_orchestrator(_approval, name="approval")
    worker.start()
    iid = client.schedule_new_orchestration("approval", input=0.2)
    assert (
        client.wait_for_orchestration_completion(iid, timeout=TIMEOUT).get_output() == "timed out"
    )


def test_when_any_event_wins_before_timeout(worker: TaskHubWorker, client: TaskHubClient) -> None:
    worker.add_orchestrator(_approval, name="approval")
    worker.start()
    iid = client.schedule_new_orchestration("approval", input=30)
    client.raise_orchestration_event(iid, "approval", data="alice")  # case-insensitive
    state = client.wait_for_orchestration_completion(iid, timeout=TIMEOUT)
    assert state.get_output() == "approved by alice"


def test_external_events_raised_before_start_are_buffered_fifo(
    worker: TaskHubWorker, client: TaskHubClient
) -> None:
    def collect(ctx: OrchestrationContext, _: Any):  # type: ignore[no-untyped-def]
        first = yield ctx.call_activity(hello, input="first")
        items = [first]
        for _i in range(3):
            items.append((yield ctx.wait_for_external_event("Item")))
        return items

    worker.add_orchestrator(collect)
    worker.add_activity(hello)
    iid = client.schedule_new_orchestration(collect)
    for n, name in enumerate(["item", "ITEM", "Item"]):  # raised while Pending, mixed case
        client.raise_orchestration_event(iid, name, data=n)
    worker.start()
    state = client.wait_for_orchestration_completion(iid, timeout=TIMEOUT)
    assert state.get_output() == ["Hello first!", 0, 1, 2]


def test_send_event_between_instances(worker: TaskHubWorker, client: TaskHubClient) -> None:
    def receiver(ctx: OrchestrationContext, _: Any):  # type: ignore[no-untyped-def]
        return (yield ctx.wait_for_external_event("ping"))

    def sender(ctx: OrchestrationContext, target: str) -> str:
        ctx.send_event(target, "ping", data={"from": ctx.instance_id})
        return "sent"

    worker.add_orchestrator(receiver)
    worker.add_orchestrator(sender)
    worker.start()
    rid = client.schedule_new_orchestration(receiver)
    sid = client.schedule_new_orchestration(sender, input=rid)
    assert client.wait_for_orchestration_completion(sid, timeout=TIMEOUT).get_output() == "sent"
    state = client.wait_for_orchestration_completion(rid, timeout=TIMEOUT)
    assert state.get_output() == {"from": sid}


def test_sub_orchestration_result_and_default_child_id(
    worker: TaskHubWorker, client: TaskHubClient
) -> None:
    def child(ctx: OrchestrationContext, name: str):  # type: ignore[no-untyped-def]
        greeting = yield ctx.call_activity(hello, input=name)
        return {"greeting": greeting, "parent": ctx.parent_instance_id}

    def parent(ctx: OrchestrationContext, _: Any):  # type: ignore[no-untyped-def]
        return (yield ctx.call_sub_orchestrator(child, input="kid"))

    worker.add_orchestrator(parent)
    worker.add_orchestrator(child)
    worker.add_activity(hello)
    worker.start()
    iid = client.schedule_new_orchestration(parent)
    state = client.wait_for_orchestration_completion(iid, timeout=TIMEOUT)
    assert state.get_output() == {"greeting": "Hello kid!", "parent": iid}
    child_state = client.get_orchestration_state(f"{iid}:0000")
    assert child_state is not None
    assert child_state.runtime_status is OrchestrationStatus.COMPLETED
    assert child_state.parent_instance_id == iid


def test_sub_orchestration_failure_reaches_the_parent(
    worker: TaskHubWorker, client: TaskHubClient
) -> None:
    def failing_child(ctx: OrchestrationContext, _: Any) -> None:
        raise CardDeclined("child says no")

    def parent(ctx: OrchestrationContext, _: Any):  # type: ignore[no-untyped-def]
        try:
            yield ctx.call_sub_orchestrator(failing_child, instance_id="the-child")
        except TaskFailedError as exc:
            return exc.details.message
        return "no error"

    worker.add_orchestrator(parent)
    worker.add_orchestrator(failing_child)
    worker.start()
    iid = client.schedule_new_orchestration(parent)
    state = client.wait_for_orchestration_completion(iid, timeout=TIMEOUT)
    assert "child says no" in state.get_output()
    child_state = client.get_orchestration_state("the-child")
    assert child_state is not None and child_state.runtime_status is OrchestrationStatus.FAILED
    assert child_state.failure_details is not None
    assert child_state.failure_details.error_type == qualified(CardDeclined)


def test_timers_by_delay_and_by_datetime(worker: TaskHubWorker, client: TaskHubClient) -> None:
    def sleeper(ctx: OrchestrationContext, _: Any):  # type: ignore[no-untyped-def]
        start = ctx.current_utc_datetime
        yield ctx.create_timer(timedelta(milliseconds=100))
        after_delay = ctx.current_utc_datetime
        yield ctx.create_timer(after_delay + timedelta(milliseconds=100))
        return [
            (after_delay - start).total_seconds(),
            (ctx.current_utc_datetime - after_delay).total_seconds(),
        ]

    worker.add_orchestrator(sleeper)
    worker.start()
    iid = client.schedule_new_orchestration(sleeper)
    first, second = client.wait_for_orchestration_completion(iid, timeout=TIMEOUT).get_output()
    # Deterministic time moves past each timer's fire time (history-recorded, not wall clock).
    assert first >= 0.1
    assert second >= 0.1


def test_continue_as_new_restarts_with_new_input(
    worker: TaskHubWorker, client: TaskHubClient
) -> None:
    def counter(ctx: OrchestrationContext, n: int) -> int:
        if n < 5:
            ctx.continue_as_new(n + 1)
        return n

    worker.add_orchestrator(counter)
    worker.start()
    iid = client.schedule_new_orchestration(counter, input=0)
    state = client.wait_for_orchestration_completion(iid, timeout=TIMEOUT)
    assert state.get_output() == 5
    history = client.get_orchestration_history(iid)
    started = [e for e in history if isinstance(e, ExecutionStarted)]
    assert len(started) == 1  # only the last generation's history is kept
    assert started[0].input == "5"


def test_continue_as_new_with_save_events_carries_unconsumed_events(
    worker: TaskHubWorker, client: TaskHubClient
) -> None:
    def gather(ctx: OrchestrationContext, items: list[int]):  # type: ignore[no-untyped-def]
        item = yield ctx.wait_for_external_event("add")
        items = [*items, item]
        if len(items) < 3:
            ctx.continue_as_new(items, save_events=True)
        return items

    worker.add_orchestrator(gather)
    iid = client.schedule_new_orchestration(gather, input=[])
    for n in (1, 2, 3):  # all arrive in the first generation's batch
        client.raise_orchestration_event(iid, "add", data=n)
    worker.start()
    state = client.wait_for_orchestration_completion(iid, timeout=TIMEOUT)
    assert state.get_output() == [1, 2, 3]


def test_custom_status_is_visible_while_running(
    worker: TaskHubWorker, client: TaskHubClient
) -> None:
    def staged(ctx: OrchestrationContext, _: Any):  # type: ignore[no-untyped-def]
        ctx.set_custom_status({"stage": "waiting"})
        yield ctx.wait_for_external_event("go")
        ctx.set_custom_status({"stage": "done"})
        return "ok"

    worker.add_orchestrator(staged)
    worker.start()
    iid = client.schedule_new_orchestration(staged)

    def custom_status() -> Any:
        state = client.get_orchestration_state(iid)
        return state.get_custom_status() if state else None

    assert eventually(custom_status, what="custom status") == {"stage": "waiting"}
    client.raise_orchestration_event(iid, "go")
    state = client.wait_for_orchestration_completion(iid, timeout=TIMEOUT)
    assert state.get_custom_status() == {"stage": "done"}


def test_new_uuid_is_deterministic_across_replays(
    worker: TaskHubWorker, client: TaskHubClient
) -> None:
    def echo(ctx: ActivityContext, value: Any) -> Any:
        return value

    def uuids(ctx: OrchestrationContext, _: Any):  # type: ignore[no-untyped-def]
        first = ctx.new_uuid()
        echoed = yield ctx.call_activity(echo, input=first)  # the next episode replays `first`
        second = ctx.new_uuid()
        yield ctx.create_timer(timedelta(milliseconds=10))
        return [first, echoed, second, ctx.new_uuid()]

    worker.add_orchestrator(uuids)
    worker.add_activity(echo)
    worker.start()
    iid = client.schedule_new_orchestration(uuids)
    first, echoed, second, third = client.wait_for_orchestration_completion(
        iid, timeout=TIMEOUT
    ).get_output()
    assert first == echoed  # the replayed value equals the one recorded in history
    assert len({first, second, third}) == 3
    assert all(uuid.UUID(u).version == 5 for u in (first, second, third))


def test_retry_succeeds_after_failures(worker: TaskHubWorker, client: TaskHubClient) -> None:
    attempts: list[int] = []

    def flaky(ctx: ActivityContext, _: Any) -> str:
        attempts.append(ctx.attempt)
        if len(attempts) < 3:
            raise ConnectionError(f"attempt {len(attempts)} failed")
        return "finally"

    policy = RetryPolicy(first_retry_interval=timedelta(milliseconds=50), max_number_of_attempts=5)

    def retrying(ctx: OrchestrationContext, _: Any):  # type: ignore[no-untyped-def]
        return (yield ctx.call_activity(flaky, retry_policy=policy))

    worker.add_orchestrator(retrying)
    worker.add_activity(flaky)
    worker.start()
    iid = client.schedule_new_orchestration(retrying)
    assert client.wait_for_orchestration_completion(iid, timeout=TIMEOUT).get_output() == "finally"
    assert len(attempts) == 3


def test_retries_exhausted_fail_the_orchestration(
    worker: TaskHubWorker, client: TaskHubClient
) -> None:
    calls: list[int] = []

    def always_fails(ctx: ActivityContext, _: Any) -> None:
        calls.append(1)
        raise CardDeclined(f"declined #{len(calls)}")

    policy = RetryPolicy(
        first_retry_interval=timedelta(milliseconds=20),
        backoff_coefficient=2.0,
        max_number_of_attempts=3,
    )

    def retrying(ctx: OrchestrationContext, _: Any):  # type: ignore[no-untyped-def]
        return (yield ctx.call_activity(always_fails, retry_policy=policy))

    worker.add_orchestrator(retrying)
    worker.add_activity(always_fails)
    worker.start()
    iid = client.schedule_new_orchestration(retrying)
    state = client.wait_for_orchestration_completion(iid, timeout=TIMEOUT)
    assert state.runtime_status is OrchestrationStatus.FAILED
    assert len(calls) == 3
    assert state.failure_details is not None
    assert "declined #3" in state.failure_details.message
    with pytest.raises(OrchestrationFailedError, match="declined #3") as info:
        state.raise_if_failed()
    assert info.value.details == state.failure_details


def test_activity_error_is_a_task_failed_error_with_details(
    worker: TaskHubWorker, client: TaskHubClient
) -> None:
    def charge(ctx: ActivityContext, amount: int) -> None:
        try:
            raise KeyError("card")
        except KeyError as inner:
            raise CardDeclined(f"cannot charge {amount}") from inner

    def checkout(ctx: OrchestrationContext, _: Any):  # type: ignore[no-untyped-def]
        try:
            yield ctx.call_activity(charge, input=12)
        except TaskFailedError as exc:
            d = exc.details
            inner = d.inner_failure
            return {
                "type": d.error_type,
                "message": d.message,
                "has_trace": "CardDeclined" in (d.stack_trace or ""),
                "inner": inner.error_type if inner else None,
            }
        return None

    worker.add_orchestrator(checkout)
    worker.add_activity(charge)
    worker.start()
    iid = client.schedule_new_orchestration(checkout)
    out = client.wait_for_orchestration_completion(iid, timeout=TIMEOUT).get_output()
    assert out == {
        "type": qualified(CardDeclined),
        "message": "cannot charge 12",
        "has_trace": True,
        "inner": "builtins.KeyError",
    }


def test_uncaught_orchestrator_error_fails_the_instance(
    worker: TaskHubWorker, client: TaskHubClient
) -> None:
    def broken(ctx: OrchestrationContext, _: Any) -> None:
        raise CardDeclined("orchestrator bug")

    worker.add_orchestrator(broken)
    worker.start()
    iid = client.schedule_new_orchestration(broken)
    state = client.wait_for_orchestration_completion(iid, timeout=TIMEOUT)
    assert state.runtime_status is OrchestrationStatus.FAILED
    assert state.failure_details is not None
    assert state.failure_details.error_type == qualified(CardDeclined)
    assert state.failure_details.message == "orchestrator bug"


def test_unregistered_orchestrator_fails_with_a_clear_reason(
    worker: TaskHubWorker, client: TaskHubClient
) -> None:
    worker.start()
    iid = client.schedule_new_orchestration("no_such_orchestrator")
    state = client.wait_for_orchestration_completion(iid, timeout=TIMEOUT)
    assert state.runtime_status is OrchestrationStatus.FAILED
    assert state.failure_details is not None
    assert "no_such_orchestrator" in state.failure_details.message


def test_unregistered_activity_fails_the_task_not_the_worker(
    worker: TaskHubWorker, client: TaskHubClient
) -> None:
    def calls_missing(ctx: OrchestrationContext, _: Any):  # type: ignore[no-untyped-def]
        try:
            yield ctx.call_activity("no_such_activity")
        except TaskFailedError as exc:
            failure = exc.details.message
        greeting = yield ctx.call_activity(hello, input="still alive")
        return [failure, greeting]

    worker.add_orchestrator(calls_missing)
    worker.add_activity(hello)
    worker.start()
    iid = client.schedule_new_orchestration(calls_missing)
    failure, greeting = client.wait_for_orchestration_completion(iid, timeout=TIMEOUT).get_output()
    assert "no_such_activity" in failure
    assert greeting == "Hello still alive!"


def test_async_activities_are_awaited(worker: TaskHubWorker, client: TaskHubClient) -> None:
    async def fetch(ctx: ActivityContext, key: str) -> str:
        await asyncio.sleep(0.01)
        return key.upper()

    def uses_async(ctx: OrchestrationContext, _: Any):  # type: ignore[no-untyped-def]
        return (yield when_all([ctx.call_activity(fetch, input=k) for k in "abc"]))

    worker.add_orchestrator(uses_async)
    worker.add_activity(fetch)
    worker.start()
    iid = client.schedule_new_orchestration(uses_async)
    assert client.wait_for_orchestration_completion(iid, timeout=TIMEOUT).get_output() == [
        "A",
        "B",
        "C",
    ]


def test_activity_context_fields(worker: TaskHubWorker, client: TaskHubClient) -> None:
    def introspect(ctx: ActivityContext, _: Any) -> dict[str, Any]:
        return {
            "orchestration_id": ctx.orchestration_id,
            "task_id": ctx.task_id,
            "task_name": ctx.task_name,
            "attempt": ctx.attempt,
        }

    def orch(ctx: OrchestrationContext, _: Any):  # type: ignore[no-untyped-def]
        yield ctx.create_timer(timedelta(milliseconds=1))
        return (yield ctx.call_activity("introspect_named"))

    worker.add_orchestrator(orch)
    worker.add_activity(introspect, name="introspect_named")
    worker.start()
    iid = client.schedule_new_orchestration(orch)
    out = client.wait_for_orchestration_completion(iid, timeout=TIMEOUT).get_output()
    scheduled = [e for e in client.get_orchestration_history(iid) if isinstance(e, TaskScheduled)]
    assert out == {
        "orchestration_id": iid,
        "task_id": scheduled[0].event_id,
        "task_name": "introspect_named",
        "attempt": 1,
    }


def test_replay_safe_logger_logs_each_line_once(
    worker: TaskHubWorker, client: TaskHubClient, caplog: pytest.LogCaptureFixture
) -> None:
    user_log = logging.getLogger("e2e.user")

    def logs(ctx: OrchestrationContext, _: Any):  # type: ignore[no-untyped-def]
        log = ctx.create_replay_safe_logger(user_log)
        log.warning("before first activity")
        yield ctx.call_activity(hello, input="a")
        log.warning("between activities")
        yield ctx.call_activity(hello, input="b")
        return "ok"

    worker.add_orchestrator(logs)
    worker.add_activity(hello)
    with caplog.at_level(logging.WARNING, logger="e2e.user"):
        worker.start()
        iid = client.schedule_new_orchestration(logs)
        client.wait_for_orchestration_completion(iid, timeout=TIMEOUT)
    lines = [r.getMessage() for r in caplog.records if r.name == "e2e.user"]
    assert lines == ["before first activity", "between activities"]


def test_waiting_for_an_event_can_be_cancelled(
    worker: TaskHubWorker, client: TaskHubClient
) -> None:
    def cancels(ctx: OrchestrationContext, _: Any):  # type: ignore[no-untyped-def]
        first = ctx.wait_for_external_event("x")
        winner = yield when_any([first, ctx.create_timer(timedelta(milliseconds=50))])
        cancelled = first.cancel()
        ctx.set_custom_status("waiting again")
        second = yield ctx.wait_for_external_event("x")
        return [winner is first, cancelled, first.is_cancelled, second]

    worker.add_orchestrator(cancels)
    worker.start()
    iid = client.schedule_new_orchestration(cancels)

    def waiting_again() -> bool:
        state = client.get_orchestration_state(iid)
        return state is not None and state.get_custom_status() == "waiting again"

    eventually(waiting_again, what="the second wait")
    client.raise_orchestration_event(iid, "x", data="for the second waiter")
    out = client.wait_for_orchestration_completion(iid, timeout=TIMEOUT).get_output()
    assert out == [False, True, True, "for the second waiter"]


def test_versions_reach_the_orchestration_and_its_children(
    worker: TaskHubWorker, client: TaskHubClient
) -> None:
    def versioned_child(ctx: OrchestrationContext, _: Any) -> str | None:
        return ctx.version

    def versioned(ctx: OrchestrationContext, _: Any):  # type: ignore[no-untyped-def]
        child = yield ctx.call_sub_orchestrator(versioned_child, version="child-2")
        return [ctx.version, child, ctx.is_replaying]

    worker.add_orchestrator(versioned)
    worker.add_orchestrator(versioned_child)
    worker.start()
    iid = client.schedule_new_orchestration(versioned, version="1.5")
    out = client.wait_for_orchestration_completion(iid, timeout=TIMEOUT).get_output()
    assert out == ["1.5", "child-2", False]
