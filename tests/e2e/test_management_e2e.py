"""Management operations end to end on every backend (memory, Azurite): purge by filter,
counts and restart, each with its failure paths. Rewind has its own suite (test_rewind_e2e)."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from e2e_backends import BACKENDS

from durable_azstorage import (
    InvalidOperationError,
    OrchestrationContext,
    OrchestrationNotFoundError,
    OrchestrationQuery,
    OrchestrationStatus,
    TaskHubClient,
    TaskHubWorker,
)
from durable_azstorage.model.history import ExecutionStarted

pytestmark = pytest.mark.parametrize("storage", BACKENDS, indirect=True)
TIMEOUT = 30
S = OrchestrationStatus


def quick(ctx: OrchestrationContext, value: Any) -> Any:
    return value


def boom(ctx: OrchestrationContext, _: Any) -> Any:
    raise ValueError("boom")


def waiter(ctx: OrchestrationContext, _: Any):  # type: ignore[no-untyped-def]
    return (yield ctx.wait_for_external_event("go"))


@pytest.fixture
def running(worker: TaskHubWorker) -> TaskHubWorker:
    for fn in (quick, boom, waiter):
        worker.add_orchestrator(fn)
    worker.start()
    return worker


def finish(client: TaskHubClient, instance_id: str) -> OrchestrationStatus:
    return client.wait_for_orchestration_completion(instance_id, timeout=TIMEOUT).runtime_status


def execution_of(client: TaskHubClient, instance_id: str) -> str | None:
    history = client.get_orchestration_history(instance_id)
    started = next(e for e in history if isinstance(e, ExecutionStarted))
    return started.instance.execution_id


# --- purge by filter -------------------------------------------------------------------------
def test_purge_by_filter_deletes_only_ended_matching_instances(
    running: TaskHubWorker, client: TaskHubClient
) -> None:
    done = [
        client.schedule_new_orchestration(quick, input=i, instance_id=f"ok-{i}") for i in range(7)
    ]
    failed = [client.schedule_new_orchestration(boom, instance_id=f"bad-{i}") for i in range(3)]
    live = client.schedule_new_orchestration(waiter, instance_id="live")
    assert {finish(client, i) for i in done} == {S.COMPLETED}
    assert {finish(client, i) for i in failed} == {S.FAILED}
    client.wait_for_orchestration_start(live, timeout=TIMEOUT)

    seen: list[int] = []
    result = client.purge_orchestrations_by(runtime_status=[S.COMPLETED], progress=seen.append)

    assert (result.deleted_instance_count, result.is_complete) == (7, True)
    assert seen == list(range(1, 8))
    assert all(client.get_orchestration_state(i) is None for i in done)
    assert all(client.get_orchestration_state(i) is not None for i in failed)
    assert client.get_orchestration_state(live) is not None
    again = client.purge_orchestrations_by(runtime_status=["Completed"])
    assert (again.deleted_instance_count, again.is_complete) == (0, True)  # idempotent


def test_purge_by_created_range(running: TaskHubWorker, client: TaskHubClient) -> None:
    old = client.schedule_new_orchestration(quick, instance_id="old")
    finish(client, old)
    created = client.get_orchestration_state(old)
    assert created is not None
    cut = created.created_at + timedelta(microseconds=1)
    new = client.schedule_new_orchestration(quick, instance_id="new")
    finish(client, new)

    result = client.purge_orchestrations_by(created_time_from=cut, runtime_status=[S.COMPLETED])

    assert result.deleted_instance_count == 1
    assert client.get_orchestration_state("new") is None
    assert client.get_orchestration_state("old") is not None
    result = client.purge_orchestrations_by(
        created_time_to=datetime.now(timezone.utc), runtime_status=[S.COMPLETED]
    )
    assert result.deleted_instance_count == 1


@pytest.mark.parametrize(
    ("statuses", "words"),
    [
        (None, "needs runtime_status"),
        ([], "needs runtime_status"),
        ([S.RUNNING], "Running"),
        ([S.COMPLETED, S.PENDING], "Pending"),
        (["Suspended"], "Suspended"),
        ([S.CONTINUED_AS_NEW], "ContinuedAsNew"),
    ],
)
def test_purge_by_filter_refuses_non_terminal_statuses(
    client: TaskHubClient, statuses: list[Any] | None, words: str
) -> None:
    with pytest.raises(ValueError, match=words) as caught:
        client.purge_orchestrations_by(runtime_status=statuses)
    assert "Completed, Failed, Terminated" in str(caught.value)


def test_purge_with_timeout_is_incomplete_and_resumes_to_completion(
    running: TaskHubWorker, client: TaskHubClient
) -> None:
    ids = [client.schedule_new_orchestration(quick, instance_id=f"p-{i:03d}") for i in range(24)]
    for i in ids:
        finish(client, i)

    first = client.purge_orchestrations_by(runtime_status=[S.COMPLETED], timeout=0)
    assert (first.deleted_instance_count, first.is_complete) == (0, False)
    assert client.count_orchestrations_by_status()[S.COMPLETED] == 24  # nothing lost

    # Each deletion is slowed down, so a short timeout stops every call part-way; calling
    # again resumes where the last one stopped until the purge reports completion.
    total, calls, result = 0, 0, first
    while not result.is_complete and calls < 500:
        result = client.purge_orchestrations_by(
            runtime_status=[S.COMPLETED],
            timeout=0.2,
            concurrency=2,
            progress=lambda _: time.sleep(0.05),
        )
        total += result.deleted_instance_count
        calls += 1
    assert result.is_complete and total == 24
    assert calls > 1  # it really was resumed
    final = client.purge_orchestrations_by(runtime_status=[S.COMPLETED], timeout=60)
    assert (final.deleted_instance_count, final.is_complete) == (0, True)
    assert client.count_orchestrations_by_status()[S.COMPLETED] == 0


# --- counts ----------------------------------------------------------------------------------
def test_count_by_status(running: TaskHubWorker, client: TaskHubClient) -> None:
    for i in range(4):
        finish(client, client.schedule_new_orchestration(quick, instance_id=f"q-{i}"))
    finish(client, client.schedule_new_orchestration(boom, instance_id="q-bad"))
    client.wait_for_orchestration_start(
        client.schedule_new_orchestration(waiter, instance_id="w-1"), timeout=TIMEOUT
    )

    counts = client.count_orchestrations_by_status()

    assert counts[S.COMPLETED] == 4 and counts[S.FAILED] == 1 and counts[S.RUNNING] == 1
    assert set(counts) == set(S) and sum(counts.values()) == 6
    only = client.count_orchestrations_by_status(
        OrchestrationQuery(instance_id_prefix="q-", runtime_status=(S.FAILED, S.RUNNING))
    )
    assert only == {S.FAILED: 1, S.RUNNING: 0}


# --- restart ---------------------------------------------------------------------------------
def test_restart_same_and_new_instance_id(running: TaskHubWorker, client: TaskHubClient) -> None:
    iid = client.schedule_new_orchestration(
        quick, input={"n": 1}, instance_id="r-1", tags={"t": "1"}
    )
    finish(client, iid)
    first_execution = execution_of(client, iid)

    same = client.restart_orchestration(iid)
    assert same == iid
    again = client.wait_for_orchestration_completion(iid, timeout=TIMEOUT)
    assert again.instance_id == iid and again.get_output() == {"n": 1}
    assert execution_of(client, iid) != first_execution and again.tags == {"t": "1"}

    other = client.restart_orchestration(iid, restart_with_new_instance_id=True)
    assert other != iid
    moved = client.wait_for_orchestration_completion(other, timeout=TIMEOUT)
    assert (moved.name, moved.get_output()) == ("quick", {"n": 1})


def test_restart_failure_paths(running: TaskHubWorker, client: TaskHubClient) -> None:
    with pytest.raises(OrchestrationNotFoundError, match="nope"):
        client.restart_orchestration("nope")
    live = client.schedule_new_orchestration(waiter, instance_id="r-live")
    client.wait_for_orchestration_start(live, timeout=TIMEOUT)
    with pytest.raises(InvalidOperationError, match="r-live.*Running.*only ended"):
        client.restart_orchestration(live)
