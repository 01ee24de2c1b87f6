"""End to end on Azurite: a TaskHubWorker and a client, each with its own AzureStorageBackend.

The worker runs on its own thread (its own event loop and HTTP session); the client runs in
the test's loop. The worker's backend has its own RequestCounter (``counter``), so the storage
cost of running orchestrations is measured without the client's status polling.
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from typing import Any

import pytest
from e2e.stale_child_start import chained_child, count_run, parent_of_chain, resend_child_start

from durable_azstorage import (
    ActivityContext,
    AsyncTaskHubClient,
    OrchestrationContext,
    OrchestrationStatus,
    RetryPolicy,
    TaskFailedError,
    TaskHubWorker,
    when_all,
    when_any,
)
from durable_azstorage.azure.provider import AzureStorageBackend
from durable_azstorage.azure.settings import AzureStorageSettings
from durable_azstorage.azure.storage.metrics import RequestCounter, RequestCounts
from durable_azstorage.model.errors import InvalidOperationError
from durable_azstorage.model.history import ExecutionCompleted, ExecutionStarted
from durable_azstorage.testing.eventually import eventually_async

pytestmark = pytest.mark.azurite
TIMEOUT = 60
KEPT = 2  # earlier executions kept per instance: fewer than counter_loop's continue-as-news


def hello(ctx: ActivityContext, name: str) -> str:
    return f"Hello {name}"


def sequence(ctx: OrchestrationContext, _: Any):  # type: ignore[no-untyped-def]
    out = []
    for city in ["Tokyo", "Seattle", "London", "Paris", "Cairo"]:
        out.append((yield ctx.call_activity("hello", input=city)))
    return out


def fan_out(ctx: OrchestrationContext, n: int):  # type: ignore[no-untyped-def]
    results = yield when_all([ctx.call_activity("hello", input=str(i)) for i in range(n)])
    return len(results)


def child(ctx: OrchestrationContext, x: int):  # type: ignore[no-untyped-def]
    return x * 2


def parent(ctx: OrchestrationContext, _: Any):  # type: ignore[no-untyped-def]
    results = yield when_all([ctx.call_sub_orchestrator("child", input=i) for i in range(3)])
    return sum(results)


def timer_or_event(ctx: OrchestrationContext, _: Any):  # type: ignore[no-untyped-def]
    timer = ctx.create_timer(timedelta(seconds=30))
    event = ctx.wait_for_external_event("approve")
    winner = yield when_any([timer, event])
    if winner is event:
        timer.cancel()
        return f"approved:{event.get_result()}"
    return "timed out"


def short_timer(ctx: OrchestrationContext, seconds: float):  # type: ignore[no-untyped-def]
    yield ctx.create_timer(timedelta(seconds=seconds))
    return "fired"


def counter_loop(ctx: OrchestrationContext, n: int):  # type: ignore[no-untyped-def]
    if n >= 3:
        return n
    yield ctx.call_activity("hello", input=str(n))
    ctx.continue_as_new(n + 1)
    return None


def echo_big(ctx: OrchestrationContext, payload: str):  # type: ignore[no-untyped-def]
    got = yield ctx.call_activity("echo", input=payload)
    ctx.set_custom_status(payload[:10])
    return got + "!"


def echo(ctx: ActivityContext, payload: str) -> str:
    return payload


def waiter(ctx: OrchestrationContext, _: Any):  # type: ignore[no-untyped-def]
    return (yield ctx.wait_for_external_event("go"))


@pytest.fixture
def counter() -> RequestCounter:
    return RequestCounter()


@pytest.fixture
def e2e_settings(azure_settings: AzureStorageSettings) -> AzureStorageSettings:
    return dataclasses.replace(
        azure_settings,
        partition_count=2,
        max_poll_interval=timedelta(seconds=1),
        archived_executions=KEPT,
    )


@pytest.fixture
def worker(e2e_settings: AzureStorageSettings, counter: RequestCounter) -> Iterator[TaskHubWorker]:
    backend = AzureStorageBackend(e2e_settings, counter=counter)
    w = TaskHubWorker(backend=backend, lock_renew_interval=timedelta(seconds=20))
    for fn in (
        sequence,
        fan_out,
        child,
        parent,
        timer_or_event,
        short_timer,
        counter_loop,
        echo_big,
        waiter,
        big_event,
        fail_big,
        collect_items,
        tick_generations,
        retried,
        retries_exhausted,
        flaky_child,
        retried_child,
        chained_child,
        parent_of_chain,
    ):
        w.add_orchestrator(fn)
    w.add_activity(count_run)
    w.add_activity(hello)
    w.add_activity(echo)
    w.add_activity(flaky)
    try:
        yield w
    finally:
        w.stop(grace=timedelta(seconds=5))


@pytest.fixture
async def client(
    e2e_settings: AzureStorageSettings, counter: RequestCounter, worker: TaskHubWorker
) -> AsyncIterator[AsyncTaskHubClient]:
    backend = AzureStorageBackend(e2e_settings)  # the client's requests are counted apart
    await backend.create_task_hub()
    worker.start()
    try:
        async with AsyncTaskHubClient(backend=backend) as c:
            yield c
    finally:
        worker.stop(grace=timedelta(seconds=5))
        await backend.delete_task_hub()
        await backend.stop()


async def run(client: AsyncTaskHubClient, name: str, input: Any = None, **kw: Any) -> Any:
    iid = await client.schedule_new_orchestration(name, input=input, **kw)
    state = await client.wait_for_orchestration_completion(iid, timeout=TIMEOUT)
    state.raise_if_failed()
    assert state.runtime_status is OrchestrationStatus.COMPLETED
    return state.get_output()


async def test_sequence_and_request_count(
    client: AsyncTaskHubClient, counter: RequestCounter
) -> None:
    before = counter.snapshot()
    assert await run(client, "sequence") == [
        f"Hello {c}" for c in ["Tokyo", "Seattle", "London", "Paris", "Cairo"]
    ]
    used = counter.snapshot() - before
    print(
        f"\n5-activity sequence: {used.total} requests ({used.total / 5:.1f} per activity): {sorted(used.counts.items())}"
    )


async def test_fan_out_100_and_request_count(
    client: AsyncTaskHubClient, counter: RequestCounter
) -> None:
    before = counter.snapshot()
    assert await run(client, "fan_out", 100) == 100
    used = counter.snapshot() - before
    print(
        f"\n100-activity fan-out: {used.total} requests ({used.total / 100:.1f} per activity): {sorted(used.counts.items())}"
    )


async def test_sub_orchestrations(client: AsyncTaskHubClient) -> None:
    assert await run(client, "parent") == 0 + 2 + 4


async def test_a_re_sent_start_does_not_re_run_a_continued_as_new_child(
    client: AsyncTaskHubClient,
) -> None:
    # Before the fix message_filter took the parent's re-sent start (original execution id,
    # matching neither the child's current execution nor its row) as a new attempt.
    outcome = await resend_child_start(
        client, f"child-{uuid.uuid4().hex[:8]}", settle=4.0, timeout=TIMEOUT
    )

    outcome.assert_not_re_run()


async def test_event_wins_over_timer_and_timer_fires(client: AsyncTaskHubClient) -> None:
    iid = await client.schedule_new_orchestration("timer_or_event")
    await client.wait_for_orchestration_start(iid, timeout=TIMEOUT)
    await client.raise_orchestration_event(iid, "approve", data="yes")
    state = await client.wait_for_orchestration_completion(iid, timeout=TIMEOUT)
    assert state.get_output() == "approved:yes"
    assert await run(client, "short_timer", 1.5) == "fired"


async def test_event_before_start_and_continue_as_new(client: AsyncTaskHubClient) -> None:
    assert await run(client, "counter_loop", 0) == 3
    iid = await client.schedule_new_orchestration("waiter")
    await client.raise_orchestration_event(iid, "go", data=42)
    state = await client.wait_for_orchestration_completion(iid, timeout=TIMEOUT)
    assert state.get_output() == 42


def big_event(ctx: OrchestrationContext, _: Any):  # type: ignore[no-untyped-def]
    data = yield ctx.wait_for_external_event("big")
    ctx.set_custom_status(data)
    yield ctx.wait_for_external_event("never")


def fail_big(ctx: OrchestrationContext, message: str):  # type: ignore[no-untyped-def]
    raise ValueError(message)


async def test_large_payloads_everywhere(client: AsyncTaskHubClient) -> None:
    big = "".join(f"{i:08d}" for i in range(5 * 1024 * 1024 // 8)) + "end"  # 5 MiB
    # input, activity input/result (queue messages and history rows), output, custom status
    iid = await client.schedule_new_orchestration("echo_big", input=big)
    state = await client.wait_for_orchestration_completion(iid, timeout=TIMEOUT)
    state.raise_if_failed()
    assert state.get_input() == big and state.get_output() == big + "!"
    assert state.get_custom_status() == big[:10]
    history = await client.get_orchestration_history(iid)
    assert any(getattr(e, "result", None) == f'"{big}"' for e in history)
    # event data and custom status
    iid = await client.schedule_new_orchestration("big_event")
    await client.raise_orchestration_event(iid, "big", data=big)
    state = await eventually_async(
        lambda: client.get_orchestration_state(iid),
        until=lambda s: s is not None and s.get_custom_status() is not None,
        timeout=TIMEOUT,
        interval=0.1,
        what="the big event's custom status",
    )
    assert state is not None and state.get_custom_status() == big
    # termination reason
    await client.terminate_orchestration(iid, output=big)
    state = await client.wait_for_orchestration_completion(iid, timeout=TIMEOUT)
    assert state.runtime_status is OrchestrationStatus.TERMINATED and state.get_output() == big
    # failure details
    iid = await client.schedule_new_orchestration("fail_big", input=big)
    state = await client.wait_for_orchestration_completion(iid, timeout=TIMEOUT)
    assert state.runtime_status is OrchestrationStatus.FAILED
    assert state.failure_details is not None and big in state.failure_details.message


@pytest.mark.slow
async def test_fan_out_1000(client: AsyncTaskHubClient, counter: RequestCounter) -> None:
    before = counter.snapshot()
    iid = await client.schedule_new_orchestration("fan_out", input=1000)
    state = await client.wait_for_orchestration_completion(iid, timeout=600)
    assert state.get_output() == 1000
    used = counter.snapshot() - before
    print(f"\n1000-activity fan-out: {used.total} requests ({used.total / 1000:.1f} per activity)")


async def test_terminate_suspend_resume(client: AsyncTaskHubClient) -> None:
    iid = await client.schedule_new_orchestration("waiter")
    await client.wait_for_orchestration_start(iid, timeout=TIMEOUT)
    await client.suspend_orchestration(iid, reason="pause")
    await client.raise_orchestration_event(iid, "go", data=1)
    await client.resume_orchestration(iid, reason="go on")
    state = await client.wait_for_orchestration_completion(iid, timeout=TIMEOUT)
    assert state.get_output() == 1
    iid2 = await client.schedule_new_orchestration("waiter")
    await client.wait_for_orchestration_start(iid2, timeout=TIMEOUT)
    await client.terminate_orchestration(iid2, output="stop")
    state = await client.wait_for_orchestration_completion(iid2, timeout=TIMEOUT)
    assert state.runtime_status is OrchestrationStatus.TERMINATED


def collect_items(ctx: OrchestrationContext, n: int):  # type: ignore[no-untyped-def]
    items = []
    for _ in range(n):
        items.append((yield ctx.wait_for_external_event("item")))
    return items


async def test_many_events_at_once_are_all_delivered(client: AsyncTaskHubClient) -> None:
    iid = await client.schedule_new_orchestration("collect_items", input=40)
    await asyncio.gather(
        *(client.raise_orchestration_event(iid, "item", data=i) for i in range(40))
    )
    state = await client.wait_for_orchestration_completion(iid, timeout=TIMEOUT)
    state.raise_if_failed()
    assert sorted(state.get_output()) == list(range(40))


def tick_generations(ctx: OrchestrationContext, seen: int):  # type: ignore[no-untyped-def]
    if seen == 3:
        return seen
    yield ctx.wait_for_external_event("tick")
    ctx.continue_as_new(seen + 1, save_events=True)
    return None


async def test_continue_as_new_carries_unprocessed_events(client: AsyncTaskHubClient) -> None:
    iid = await client.schedule_new_orchestration("tick_generations", input=0)
    await client.wait_for_orchestration_start(iid, timeout=TIMEOUT)
    for _ in range(3):  # all three arrive together; two must survive two continue-as-news
        await client.raise_orchestration_event(iid, "tick")
    state = await client.wait_for_orchestration_completion(iid, timeout=TIMEOUT)
    assert state.get_output() == 3


_flaky_calls: dict[str, int] = {}
RETRY = RetryPolicy(first_retry_interval=timedelta(milliseconds=200), max_number_of_attempts=3)


def flaky(ctx: ActivityContext, key: str) -> str:
    """Fails the first two calls per key (the worker runs in this process)."""
    _flaky_calls[key] = _flaky_calls.get(key, 0) + 1
    if _flaky_calls[key] <= 2:
        raise ConnectionError(f"call {_flaky_calls[key]} for {key} failed")
    return f"{key} ok after {_flaky_calls[key]} calls"


def retried(ctx: OrchestrationContext, key: str):  # type: ignore[no-untyped-def]
    return (yield ctx.call_activity("flaky", input=key, retry_policy=RETRY))


def flaky_child(ctx: OrchestrationContext, key: str):  # type: ignore[no-untyped-def]
    """A sub-orchestration whose first two runs fail (its activity raises)."""
    policy = RetryPolicy(first_retry_interval=timedelta(milliseconds=100), max_number_of_attempts=1)
    return (yield ctx.call_activity("flaky", input=key, retry_policy=policy))


def retried_child(ctx: OrchestrationContext, key: str):  # type: ignore[no-untyped-def]
    """Every attempt reuses the child's instance id: each must start it again."""
    return (yield ctx.call_sub_orchestrator("flaky_child", input=key, retry_policy=RETRY))


def retries_exhausted(ctx: OrchestrationContext, key: str):  # type: ignore[no-untyped-def]
    policy = RetryPolicy(first_retry_interval=timedelta(milliseconds=200), max_number_of_attempts=2)
    try:
        yield ctx.call_activity("flaky", input=key, retry_policy=policy)
    except TaskFailedError as error:
        return [error.details.error_type, error.details.message]
    return "unexpected success"


async def test_sub_orchestration_retries_restart_the_same_child_id(
    client: AsyncTaskHubClient,
) -> None:
    iid = await client.schedule_new_orchestration("retried_child", input="child-key")
    state = await client.wait_for_orchestration_completion(iid, timeout=TIMEOUT)
    state.raise_if_failed()
    assert state.get_output() == "child-key ok after 3 calls"
    history = await client.get_orchestration_history(iid)
    created = [e for e in history if type(e).__name__ == "SubOrchestrationInstanceCreated"]
    assert len(created) == 3 and len({e.instance_id for e in created}) == 1  # type: ignore[attr-defined]
    kinds = [type(e).__name__ for e in history]
    assert kinds.count("SubOrchestrationInstanceFailed") == 2


async def test_retries_are_durable_timers_then_succeed_or_give_up(
    client: AsyncTaskHubClient,
) -> None:
    iid = await client.schedule_new_orchestration("retried", input="a")
    state = await client.wait_for_orchestration_completion(iid, timeout=TIMEOUT)
    assert state.get_output() == "a ok after 3 calls"
    kinds = [type(e).__name__ for e in await client.get_orchestration_history(iid)]
    assert kinds.count("TaskScheduled") == 3 and kinds.count("TimerCreated") == 2
    assert await run(client, "retries_exhausted", "b") == [
        "builtins.ConnectionError",
        "call 2 for b failed",
    ]


# --- histories of earlier executions ----------------------------------------------------------
def _blob_writes(used: RequestCounts) -> tuple[int, int]:
    return used.counts.get(("blob", "PutBlob"), 0), used.counts.get(("blob", "DeleteBlob"), 0)


async def test_archiving_costs_a_write_per_continue_as_new_and_nothing_otherwise(
    client: AsyncTaskHubClient, counter: RequestCounter
) -> None:
    before = counter.snapshot()
    await run(client, "sequence")
    assert _blob_writes(counter.snapshot() - before) == (0, 0)

    before = counter.snapshot()
    assert await run(client, "counter_loop", 0) == 3
    # one blob per continue-as-new (3), one delete for each beyond the KEPT newest
    assert _blob_writes(counter.snapshot() - before) == (3, 3 - KEPT)


async def test_the_newest_earlier_executions_stay_readable_and_purge_removes_them(
    client: AsyncTaskHubClient,
) -> None:
    await run(client, "counter_loop", 0, instance_id="loop")
    ids = await client.list_execution_ids("loop")
    assert len(ids) == KEPT + 1
    for execution_id, generation in zip(ids, range(3 - KEPT, 4), strict=True):
        history = await client.get_orchestration_history("loop", execution_id=execution_id)
        started = next(e for e in history if isinstance(e, ExecutionStarted))
        assert (started.instance.execution_id, started.generation) == (execution_id, generation)
        (end,) = [e for e in history if isinstance(e, ExecutionCompleted)]
        assert end.status is (
            OrchestrationStatus.COMPLETED
            if generation == 3
            else OrchestrationStatus.CONTINUED_AS_NEW
        )
    assert await client.get_orchestration_history("loop", execution_id=ids[-1]) == (
        await client.get_orchestration_history("loop")
    )
    with pytest.raises(InvalidOperationError, match="is not kept"):
        await client.get_orchestration_history("loop", execution_id="dropped-long-ago")

    # a restart replaces the last execution: the episode that starts anew archives it
    await client.restart_orchestration("loop")
    await client.wait_for_orchestration_completion("loop", timeout=TIMEOUT)
    after = await client.list_execution_ids("loop")
    assert after[-1] not in ids and after[-2] == ids[-1] and len(after) == KEPT + 1

    await client.purge_orchestration("loop")
    backend = client.backend
    assert isinstance(backend, AzureStorageBackend)
    assert await backend.list_executions("loop") == []
    assert await backend.get_execution_history("loop", ids[-1]) is None
