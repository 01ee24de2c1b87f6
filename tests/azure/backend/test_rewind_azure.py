"""Rewind on Azurite for code that reacted to a failure: an exhausted RetryPolicy, a
compensation that re-raises, and a failed child with its own retries (rewound in place).

A TaskHubWorker runs on its own thread with its own AzureStorageBackend (extended sessions
on, so the worker holds the failed instance in its cache when the history is rewritten);
the client uses a second backend. ``CALLS`` counts every activity call, so the tests see
which work ran again. The in-memory variants of these and more scenarios are in
tests/e2e/test_rewind_e2e.py.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from typing import Any

import pytest

from durable_azstorage import (
    ActivityContext,
    AsyncTaskHubClient,
    InvalidOperationError,
    OrchestrationContext,
    OrchestrationNotFoundError,
    OrchestrationStatus,
    RetryPolicy,
    TaskFailedError,
    TaskHubWorker,
)
from durable_azstorage.azure.provider import AzureStorageBackend
from durable_azstorage.azure.settings import AzureStorageSettings
from durable_azstorage.model.history import (
    GenericEvent,
    SubOrchestrationInstanceCreated,
)

pytestmark = pytest.mark.azurite
TIMEOUT = 60
S = OrchestrationStatus
FAST = RetryPolicy(first_retry_interval=timedelta(milliseconds=100), max_number_of_attempts=2)
_lock = threading.Lock()
BROKEN: set[str] = set()
CALLS: dict[str, int] = {}


def act(ctx: ActivityContext, arg: str) -> str:
    with _lock:
        CALLS[arg] = CALLS.get(arg, 0) + 1
    if arg in BROKEN:
        raise RuntimeError(f"{arg} is broken")
    return arg.upper()


def retried(ctx: OrchestrationContext, _: Any):  # type: ignore[no-untyped-def]
    first = yield ctx.call_activity("act", input="a")
    return [first, (yield ctx.call_activity("act", input="b", retry_policy=FAST))]


def compensated(ctx: OrchestrationContext, _: Any):  # type: ignore[no-untyped-def]
    first = yield ctx.call_activity("act", input="a")
    try:
        second = yield ctx.call_activity("act", input="b")
    except TaskFailedError:
        yield ctx.call_activity("act", input="undo-a")
        raise
    return [first, second]


def child(ctx: OrchestrationContext, key: str):  # type: ignore[no-untyped-def]
    first = yield ctx.call_activity("act", input=f"{key}-ok")
    return [first, (yield ctx.call_activity("act", input=f"{key}-flaky", retry_policy=FAST))]


def parent(ctx: OrchestrationContext, _: Any):  # type: ignore[no-untyped-def]
    first = yield ctx.call_activity("act", input="p")
    return [first, (yield ctx.call_sub_orchestrator("child", input="c"))]


def abandons_child(ctx: OrchestrationContext, _: Any):  # type: ignore[no-untyped-def]
    try:
        yield ctx.call_activity("act", input="x")
    except TaskFailedError:
        ctx.call_sub_orchestrator("waiter", input=None)  # started, never awaited
        raise
    return "ok"


def waiter(ctx: OrchestrationContext, _: Any):  # type: ignore[no-untyped-def]
    return (yield ctx.wait_for_external_event("never"))


@pytest.fixture
def settings(azure_settings: AzureStorageSettings) -> AzureStorageSettings:
    return dataclasses.replace(
        azure_settings, partition_count=2, max_poll_interval=timedelta(milliseconds=300)
    )


@pytest.fixture
def worker(settings: AzureStorageSettings) -> Iterator[TaskHubWorker]:
    BROKEN.clear()
    CALLS.clear()
    w = TaskHubWorker(backend=AzureStorageBackend(settings), lock_renew_interval=timedelta(seconds=20))
    for fn in (retried, compensated, child, parent, abandons_child, waiter):
        w.add_orchestrator(fn)
    w.add_activity(act)
    try:
        yield w
    finally:
        w.stop(grace=timedelta(seconds=5))


@pytest.fixture
async def client(
    settings: AzureStorageSettings, worker: TaskHubWorker
) -> AsyncIterator[AsyncTaskHubClient]:
    backend = AzureStorageBackend(settings)
    await backend.create_task_hub()
    try:
        worker.start()
        async with AsyncTaskHubClient(backend=backend) as c:
            yield c
    finally:
        worker.stop(grace=timedelta(seconds=5))
        await backend.delete_task_hub()
        await backend.stop()


async def ends(client: AsyncTaskHubClient, instance_id: str, status: OrchestrationStatus) -> Any:
    state = await client.wait_for_orchestration_completion(instance_id, timeout=TIMEOUT)
    assert state.runtime_status is status, state.failure_details
    return state.get_output()


async def test_retry_policy_exhausted_then_rewound(client: AsyncTaskHubClient) -> None:
    BROKEN.add("b")
    iid = await client.schedule_new_orchestration("retried", instance_id="rw-retry")
    await ends(client, iid, S.FAILED)
    assert CALLS == {"a": 1, "b": 2}
    BROKEN.clear()

    await client.rewind_orchestration(iid, reason="fixed b")

    assert await ends(client, iid, S.COMPLETED) == ["A", "B"]
    assert CALLS == {"a": 1, "b": 3}
    history = await client.get_orchestration_history(iid)
    assert [e.data for e in history if isinstance(e, GenericEvent)] == ["rewind: fixed b"]


async def test_compensation_then_rewound(client: AsyncTaskHubClient) -> None:
    BROKEN.add("b")
    iid = await client.schedule_new_orchestration("compensated", instance_id="rw-comp")
    await ends(client, iid, S.FAILED)
    assert CALLS == {"a": 1, "b": 1, "undo-a": 1}
    BROKEN.clear()

    await client.rewind_orchestration(iid)

    assert await ends(client, iid, S.COMPLETED) == ["A", "B"]
    assert CALLS == {"a": 1, "b": 2, "undo-a": 1}


async def test_failed_child_with_retries_is_rewound_in_place(client: AsyncTaskHubClient) -> None:
    BROKEN.add("c-flaky")
    iid = await client.schedule_new_orchestration("parent", instance_id="rw-p")
    await ends(client, iid, S.FAILED)
    history = await client.get_orchestration_history(iid)
    kid = next(e.instance_id for e in history if isinstance(e, SubOrchestrationInstanceCreated))
    await ends(client, kid, S.FAILED)
    assert CALLS == {"p": 1, "c-ok": 1, "c-flaky": 2}
    BROKEN.clear()

    await client.rewind_orchestration(iid)

    assert await ends(client, iid, S.COMPLETED) == ["P", ["C-OK", "C-FLAKY"]]
    assert await ends(client, kid, S.COMPLETED) == ["C-OK", "C-FLAKY"]
    assert CALLS == {"p": 1, "c-ok": 1, "c-flaky": 3}  # the child's successful activity kept


async def test_orphan_child_blocks_the_rewind_until_it_ends_and_is_then_purged(
    client: AsyncTaskHubClient,
) -> None:
    BROKEN.add("x")
    iid = await client.schedule_new_orchestration("abandons_child", instance_id="rw-orphan")
    await ends(client, iid, S.FAILED)
    failed = await client.get_orchestration_history(iid)
    orphan = next(e.instance_id for e in failed if isinstance(e, SubOrchestrationInstanceCreated))
    await client.wait_for_orchestration_start(orphan, timeout=TIMEOUT)
    BROKEN.clear()

    with pytest.raises(InvalidOperationError, match=f"{orphan}.*after the first failure.*Running"):
        await client.rewind_orchestration(iid)
    assert await client.get_orchestration_history(iid) == failed  # nothing written

    await client.terminate_orchestration(orphan)
    await ends(client, orphan, S.TERMINATED)
    await client.rewind_orchestration(iid)
    assert await ends(client, iid, S.COMPLETED) == "ok"
    assert await client.get_orchestration_state(orphan) is None  # purged: nothing names it
    with pytest.raises(OrchestrationNotFoundError):
        await client.get_orchestration_history(orphan)


async def test_rewind_failure_paths(client: AsyncTaskHubClient) -> None:
    with pytest.raises(OrchestrationNotFoundError, match="ghost"):
        await client.rewind_orchestration("ghost")
    done = await client.schedule_new_orchestration("retried", instance_id="rw-done")
    await ends(client, done, S.COMPLETED)
    with pytest.raises(InvalidOperationError, match="'rw-done'.*Completed.*only Failed"):
        await client.rewind_orchestration(done)
