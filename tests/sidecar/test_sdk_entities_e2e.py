"""Durable entities through the sidecar: the portable SDK's worker runs the entity operations
and orchestrators, our engine runs the entity episodes (order, locks, commits) on Azurite."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest
from durabletask import entities, task
from durabletask.client import EntityQuery, OrchestrationStatus, TaskHubGrpcClient
from durabletask.worker import TaskHubGrpcWorker

from durable_azstorage import EntityInstanceId as OurEntityId
from durable_azstorage import TaskHubClient
from durable_azstorage.testing.eventually import eventually

if TYPE_CHECKING:
    from sidecar_support import RunningSidecar

TIMEOUT = 60


class Account(entities.DurableEntity):
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


def transfer(ctx: task.OrchestrationContext, order: dict[str, Any]):  # type: ignore[no-untyped-def]
    source = entities.EntityInstanceId("account", order["from"])
    target = entities.EntityInstanceId("account", order["to"])
    with (yield ctx.lock_entities([source, target])):
        try:
            yield ctx.call_entity(source, "withdraw", order["amount"])
        except task.TaskFailedError as exc:  # the SDK's type for a failed entity call
            return f"refused: {exc.details.message}"
        yield ctx.call_entity(target, "deposit", order["amount"])
    ctx.signal_entity(target, "deposit", 0)
    return "moved"


@pytest.fixture(scope="module")
def sdk_worker(sidecar: RunningSidecar) -> Iterator[TaskHubGrpcWorker]:
    worker = TaskHubGrpcWorker(host_address=sidecar.address)
    worker.add_entity(Account)
    worker.add_orchestrator(transfer)
    worker.start()
    try:
        yield worker
    finally:
        worker.stop()


def test_signals_calls_and_critical_sections_through_the_sidecar(
    sdk_worker: TaskHubGrpcWorker, sdk_client: TaskHubGrpcClient, sidecar: RunningSidecar
) -> None:
    alice, bob = (
        entities.EntityInstanceId("account", "alice"),
        entities.EntityInstanceId("account", "bob"),
    )
    sdk_client.signal_entity(alice, "deposit", input=100)
    sdk_client.signal_entity(bob, "deposit", input=5)
    eventually(lambda: sdk_client.get_entity(bob), until=lambda e: e is not None, timeout=TIMEOUT)
    orders = [
        {"from": "alice", "to": "bob", "amount": 30},
        {"from": "bob", "to": "alice", "amount": 10},
        {"from": "bob", "to": "alice", "amount": 999},
    ]
    outputs = []
    for order in orders:
        iid = sdk_client.schedule_new_orchestration(transfer, input=order)
        state = sdk_client.wait_for_orchestration_completion(iid, timeout=TIMEOUT)
        assert state is not None and state.runtime_status == OrchestrationStatus.COMPLETED, state
        outputs.append(state.get_output())
    assert outputs[:2] == ["moved", "moved"] and "insufficient funds: 25 < 999" in outputs[2]
    found = sdk_client.get_entity(alice)
    assert found is not None and found.get_typed_state(int) == 80
    listed = sdk_client.get_all_entities(EntityQuery(instance_id_starts_with="@account@"))
    assert sorted(str(e.id) for e in listed) == ["@account@alice", "@account@bob"]
    with TaskHubClient(sidecar.settings) as ours:  # the same storage, read by our own client
        # The orchestration releases its locks with a message when it completes, so the
        # release reaches the entity shortly after the client sees the completion.
        mine = eventually(
            lambda: ours.get_entity(OurEntityId("account", "bob")),
            until=lambda e: e is not None and e.locked_by is None,
            timeout=TIMEOUT,
        )
        assert mine is not None and mine.get_state() == 25
