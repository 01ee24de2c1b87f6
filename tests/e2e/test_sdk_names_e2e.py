"""The portable SDK's client and worker names, and the deprecated earlier ones."""

from __future__ import annotations

import warnings
from collections.abc import Generator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

import durable_azstorage
from durable_azstorage import (
    ConcurrencyOptions,
    InMemoryBackend,
    InvalidOperationError,
    OrchestrationContext,
    OrchestrationQuery,
    OrchestrationStatus,
    PurgeInstancesResult,
    Task,
    TaskHubClient,
    TaskHubWorker,
)
from durable_azstorage.model.history import ExecutionCompleted, ExecutionStarted

TIMEOUT = 10
S = OrchestrationStatus


def quick(ctx: OrchestrationContext, x: Any) -> Any:
    return x


def fails(ctx: OrchestrationContext, _: Any) -> None:
    raise RuntimeError("no")


def kid(ctx: OrchestrationContext, _: Any) -> str:
    return "kid"


def with_kid(ctx: OrchestrationContext, _: Any) -> Generator[Task[Any], Any, Any]:
    return (yield ctx.call_sub_orchestrator(kid))


def statuses(ctx: OrchestrationContext, _: Any) -> None:
    ctx.set_custom_status(custom_status={"step": 1})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ctx.set_custom_status(obj={"step": 2})  # the earlier keyword, deprecated
    assert any("use custom_status=" in str(w.message) for w in caught)


def again(ctx: OrchestrationContext, n: int) -> None:
    if n < 2:
        ctx.continue_as_new(n + 1)


@pytest.fixture
def running(worker: TaskHubWorker) -> TaskHubWorker:
    for fn in (quick, fails, kid, with_kid, again, statuses):
        worker.add_orchestrator(fn)
    worker.start()
    return worker


def run(client: TaskHubClient, fn: Any, instance_id: str, input: Any = None) -> None:
    client.schedule_new_orchestration(fn, instance_id=instance_id, input=input)
    state = client.wait_for_orchestration_completion(instance_id, timeout=TIMEOUT)
    assert state is not None and state.is_terminal


# --- purge -----------------------------------------------------------------------------------
def test_purge_by_positional_sdk_arguments_and_recursive(
    running: TaskHubWorker, client: TaskHubClient
) -> None:
    run(client, with_kid, "p")
    assert client.get_orchestration_state("p:0000") is not None
    kept = client.purge_orchestrations_by(None, None, [S.COMPLETED], False, 60)  # the SDK's order
    assert isinstance(kept, PurgeInstancesResult)
    assert kept.deleted_instance_count == 2  # parent and child each match the filter on their own

    run(client, with_kid, "q")
    child_state = client.get_orchestration_state("q:0000")
    assert child_state is not None
    # created after the child: only the parent matches, recursive takes the child along
    result = client.purge_orchestrations_by(
        created_time_from=child_state.created_at - timedelta(seconds=60),
        runtime_status=[S.COMPLETED],
        recursive=True,
    )
    assert result.deleted_instance_count == 2 and result.is_complete
    assert client.get_orchestration_state("q:0000") is None


def test_purge_orchestration_takes_recursive_positionally(
    running: TaskHubWorker, client: TaskHubClient
) -> None:
    run(client, with_kid, "r")
    assert client.purge_orchestration("r", False).deleted_instance_count == 1
    assert client.get_orchestration_state("r:0000") is not None


def test_earlier_purge_argument_names_warn_and_still_work(
    running: TaskHubWorker, client: TaskHubClient
) -> None:
    run(client, quick, "old")
    with pytest.warns(
        DeprecationWarning, match=r"created_to=\.\.\.\) is deprecated; use created_time_to="
    ):
        result = client.purge_orchestrations_by(
            created_to=datetime.now(timezone.utc), runtime_status=[S.COMPLETED]
        )
    assert result.deleted_instance_count == 1
    with pytest.raises(TypeError, match="both created_from= and created_time_from="):
        client.purge_orchestrations_by(
            created_from=datetime.now(timezone.utc),
            created_time_from=datetime.now(timezone.utc),
            runtime_status=[S.COMPLETED],
        )


def test_purge_result_old_name_warns() -> None:
    with pytest.warns(
        DeprecationWarning, match="PurgeResult is deprecated; use PurgeInstancesResult"
    ):
        old = durable_azstorage.PurgeResult  # type: ignore[attr-defined]
    assert old is PurgeInstancesResult
    with pytest.warns(DeprecationWarning):
        from durable_azstorage.model.query import PurgeResult  # type: ignore[attr-defined]  # noqa: F401 - importing warns


# --- list_instance_ids -----------------------------------------------------------------------
def test_list_instance_ids_pages_to_a_none_token(
    running: TaskHubWorker, client: TaskHubClient
) -> None:
    for i in range(5):
        run(client, quick, f"ok-{i}")
    run(client, fails, "bad")
    client.schedule_new_orchestration(
        quick, instance_id="later", start_at=datetime.now(timezone.utc) + timedelta(days=1)
    )

    seen: list[str] = []
    token: str | None = None
    pages = 0
    while True:
        page = client.list_instance_ids(page_size=2, continuation_token=token)
        assert len(page.items) <= 2
        seen += page.items
        pages += 1
        token = page.continuation_token
        if token is None:
            break
    assert (
        sorted(seen) == sorted([f"ok-{i}" for i in range(5)] + ["bad"]) and pages >= 3
    )  # not "later"
    assert client.list_instance_ids(runtime_status=[S.FAILED]).items == ["bad"]


def test_a_full_last_page_has_no_token(running: TaskHubWorker, client: TaskHubClient) -> None:
    """The SDK's callers loop until the token is None: a last page that happens to be full
    must not send them to one more, empty, page."""
    for i in range(4):
        run(client, quick, f"full-{i}")
    first = client.list_instance_ids(page_size=2)
    second = client.list_instance_ids(page_size=2, continuation_token=first.continuation_token)
    assert first.continuation_token is not None and len(first.items) == 2
    assert (len(second.items), second.continuation_token) == (2, None)
    assert sorted(first.items + second.items) == [f"full-{i}" for i in range(4)]


def test_list_instance_ids_by_completed_time(running: TaskHubWorker, client: TaskHubClient) -> None:
    run(client, quick, "first")
    first = client.get_orchestration_state("first")
    assert first is not None and first.completed_at is not None
    run(client, quick, "second")
    after = first.completed_at + timedelta(microseconds=1)
    assert client.list_instance_ids(completed_time_from=after).items == ["second"]
    assert client.list_instance_ids(completed_time_to=first.completed_at).items == ["first"]
    empty = client.list_instance_ids(
        completed_time_from=datetime.now(timezone.utc) + timedelta(days=1), page_size=1
    )
    assert (empty.items, empty.continuation_token) == ([], None)


async def test_async_client_has_the_same_calls(running: TaskHubWorker, async_client: Any) -> None:
    await async_client.schedule_new_orchestration(quick, instance_id="a")
    await async_client.wait_for_orchestration_completion("a", timeout=TIMEOUT)
    assert (await async_client.list_instance_ids()).items == ["a"]
    with pytest.warns(DeprecationWarning, match="created_from"):
        await async_client.purge_orchestrations_by(
            created_from=datetime(2000, 1, 1), runtime_status=["Completed"]
        )


# --- query and history -----------------------------------------------------------------------
def test_get_all_orchestration_states_takes_the_sdk_argument_name(
    running: TaskHubWorker, client: TaskHubClient
) -> None:
    run(client, quick, "one")
    query = OrchestrationQuery(runtime_status=(S.COMPLETED,))
    assert [
        s.instance_id for s in client.get_all_orchestration_states(orchestration_query=query)
    ] == ["one"]
    with pytest.warns(
        DeprecationWarning, match=r"get_all_orchestration_states\(query=\.\.\.\) is deprecated"
    ):
        assert len(client.get_all_orchestration_states(query=query)) == 1


def test_set_custom_status_takes_the_sdk_argument_name(
    running: TaskHubWorker, client: TaskHubClient
) -> None:
    run(client, statuses, "cs")
    state = client.get_orchestration_state("cs")
    assert state is not None and state.runtime_status is S.COMPLETED, state
    assert state.get_custom_status() == {"step": 2}


def test_orchestration_query_takes_the_sdk_field_names() -> None:
    query = OrchestrationQuery(
        created_time_from=None,
        created_time_to=None,
        runtime_status=[S.RUNNING, "Completed"],  # type: ignore[arg-type]
        max_instance_count=(1 << 31) - 1,
        fetch_inputs_and_outputs=True,
        instance_id_prefix="x",
    )
    assert query.runtime_status == (S.RUNNING, S.COMPLETED)
    assert query.page_size == 1000
    assert OrchestrationQuery(max_instance_count=5).page_size == 5
    with pytest.raises(ValueError, match="max_instance_count must be at least 1"):
        OrchestrationQuery(max_instance_count=0)


def test_histories_of_earlier_executions_by_id(
    running: TaskHubWorker, client: TaskHubClient
) -> None:
    client.schedule_new_orchestration(again, instance_id="loop", input=0)
    client.wait_for_orchestration_completion("loop", timeout=TIMEOUT)
    history = client.get_orchestration_history("loop")
    ids = client.list_execution_ids("loop")
    assert len(ids) == 3 and ids[-1] == _execution_of(history)  # generations 0, 1, then 2
    assert client.get_orchestration_history("loop", execution_id=ids[-1]) == history
    for generation, execution_id in enumerate(ids[:-1]):
        earlier = client.get_orchestration_history("loop", execution_id=execution_id)
        started = next(e for e in earlier if isinstance(e, ExecutionStarted))
        assert started.instance.execution_id == execution_id and started.input == str(generation)
        end = next(e for e in earlier if isinstance(e, ExecutionCompleted))
        assert end.status is S.CONTINUED_AS_NEW and end.result == str(generation + 1)
    with pytest.raises(
        InvalidOperationError, match="'an-unknown-one' of orchestration 'loop' is not kept"
    ):
        client.get_orchestration_history("loop", execution_id="an-unknown-one")

    restarted = client.restart_orchestration("loop")
    client.wait_for_orchestration_completion(restarted, timeout=TIMEOUT)
    # the restart (with the last input, 2: it does not continue) replaced the last execution
    current = _execution_of(client.get_orchestration_history("loop"))
    assert client.list_execution_ids("loop") == [*ids, current] and current not in ids
    assert client.get_orchestration_history("loop", execution_id=ids[-1]) == history


def test_no_earlier_executions_are_kept_when_archiving_is_off() -> None:
    backend = InMemoryBackend(archived_executions=0)
    worker = TaskHubWorker(backend=backend)
    worker.add_orchestrator(again)
    worker.start()
    try:
        client = TaskHubClient(backend=backend)
        client.schedule_new_orchestration(again, instance_id="off", input=0)
        client.wait_for_orchestration_completion("off", timeout=TIMEOUT)
        current = _execution_of(client.get_orchestration_history("off"))
        assert client.list_execution_ids("off") == [current]
    finally:
        worker.stop()


def _execution_of(history: list[Any]) -> str | None:
    return next(e.instance.execution_id for e in history if isinstance(e, ExecutionStarted))


# --- ConcurrencyOptions ----------------------------------------------------------------------
def test_concurrency_options_configure_the_worker() -> None:
    options = ConcurrencyOptions(
        maximum_concurrent_activity_work_items=3,
        maximum_concurrent_orchestration_work_items=7,
        maximum_thread_pool_workers=2,
    )
    worker = TaskHubWorker(backend=InMemoryBackend(), concurrency_options=options)
    assert (worker._max_orchestrations, worker._max_activities, worker._activity_threads) == (
        7,
        3,
        2,
    )
    defaults = TaskHubWorker(backend=InMemoryBackend(), concurrency_options=ConcurrencyOptions())
    assert (defaults._max_orchestrations, defaults._max_activities) == (100, 10)
    with pytest.raises(ValueError, match="either concurrency_options= or max_concurrent"):
        TaskHubWorker(
            backend=InMemoryBackend(), concurrency_options=options, max_concurrent_activities=2
        )
    with pytest.raises(ValueError, match="maximum_thread_pool_workers must be a positive integer"):
        ConcurrencyOptions(maximum_thread_pool_workers=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        TaskHubWorker(backend=InMemoryBackend(), max_concurrent_activities=2)  # still first-class
