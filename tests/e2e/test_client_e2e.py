"""Every client operation of API.md (this issue), end to end on the in-memory backend."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from durable_azstorage import (
    AsyncTaskHubClient,
    CreateOrchestrationAction,
    InvalidOperationError,
    OrchestrationAlreadyExistsError,
    OrchestrationContext,
    OrchestrationIdReusePolicy,
    OrchestrationNotFoundError,
    OrchestrationQuery,
    OrchestrationStatus,
    TaskHubClient,
    TaskHubWorker,
)
from durable_azstorage.model.history import (
    EventRaised,
    ExecutionCompleted,
    ExecutionStarted,
    HistoryEvent,
)
from durable_azstorage.testing.eventually import eventually

TIMEOUT = 10


def waiter(ctx: OrchestrationContext, _: Any):  # type: ignore[no-untyped-def]
    """Waits for one "go" event and returns its data."""
    return (yield ctx.wait_for_external_event("go"))


def parent_of_waiter(ctx: OrchestrationContext, _: Any):  # type: ignore[no-untyped-def]
    return (yield ctx.call_sub_orchestrator(waiter, instance_id=f"{ctx.instance_id}-child"))


def quick(ctx: OrchestrationContext, value: Any) -> Any:
    return value


def started_at(ctx: OrchestrationContext, _: Any) -> str:
    return ctx.current_utc_datetime.isoformat()


@pytest.fixture
def running(worker: TaskHubWorker) -> TaskHubWorker:
    for fn in (waiter, parent_of_waiter, quick, started_at):
        worker.add_orchestrator(fn)
    worker.start()
    return worker


def status_of(client: TaskHubClient, iid: str) -> OrchestrationStatus | None:
    state = client.get_orchestration_state(iid)
    return state.runtime_status if state else None


def test_schedule_with_id_version_tags_and_get_state(
    running: TaskHubWorker, client: TaskHubClient
) -> None:
    iid = client.schedule_new_orchestration(
        quick, input={"n": 1}, instance_id="order-1", version="2.0", tags={"team": "billing"}
    )
    assert iid == "order-1"
    state = client.wait_for_orchestration_completion(iid, timeout=TIMEOUT)
    assert state.instance_id == "order-1"
    assert state.name == "quick"
    assert state.version == "2.0"
    assert state.tags == {"team": "billing"}
    assert state.get_input() == {"n": 1}
    assert state.get_output() == {"n": 1}
    assert state.created_at <= state.last_updated_at
    assert state.parent_instance_id is None
    state.raise_if_failed()  # completed: no error


def test_default_instance_id_is_a_fresh_uuid_hex(
    running: TaskHubWorker, client: TaskHubClient
) -> None:
    a = client.schedule_new_orchestration(quick)
    b = client.schedule_new_orchestration(quick)
    assert a != b and len(a) == 32 and int(a, 16) >= 0


def test_get_state_without_payloads(running: TaskHubWorker, client: TaskHubClient) -> None:
    iid = client.schedule_new_orchestration(quick, input="payload")
    client.wait_for_orchestration_completion(iid, timeout=TIMEOUT)
    bare = client.get_orchestration_state(iid, fetch_payloads=False)
    assert bare is not None and bare.runtime_status is OrchestrationStatus.COMPLETED
    assert bare.serialized_input is None and bare.serialized_output is None


def test_unknown_instance(running: TaskHubWorker, client: TaskHubClient) -> None:
    assert client.get_orchestration_state("nobody") is None
    for op in (
        lambda: client.raise_orchestration_event("nobody", "go"),
        lambda: client.terminate_orchestration("nobody"),
        lambda: client.suspend_orchestration("nobody"),
        lambda: client.resume_orchestration("nobody"),
        lambda: client.get_orchestration_history("nobody"),
    ):
        with pytest.raises(OrchestrationNotFoundError, match="'nobody'"):
            op()
    assert client.purge_orchestration("nobody").deleted_instance_count == 0


def test_wait_for_start_then_completion(running: TaskHubWorker, client: TaskHubClient) -> None:
    iid = client.schedule_new_orchestration(waiter)
    started = client.wait_for_orchestration_start(iid, timeout=TIMEOUT)
    assert started.runtime_status is OrchestrationStatus.RUNNING
    client.raise_orchestration_event(iid, "go", data=[1, 2])
    assert client.wait_for_orchestration_completion(iid, timeout=TIMEOUT).get_output() == [1, 2]


def test_wait_timeouts_raise_timeout_error_naming_instance_and_status(
    running: TaskHubWorker, client: TaskHubClient
) -> None:
    iid = client.schedule_new_orchestration(waiter, instance_id="stuck")
    client.wait_for_orchestration_start(iid, timeout=TIMEOUT)
    with pytest.raises(TimeoutError, match=r"'stuck'.*Running"):
        client.wait_for_orchestration_completion(iid, timeout=0.2)
    with pytest.raises(TimeoutError, match=r"'never-created'.*not found"):
        client.wait_for_orchestration_start("never-created", timeout=timedelta(milliseconds=100))


def test_scheduled_start_stays_pending_until_start_at(
    running: TaskHubWorker, client: TaskHubClient
) -> None:
    start_at = datetime.now(timezone.utc) + timedelta(seconds=1)
    iid = client.schedule_new_orchestration(started_at, start_at=start_at)
    assert status_of(client, iid) is OrchestrationStatus.PENDING
    with pytest.raises(TimeoutError, match="Pending"):
        client.wait_for_orchestration_start(iid, timeout=0.3)
    state = client.wait_for_orchestration_completion(iid, timeout=TIMEOUT)
    assert datetime.fromisoformat(state.get_output()) >= start_at


def test_naive_start_at_is_refused(running: TaskHubWorker, client: TaskHubClient) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        client.schedule_new_orchestration(quick, start_at=datetime(2030, 1, 1))


def test_raise_event_is_case_insensitive(running: TaskHubWorker, client: TaskHubClient) -> None:
    iid = client.schedule_new_orchestration(waiter)
    client.raise_orchestration_event(iid, "GO", data="loud")
    assert client.wait_for_orchestration_completion(iid, timeout=TIMEOUT).get_output() == "loud"


def test_events_to_a_completed_instance_are_dropped(
    running: TaskHubWorker,
    client: TaskHubClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    iid = client.schedule_new_orchestration(quick, input=1)
    client.wait_for_orchestration_completion(iid, timeout=TIMEOUT)
    before = client.get_orchestration_history(iid)
    with caplog.at_level(logging.INFO, logger="durable_azstorage"):
        client.raise_orchestration_event(iid, "late", data="ignored")  # accepted, then dropped

        def dropped() -> bool:
            return any(
                "discarding EventRaised" in r.getMessage() and iid in r.getMessage()
                for r in caplog.records
            )

        eventually(dropped, what="the worker to discard the late event")
    after = client.get_orchestration_history(iid)
    assert after == before
    assert not any(isinstance(e, EventRaised) for e in after)
    assert status_of(client, iid) is OrchestrationStatus.COMPLETED


def test_terminate_running_instance_with_output(
    running: TaskHubWorker, client: TaskHubClient
) -> None:
    iid = client.schedule_new_orchestration(waiter)
    client.wait_for_orchestration_start(iid, timeout=TIMEOUT)
    client.terminate_orchestration(iid, output={"reason": "operator"})
    state = client.wait_for_orchestration_completion(iid, timeout=TIMEOUT)
    assert state.runtime_status is OrchestrationStatus.TERMINATED
    assert state.get_output() == {"reason": "operator"}


def test_terminate_a_suspended_instance(running: TaskHubWorker, client: TaskHubClient) -> None:
    iid = client.schedule_new_orchestration(waiter)
    client.wait_for_orchestration_start(iid, timeout=TIMEOUT)
    client.suspend_orchestration(iid, reason="maintenance")
    eventually(lambda: status_of(client, iid) is OrchestrationStatus.SUSPENDED, what="suspended")
    client.terminate_orchestration(iid, output="stop")
    state = client.wait_for_orchestration_completion(iid, timeout=TIMEOUT)
    assert state.runtime_status is OrchestrationStatus.TERMINATED


@pytest.mark.parametrize("recursive", [True, False])
def test_terminate_recursive_into_children(
    running: TaskHubWorker, client: TaskHubClient, recursive: bool
) -> None:
    iid = client.schedule_new_orchestration(parent_of_waiter, instance_id=f"p-{recursive}")
    child = f"{iid}-child"
    eventually(
        lambda: status_of(client, child) is OrchestrationStatus.RUNNING, what="child running"
    )
    client.terminate_orchestration(iid, recursive=recursive)
    assert client.wait_for_orchestration_completion(iid, timeout=TIMEOUT).runtime_status is (
        OrchestrationStatus.TERMINATED
    )
    if recursive:
        state = client.wait_for_orchestration_completion(child, timeout=TIMEOUT)
        assert state.runtime_status is OrchestrationStatus.TERMINATED
    else:
        assert status_of(client, child) is OrchestrationStatus.RUNNING
        client.raise_orchestration_event(child, "go", data="orphan finishes")
        state = client.wait_for_orchestration_completion(child, timeout=TIMEOUT)
        assert state.get_output() == "orphan finishes"


def test_suspend_holds_events_until_resume(running: TaskHubWorker, client: TaskHubClient) -> None:
    iid = client.schedule_new_orchestration(waiter)
    client.wait_for_orchestration_start(iid, timeout=TIMEOUT)
    client.suspend_orchestration(iid, reason="hold")
    eventually(lambda: status_of(client, iid) is OrchestrationStatus.SUSPENDED, what="suspended")
    client.raise_orchestration_event(iid, "go", data="after resume")
    with pytest.raises(TimeoutError, match="Suspended"):
        client.wait_for_orchestration_completion(iid, timeout=0.3)
    client.resume_orchestration(iid, reason="go on")
    state = client.wait_for_orchestration_completion(iid, timeout=TIMEOUT)
    assert state.get_output() == "after resume"


def test_get_history_lists_committed_events(running: TaskHubWorker, client: TaskHubClient) -> None:
    iid = client.schedule_new_orchestration(quick, input="x")
    client.wait_for_orchestration_completion(iid, timeout=TIMEOUT)
    history: list[HistoryEvent] = client.get_orchestration_history(iid)
    assert isinstance(history[0], HistoryEvent)
    assert any(isinstance(e, ExecutionStarted) and e.name == "quick" for e in history)
    completed = [e for e in history if isinstance(e, ExecutionCompleted)]
    assert len(completed) == 1 and completed[0].status is OrchestrationStatus.COMPLETED


def test_purge_one_instance(running: TaskHubWorker, client: TaskHubClient) -> None:
    iid = client.schedule_new_orchestration(quick)
    client.wait_for_orchestration_completion(iid, timeout=TIMEOUT)
    assert client.purge_orchestration(iid).deleted_instance_count == 1
    assert client.get_orchestration_state(iid) is None
    with pytest.raises(OrchestrationNotFoundError):
        client.get_orchestration_history(iid)
    assert client.purge_orchestration(iid).deleted_instance_count == 0  # idempotent


def test_purge_is_recursive_into_sub_orchestrations(
    running: TaskHubWorker, client: TaskHubClient
) -> None:
    iid = client.schedule_new_orchestration(parent_of_waiter, instance_id="purge-parent")
    child = "purge-parent-child"
    client.wait_for_orchestration_start(child, timeout=TIMEOUT)
    client.raise_orchestration_event(child, "go", data=1)
    client.wait_for_orchestration_completion(iid, timeout=TIMEOUT)
    assert client.purge_orchestration(iid).deleted_instance_count == 2
    assert client.get_orchestration_state(child) is None


def test_purge_refuses_a_running_instance(running: TaskHubWorker, client: TaskHubClient) -> None:
    iid = client.schedule_new_orchestration(waiter)
    client.wait_for_orchestration_start(iid, timeout=TIMEOUT)
    with pytest.raises(InvalidOperationError, match="Running"):
        client.purge_orchestration(iid)
    assert client.get_orchestration_state(iid) is not None


def test_reuse_policy(running: TaskHubWorker, client: TaskHubClient) -> None:
    iid = client.schedule_new_orchestration(waiter, instance_id="same")
    client.wait_for_orchestration_start(iid, timeout=TIMEOUT)
    # Default: a running id is refused ...
    with pytest.raises(OrchestrationAlreadyExistsError, match="'same'"):
        client.schedule_new_orchestration(quick, instance_id="same")
    # ... IGNORE leaves the running instance alone ...
    ignore = OrchestrationIdReusePolicy(action=CreateOrchestrationAction.IGNORE)
    assert (
        client.schedule_new_orchestration(quick, instance_id="same", reuse_id_policy=ignore)
        == "same"
    )
    assert status_of(client, "same") is OrchestrationStatus.RUNNING
    # ... and an ended instance is replaced by a new execution.
    client.raise_orchestration_event("same", "go", data="first run")
    assert (
        client.wait_for_orchestration_completion("same", timeout=TIMEOUT).get_output()
        == "first run"
    )
    client.schedule_new_orchestration(quick, instance_id="same", input="second run")
    state = client.wait_for_orchestration_completion("same", timeout=TIMEOUT)
    assert state.name == "quick" and state.get_output() == "second run"


def test_reuse_policy_terminate_replaces_a_running_instance(
    running: TaskHubWorker, client: TaskHubClient
) -> None:
    client.schedule_new_orchestration(waiter, instance_id="replace-me")
    client.wait_for_orchestration_start("replace-me", timeout=TIMEOUT)
    policy = OrchestrationIdReusePolicy(action=CreateOrchestrationAction.TERMINATE)
    client.schedule_new_orchestration(
        quick, instance_id="replace-me", input=7, reuse_id_policy=policy
    )
    state = client.wait_for_orchestration_completion("replace-me", timeout=TIMEOUT)
    assert state.name == "quick" and state.get_output() == 7


def test_query_pages_and_get_all(running: TaskHubWorker, client: TaskHubClient) -> None:
    ids = [client.schedule_new_orchestration(quick, instance_id=f"q-{i}") for i in range(5)]
    for iid in ids:
        client.wait_for_orchestration_completion(iid, timeout=TIMEOUT)
    client.schedule_new_orchestration(quick, instance_id="other")
    query = OrchestrationQuery(instance_id_prefix="q-", page_size=2)
    first = client.query_orchestrations(query)
    assert len(first.items) == 2 and first.continuation_token is not None
    everything = client.get_all_orchestration_states(query)
    assert sorted(s.instance_id for s in everything) == ids
    done = client.get_all_orchestration_states(
        OrchestrationQuery(instance_id_prefix="q-", runtime_status=(OrchestrationStatus.COMPLETED,))
    )
    assert len(done) == 5


def test_failed_state_raise_if_failed(running: TaskHubWorker, client: TaskHubClient) -> None:
    iid = client.schedule_new_orchestration("not_registered_anywhere")
    state = client.wait_for_orchestration_completion(iid, timeout=TIMEOUT)
    assert state.runtime_status is OrchestrationStatus.FAILED
    with pytest.raises(Exception, match="not_registered_anywhere") as info:
        state.raise_if_failed()
    assert type(info.value).__name__ == "OrchestrationFailedError"


@pytest.mark.parametrize(
    "orchestrator",
    [waiter, started_at],
)
def test_terminate_a_pending_scheduled_instance(
    running: TaskHubWorker, client: TaskHubClient, orchestrator: Callable[..., Any]
) -> None:
    start_at = datetime.now(timezone.utc) + timedelta(milliseconds=300)
    iid = client.schedule_new_orchestration(orchestrator, start_at=start_at)
    client.terminate_orchestration(iid, output="cancelled before start")
    state = client.wait_for_orchestration_completion(iid, timeout=TIMEOUT)
    assert state.runtime_status is OrchestrationStatus.TERMINATED
    assert state.get_output() == "cancelled before start"


async def test_async_client_offers_the_same_operations(
    running: TaskHubWorker, async_client: AsyncTaskHubClient
) -> None:
    c = async_client
    iid = await c.schedule_new_orchestration(waiter, instance_id="async-1", tags={"k": "v"})
    assert (await c.wait_for_orchestration_start(iid, timeout=TIMEOUT)).runtime_status is (
        OrchestrationStatus.RUNNING
    )
    await c.suspend_orchestration(iid, reason="pause")
    await c.raise_orchestration_event(iid, "go", data={"async": True})
    with pytest.raises(TimeoutError, match="async-1"):
        await c.wait_for_orchestration_completion(iid, timeout=0.2)
    await c.resume_orchestration(iid)
    state = await c.wait_for_orchestration_completion(iid, timeout=TIMEOUT)
    assert state.get_output() == {"async": True} and state.tags == {"k": "v"}
    assert any(isinstance(e, EventRaised) for e in await c.get_orchestration_history(iid))
    page = await c.query_orchestrations(OrchestrationQuery(instance_id_prefix="async-"))
    assert [s.instance_id for s in page.items] == ["async-1"]
    assert [s.instance_id for s in await c.get_all_orchestration_states()] == ["async-1"]
    other = await c.schedule_new_orchestration(waiter)
    await c.terminate_orchestration(other, output="bye")
    assert (await c.wait_for_orchestration_completion(other, timeout=TIMEOUT)).get_output() == "bye"
    assert (await c.purge_orchestration(iid)).deleted_instance_count == 1
    assert await c.get_orchestration_state(iid) is None
    with pytest.raises(OrchestrationNotFoundError):
        await c.raise_orchestration_event(iid, "go")


def test_stale_index_tooling_is_refused_without_a_separate_index(client: TaskHubClient) -> None:
    """The in-memory backend writes history and state at once: there is no index to repair."""
    with pytest.raises(InvalidOperationError, match="InMemoryBackend keeps no instance index"):
        client.find_stale_instances()
    with pytest.raises(InvalidOperationError, match="InMemoryBackend"):
        client.repair_stale_instances()
