"""Durable entities end to end, on every backend: the semantics the SDK documents.

Operations run one at a time in the order each sender sent them; state is durable across
worker restarts; a failed call raises in the orchestrator and rolls the state back; critical
sections lock in a global order and release on exit, failure and termination;
``clean_entity_storage`` releases orphaned locks and removes empty entities.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from e2e_backends import BACKENDS

from durable_azstorage import (
    DurableEntity,
    EntityContext,
    EntityInstanceId,
    EntityMetadata,
    EntityOperationFailedException,
    EntityQuery,
    OrchestrationContext,
    OrchestrationStatus,
    TaskHubClient,
    TaskHubWorker,
)
from durable_azstorage.azure.settings import AzureStorageSettings
from durable_azstorage.testing.eventually import eventually

pytestmark = pytest.mark.parametrize("storage", BACKENDS, indirect=True)

TIMEOUT = 30


def log_entity(ctx: EntityContext, input: Any) -> Any:
    """Appends inputs to a list; ``get`` returns it; ``fail`` changes the state, then raises."""
    items: list[Any] = ctx.get_state(list, [])
    if ctx.operation == "append":
        ctx.set_state([*items, input])
    elif ctx.operation == "get":
        return items
    elif ctx.operation == "fail":
        ctx.set_state(["changed before failing"])
        raise ValueError(f"refused {input!r}")
    elif ctx.operation == "delete":
        ctx.set_state(None)
    return None


class Account(DurableEntity):
    def deposit(self, amount: int) -> int:
        balance: int = self.get_state(int, 0) + amount
        self.set_state(balance)
        return balance

    def withdraw(self, amount: int) -> int:
        balance: int = self.get_state(int, 0)
        if amount > balance:
            raise ValueError(f"insufficient funds: {balance} < {amount}")
        self.set_state(balance - amount)
        return balance - amount

    def balance(self) -> int:
        return int(self.get_state(int, 0))


def signal_in_order(ctx: OrchestrationContext, count: int):  # type: ignore[no-untyped-def]
    target = EntityInstanceId("log_entity", ctx.instance_id)
    for i in range(count):
        ctx.signal_entity(target, "append", i)
    return (yield ctx.call_entity(target, "get"))


def call_then_fail(ctx: OrchestrationContext, key: str):  # type: ignore[no-untyped-def]
    target = EntityInstanceId("log_entity", key)
    yield ctx.call_entity(target, "append", "kept")
    try:
        yield ctx.call_entity(target, "fail", "x")
    except EntityOperationFailedException as exc:
        return {"error": str(exc), "state": (yield ctx.call_entity(target, "get"))}
    return {"error": None}


def transfer(ctx: OrchestrationContext, order: list[str]):  # type: ignore[no-untyped-def]
    """Moves 1 between two accounts inside a critical section; ``order`` is how it names them."""
    first, second = (EntityInstanceId("account", k) for k in order)
    with (yield ctx.lock_entities([first, second])):
        yield ctx.call_entity(first, "withdraw", 1)
        yield ctx.call_entity(second, "deposit", 1)
    return "done"


def lock_and_fail(ctx: OrchestrationContext, key: str):  # type: ignore[no-untyped-def]
    with (yield ctx.lock_entities([EntityInstanceId("account", key)])):
        raise RuntimeError("failed inside the critical section")


def lock_and_wait(ctx: OrchestrationContext, key: str):  # type: ignore[no-untyped-def]
    with (yield ctx.lock_entities([EntityInstanceId("account", key)])):
        yield ctx.wait_for_external_event("go")
    return "released"


def call_unlocked(ctx: OrchestrationContext, key: str):  # type: ignore[no-untyped-def]
    with (yield ctx.lock_entities([EntityInstanceId("account", key)])):
        try:
            yield ctx.call_entity(EntityInstanceId("account", key + "-other"), "balance")
        except RuntimeError as exc:
            return str(exc)
    return "no error"


def lock_then_continue(ctx: OrchestrationContext, generation: int):  # type: ignore[no-untyped-def]
    """Generation 0 continues as new while holding the lock (in the ``with`` block, and with
    a lock it never leaves); generation 1 can only finish if both were released."""
    account = EntityInstanceId("account", "can")
    if generation == 0:
        with (yield ctx.lock_entities([account])):
            ctx.continue_as_new(1)
            return None
    if generation == 1:
        yield ctx.lock_entities([account])  # held, never left: continue-as-new releases it
        ctx.continue_as_new(2)
        return None
    with (yield ctx.lock_entities([account])):
        return (yield ctx.call_entity(account, "balance"))


def register(worker: TaskHubWorker) -> None:
    worker.add_entity(log_entity)
    worker.add_entity(Account)
    for fn in (
        signal_in_order,
        call_then_fail,
        transfer,
        lock_and_fail,
        lock_and_wait,
        call_unlocked,
        lock_then_continue,
    ):
        worker.add_orchestrator(fn)
    worker.start()


def entity_state(client: TaskHubClient, entity: EntityInstanceId) -> Any:
    found = client.get_entity(entity)
    return found.get_state() if found is not None else None


def wait_done(client: TaskHubClient, instance_id: str) -> Any:
    state = client.wait_for_orchestration_completion(instance_id, timeout=TIMEOUT)
    assert state is not None
    assert state.runtime_status is OrchestrationStatus.COMPLETED, state.failure_details
    return state.get_output()


def test_operations_from_one_sender_run_in_the_order_sent(
    worker: TaskHubWorker, client: TaskHubClient
) -> None:
    register(worker)
    instance = client.schedule_new_orchestration(signal_in_order, input=15)
    assert wait_done(client, instance) == list(range(15))
    direct = EntityInstanceId("log_entity", "from-client")
    for i in range(10):
        client.signal_entity(direct, "append", i)
    assert eventually(
        lambda: entity_state(client, direct),
        until=lambda s: s is not None and len(s) == 10,
        timeout=TIMEOUT,
    ) == list(range(10))


def test_a_failed_call_raises_in_the_orchestrator_and_rolls_the_state_back(
    worker: TaskHubWorker, client: TaskHubClient
) -> None:
    register(worker)
    result = wait_done(client, client.schedule_new_orchestration(call_then_fail, input="k"))
    assert "refused 'x'" in result["error"] and "@log_entity@k" in result["error"]
    assert result["state"] == ["kept"]


def test_class_based_entity_and_delete(worker: TaskHubWorker, client: TaskHubClient) -> None:
    register(worker)
    alice = EntityInstanceId("Account", "alice")
    assert str(alice) == "@account@alice"
    client.signal_entity(alice, "deposit", 10)
    client.signal_entity(alice, "withdraw", 3)
    eventually(lambda: entity_state(client, alice), until=lambda s: s == 7, timeout=TIMEOUT)
    listed = client.get_all_entities(EntityQuery(instance_id_starts_with="@account@"))
    assert [e.id for e in listed] == [alice]
    assert client.get_all_orchestration_states() == []  # entities are not orchestrations
    client.signal_entity(alice, "delete")
    eventually(lambda: client.get_entity(alice), until=lambda e: e is None, timeout=TIMEOUT)
    assert client.get_all_entities(EntityQuery(instance_id_starts_with="@account@")) == []


def test_a_delayed_signal_is_delivered_at_its_time(
    worker: TaskHubWorker, client: TaskHubClient
) -> None:
    register(worker)
    target = EntityInstanceId("log_entity", "later")
    when = datetime.now(timezone.utc) + timedelta(seconds=3)
    client.signal_entity(target, "append", "late", signal_time=when)
    found: EntityMetadata = eventually(lambda: client.get_entity(target), timeout=TIMEOUT)
    assert found.get_state() == ["late"]
    assert found.last_modified >= when


def test_state_survives_a_worker_restart(
    worker: TaskHubWorker,
    client: TaskHubClient,
    azure_hub: AzureStorageSettings | None,
    request: pytest.FixtureRequest,
) -> None:
    register(worker)
    target = EntityInstanceId("account", "durable")
    client.signal_entity(target, "deposit", 5)
    eventually(lambda: entity_state(client, target), until=lambda s: s == 5, timeout=TIMEOUT)
    worker.stop()
    client.signal_entity(target, "deposit", 6)  # queued while no worker runs
    second = (
        TaskHubWorker(azure_hub)
        if azure_hub is not None
        else TaskHubWorker(backend=request.getfixturevalue("backend"))
    )
    second.add_entity(Account)
    second.start()
    try:
        eventually(lambda: entity_state(client, target), until=lambda s: s == 11, timeout=TIMEOUT)
    finally:
        second.stop(grace=timedelta(seconds=5))


def test_critical_sections_in_opposite_orders_do_not_deadlock(
    worker: TaskHubWorker, client: TaskHubClient
) -> None:
    register(worker)
    for key in ("a", "b"):
        client.signal_entity(EntityInstanceId("account", key), "deposit", 10)
    eventually(
        lambda: entity_state(client, EntityInstanceId("account", "b")),
        until=lambda s: s == 10,
        timeout=TIMEOUT,
    )
    ids = [
        client.schedule_new_orchestration(transfer, input=["a", "b"] if i % 2 else ["b", "a"])
        for i in range(6)
    ]
    for instance in ids:
        assert wait_done(client, instance) == "done"
    balances = [entity_state(client, EntityInstanceId("account", k)) for k in ("a", "b")]
    assert sum(balances) == 20
    assert balances == [10, 10]  # three transfers each way
    for key in ("a", "b"):  # the last release is a message: the entity applies it after
        found = eventually(
            lambda key=key: client.get_entity(EntityInstanceId("account", key)),
            until=lambda e: e is not None and e.locked_by is None,
            timeout=TIMEOUT,
        )
        assert found is not None and found.locked_by is None


def test_only_locked_entities_may_be_called_in_a_critical_section(
    worker: TaskHubWorker, client: TaskHubClient
) -> None:
    register(worker)
    message = wait_done(client, client.schedule_new_orchestration(call_unlocked, input="c"))
    assert "does not lock it" in message and "@account@c-other" in message


def test_failing_or_terminated_inside_a_critical_section_releases_the_locks(
    worker: TaskHubWorker, client: TaskHubClient
) -> None:
    register(worker)
    failed = client.schedule_new_orchestration(lock_and_fail, input="f")
    state = client.wait_for_orchestration_completion(failed, timeout=TIMEOUT)
    assert state is not None and state.runtime_status is OrchestrationStatus.FAILED
    waiting = client.schedule_new_orchestration(lock_and_wait, input="f")
    eventually(
        lambda: _locked_by(client, "f"), until=lambda owner: owner == waiting, timeout=TIMEOUT
    )
    client.terminate_orchestration(waiting)
    client.wait_for_orchestration_completion(waiting, timeout=TIMEOUT)
    eventually(lambda: _locked_by(client, "f"), until=lambda owner: owner is None, timeout=TIMEOUT)


def test_continuing_as_new_inside_a_critical_section_releases_the_locks(
    worker: TaskHubWorker, client: TaskHubClient
) -> None:
    register(worker)
    iid = client.schedule_new_orchestration(lock_then_continue, input=0)
    state = client.wait_for_orchestration_completion(iid, timeout=TIMEOUT)
    assert state is not None and state.runtime_status is OrchestrationStatus.COMPLETED, state
    assert state.get_output() == 0
    eventually(
        lambda: _locked_by(client, "can"), until=lambda owner: owner is None, timeout=TIMEOUT
    )


def test_clean_entity_storage_releases_orphaned_locks_and_removes_empty_entities(
    worker: TaskHubWorker, client: TaskHubClient
) -> None:
    register(worker)
    holder = client.schedule_new_orchestration(lock_and_wait, input="o")
    eventually(
        lambda: _locked_by(client, "o"), until=lambda owner: owner == holder, timeout=TIMEOUT
    )
    # A second orchestration queues for the lock and is terminated while it waits: the lock
    # is granted to it after the holder leaves, when it no longer exists to release it.
    orphan = client.schedule_new_orchestration(lock_and_wait, input="o")
    eventually(lambda: _backlog(client, "o"), until=lambda n: n == 1, timeout=TIMEOUT)
    client.terminate_orchestration(orphan)
    client.wait_for_orchestration_completion(orphan, timeout=TIMEOUT)
    client.raise_orchestration_event(holder, "go")
    wait_done(client, holder)
    eventually(
        lambda: _locked_by(client, "o"), until=lambda owner: owner == orphan, timeout=TIMEOUT
    )
    emptied = EntityInstanceId("log_entity", "emptied")
    client.signal_entity(emptied, "append", 1)
    eventually(lambda: entity_state(client, emptied), until=lambda s: s == [1], timeout=TIMEOUT)
    client.signal_entity(emptied, "delete")
    eventually(lambda: _exists(client, emptied), until=lambda e: e is False, timeout=TIMEOUT)
    result = client.clean_entity_storage()
    assert result.orphaned_locks_released == 1
    assert result.empty_entities_removed >= 1
    eventually(lambda: _locked_by(client, "o"), until=lambda owner: owner is None, timeout=TIMEOUT)
    listed = client.get_all_entities(EntityQuery(include_transient=True))
    assert emptied not in [e.id for e in listed]


def _transient(client: TaskHubClient, key: str) -> EntityMetadata | None:
    wanted = EntityInstanceId("account", key)
    return next(
        (e for e in client.get_all_entities(EntityQuery(include_transient=True)) if e.id == wanted),
        None,
    )


def _locked_by(client: TaskHubClient, key: str) -> str | None:
    found = _transient(client, key)
    return found.locked_by if found is not None else None


def _backlog(client: TaskHubClient, key: str) -> int:
    found = _transient(client, key)
    return found.backlog_queue_size if found is not None else 0


def _exists(client: TaskHubClient, entity: EntityInstanceId) -> bool:
    """Whether the entity has state (``get_entity`` hides stateless ones)."""
    return client.get_entity(entity) is not None
