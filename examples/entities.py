"""Durable entities: bank accounts as entities, and a transfer in a critical section.

Each account is an entity (``@account@alice``) whose operations run one at a time. A
transfer locks both accounts, so no other operation sees the money in flight, and two
transfers in opposite directions never deadlock (locks are taken in a fixed order). A
failed withdrawal raises in the orchestrator and leaves the balance untouched.

Run: python examples/entities.py
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from durable_azstorage import (
    DurableEntity,
    EntityInstanceId,
    EntityOperationFailedException,
    OrchestrationContext,
)
from durable_azstorage.testing.local import local_runtime


class Account(DurableEntity):
    """A balance; ``withdraw`` refuses to overdraw."""

    def deposit(self, amount: int) -> int:
        balance: int = self.get_state(int, 0) + amount
        self.set_state(balance)
        return balance

    def withdraw(self, amount: int) -> int:
        balance: int = self.get_state(int, 0)
        if amount > balance:
            raise ValueError(f"insufficient funds: balance {balance}, asked {amount}")
        self.set_state(balance - amount)
        return balance - amount

    def balance(self) -> int:
        return int(self.get_state(int, 0))


def transfer(ctx: OrchestrationContext, order: dict[str, Any]) -> Generator[Any, Any, str]:
    source = EntityInstanceId("account", order["from"])
    target = EntityInstanceId("account", order["to"])
    with (yield ctx.lock_entities([source, target])):
        try:
            yield ctx.call_entity(source, "withdraw", order["amount"])
        except EntityOperationFailedException as exc:
            return f"refused: {exc.failure_details.message}"
        yield ctx.call_entity(target, "deposit", order["amount"])
    return f"moved {order['amount']} from {order['from']} to {order['to']}"


def main() -> None:
    with local_runtime(task_hub="entities", orchestrators=[transfer], entities=[Account]) as client:
        alice, bob = EntityInstanceId("account", "alice"), EntityInstanceId("account", "bob")
        client.signal_entity(alice, "deposit", 100)
        client.signal_entity(bob, "deposit", 20)
        orders = [
            {"from": "alice", "to": "bob", "amount": 30},
            {"from": "bob", "to": "alice", "amount": 10},
            {"from": "bob", "to": "alice", "amount": 500},
        ]
        ids = [client.schedule_new_orchestration(transfer, input=order) for order in orders]
        for instance_id in ids:
            state = client.wait_for_orchestration_completion(instance_id, timeout=60)
            state.raise_if_failed()
            print(state.get_output())
        for account in (alice, bob):
            found = client.get_entity(account)
            assert found is not None
            print(f"{account}: balance {found.get_state(int)}")


if __name__ == "__main__":
    main()
