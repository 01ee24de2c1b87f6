"""Management operations end to end on the in-memory backend: purge by filter, counts,
restart and rewind (issue 6), each with its failure paths."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from durable_azstorage import (
    ActivityContext,
    InvalidOperationError,
    OrchestrationContext,
    OrchestrationNotFoundError,
    OrchestrationQuery,
    OrchestrationStatus,
    TaskHubClient,
    TaskHubWorker,
    when_all,
)
from durable_azstorage.model.history import ExecutionStarted, GenericEvent, TaskCompleted, TaskScheduled

TIMEOUT = 10
S = OrchestrationStatus


class Flaky:
    """Activities that fail while ``broken`` is set; counts every call by name."""

    def __init__(self) -> None:
        self.broken = True
        self.calls: dict[str, int] = {}
        self._lock = threading.Lock()

    def call(self, name: str) -> None:
        with self._lock:
            self.calls[name] = self.calls.get(name, 0) + 1
        if self.broken:
            raise RuntimeError(f"{name} is broken")


FLAKY = Flaky()


def steady(ctx: ActivityContext, x: int) -> int:
    FLAKY.calls["steady"] = FLAKY.calls.get("steady", 0) + 1
    return x * 10


def fragile(ctx: ActivityContext, x: int) -> int:
    FLAKY.call("fragile")
    return x + 1


def pipeline(ctx: OrchestrationContext, x: int):  # type: ignore[no-untyped-def]
    a = yield ctx.call_activity(steady, input=x)
    b = yield ctx.call_activity(fragile, input=a)
    return b


def fan(ctx: OrchestrationContext, n: int):  # type: ignore[no-untyped-def]
    steady_results = yield when_all([ctx.call_activity(steady, input=i) for i in range(n)])
    last = yield ctx.call_activity(fragile, input=sum(steady_results))
    return last


def parent(ctx: OrchestrationContext, x: int):  # type: ignore[no-untyped-def]
    first = yield ctx.call_activity(steady, input=x)
    child = yield ctx.call_sub_orchestrator(pipeline, input=x, instance_id=f"{ctx.instance_id}-c")
    return [first, child]


def quick(ctx: OrchestrationContext, value: Any) -> Any:
    return value


def boom(ctx: OrchestrationContext, _: Any) -> Any:
    raise ValueError("boom")


def waiter(ctx: OrchestrationContext, _: Any):  # type: ignore[no-untyped-def]
    return (yield ctx.wait_for_external_event("go"))


@pytest.fixture
def running(worker: TaskHubWorker) -> TaskHubWorker:
    FLAKY.broken, FLAKY.calls = True, {}
    for fn in (pipeline, fan, parent, quick, boom, waiter):
        worker.add_orchestrator(fn)
    worker.add_activity(steady)
    worker.add_activity(fragile)
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
    done = [client.schedule_new_orchestration(quick, input=i, instance_id=f"ok-{i}") for i in range(7)]
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
    ids = [client.schedule_new_orchestration(quick, instance_id=f"p-{i:03d}") for i in range(120)]
    for i in ids:
        finish(client, i)

    first = client.purge_orchestrations_by(runtime_status=[S.COMPLETED], timeout=0)
    assert (first.deleted_instance_count, first.is_complete) == (0, False)
    assert client.count_orchestrations_by_status()[S.COMPLETED] == 120  # nothing lost

    # Each deletion is slowed down, so a short timeout stops every call part-way; calling
    # again resumes where the last one stopped until the purge reports completion.
    total, calls, result = 0, 0, first
    while not result.is_complete and calls < 500:
        result = client.purge_orchestrations_by(
            runtime_status=[S.COMPLETED], timeout=0.2, concurrency=2,
            progress=lambda _: time.sleep(0.01),
        )
        total += result.deleted_instance_count
        calls += 1
    assert result.is_complete and total == 120
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
    iid = client.schedule_new_orchestration(quick, input={"n": 1}, instance_id="r-1", tags={"t": "1"})
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


# --- rewind ----------------------------------------------------------------------------------
def test_rewind_reruns_failed_activity_and_keeps_successful_results(
    running: TaskHubWorker, client: TaskHubClient
) -> None:
    iid = client.schedule_new_orchestration(pipeline, input=4, instance_id="rw-1")
    failed = client.wait_for_orchestration_completion(iid, timeout=TIMEOUT)
    assert failed.runtime_status is S.FAILED
    failed_execution = execution_of(client, iid)
    assert FLAKY.calls == {"steady": 1, "fragile": 1}

    FLAKY.broken = False
    client.rewind_orchestration(iid, reason="fixed the bug")
    done = client.wait_for_orchestration_completion(iid, timeout=TIMEOUT)

    assert (done.runtime_status, done.get_output()) == (S.COMPLETED, 41)
    assert execution_of(client, iid) == failed_execution and done.failure_details is None
    assert FLAKY.calls == {"steady": 1, "fragile": 2}  # steady's result was replayed
    history = client.get_orchestration_history(iid)
    markers = [e.data for e in history if isinstance(e, GenericEvent)]
    assert markers == ["rewind: fixed the bug"]
    scheduled = [e.name for e in history if isinstance(e, TaskScheduled)]
    assert scheduled == ["steady", "fragile"]


def test_rewind_fan_out_keeps_every_completed_branch(
    running: TaskHubWorker, client: TaskHubClient
) -> None:
    iid = client.schedule_new_orchestration(fan, input=5, instance_id="rw-fan")
    assert finish(client, iid) is S.FAILED
    FLAKY.broken = False
    client.rewind_orchestration(iid)
    done = client.wait_for_orchestration_completion(iid, timeout=TIMEOUT)
    assert (done.runtime_status, done.get_output()) == (S.COMPLETED, 101)
    assert FLAKY.calls == {"steady": 5, "fragile": 2}
    completed = [e for e in client.get_orchestration_history(iid) if isinstance(e, TaskCompleted)]
    assert len(completed) == 6


def test_rewind_recurses_into_failed_sub_orchestration(
    running: TaskHubWorker, client: TaskHubClient
) -> None:
    iid = client.schedule_new_orchestration(parent, input=2, instance_id="rw-p")
    assert finish(client, iid) is S.FAILED
    assert finish(client, "rw-p-c") is S.FAILED
    FLAKY.broken = False

    client.rewind_orchestration(iid, reason="retry child")

    done = client.wait_for_orchestration_completion(iid, timeout=TIMEOUT)
    assert (done.runtime_status, done.get_output()) == (S.COMPLETED, [20, 21])
    child = client.get_orchestration_state("rw-p-c")
    assert child is not None and (child.runtime_status, child.get_output()) == (S.COMPLETED, 21)
    # parent's steady and child's steady ran once each; fragile once failed, once succeeded
    assert FLAKY.calls == {"steady": 2, "fragile": 2}


def test_rewind_failure_paths(running: TaskHubWorker, client: TaskHubClient) -> None:
    with pytest.raises(OrchestrationNotFoundError, match="ghost"):
        client.rewind_orchestration("ghost")
    live = client.schedule_new_orchestration(waiter, instance_id="rw-live")
    client.wait_for_orchestration_start(live, timeout=TIMEOUT)
    with pytest.raises(InvalidOperationError, match="rw-live.*Running.*only Failed"):
        client.rewind_orchestration(live)
    ok = client.schedule_new_orchestration(quick, instance_id="rw-ok")
    finish(client, ok)
    with pytest.raises(InvalidOperationError, match="Completed"):
        client.rewind_orchestration(ok)


def test_rewind_refuses_when_failed_child_was_purged(
    running: TaskHubWorker, client: TaskHubClient
) -> None:
    iid = client.schedule_new_orchestration(parent, input=1, instance_id="rw-q")
    assert finish(client, iid) is S.FAILED
    client.purge_orchestration("rw-q-c")
    before = client.get_orchestration_history(iid)
    with pytest.raises(InvalidOperationError, match="rw-q-c.*no longer exists"):
        client.rewind_orchestration(iid)
    assert client.get_orchestration_history(iid) == before  # nothing written


def test_stale_index_tooling_is_refused_without_a_separate_index(client: TaskHubClient) -> None:
    with pytest.raises(InvalidOperationError, match="InMemoryBackend keeps no instance index"):
        client.find_stale_instances()
    with pytest.raises(InvalidOperationError, match="InMemoryBackend"):
        client.repair_stale_instances()
