"""Typed payloads end to end: dataclasses and pydantic models cross the durable boundary
as themselves, as in the portable SDK (in-memory backend)."""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pydantic

from durable_azstorage import (
    ActivityContext,
    OrchestrationContext,
    OrchestrationStatus,
    RetryPolicy,
    Task,
    TaskHubClient,
    TaskHubWorker,
)

TIMEOUT = 10


@dataclass(frozen=True)
class Item:
    sku: str
    quantity: int


@dataclass(frozen=True)
class Order:
    customer: str
    items: list[Item]


@dataclass(frozen=True)
class Receipt:
    order: Order
    total: int


class Approval(pydantic.BaseModel):
    approved: bool
    by: str


def price(ctx: ActivityContext, order: Order) -> Receipt:
    assert isinstance(order.items[0], Item)  # rebuilt from the annotation
    return Receipt(order, sum(item.quantity * 10 for item in order.items))


def child(ctx: OrchestrationContext, order: Order) -> Generator[Task[Any], Any, Receipt]:
    receipt = yield ctx.call_activity(price, input=order)  # return annotation: Receipt
    assert isinstance(receipt, Receipt)
    return receipt


def parent(ctx: OrchestrationContext, order: Order) -> Generator[Task[Any], Any, dict[str, Any]]:
    by_name = yield ctx.call_activity("price", input=order, return_type=Receipt)
    untyped = yield ctx.call_activity("price", input=order)
    from_child = yield ctx.call_sub_orchestrator(child, input=order, return_type=Receipt)
    approval = yield ctx.wait_for_external_event("approval", data_type=Approval)
    ctx.set_custom_status(approval)
    return {
        "types": [
            type(by_name).__name__,
            type(untyped).__name__,
            type(from_child).__name__,
            type(approval).__name__,
        ],
        "receipt": from_child,
    }


def strict(ctx: OrchestrationContext, order: Order) -> Order:
    return order


FLAKY_CALLS: list[int] = []


def flaky_price(ctx: ActivityContext, order: Order) -> Receipt:
    FLAKY_CALLS.append(1)
    if len(FLAKY_CALLS) < 3:
        raise RuntimeError("try again")
    return Receipt(order, 1)


def retried(ctx: OrchestrationContext, order: Order) -> Generator[Task[Any], Any, str]:
    policy = RetryPolicy(first_retry_interval=timedelta(milliseconds=10), max_number_of_attempts=3)
    receipt = yield ctx.call_activity(
        "flaky_price", input=order, retry_policy=policy, return_type=Receipt
    )
    return type(receipt).__name__


def test_dataclasses_and_pydantic_models_round_trip(
    worker: TaskHubWorker, client: TaskHubClient
) -> None:
    for fn in (parent, child):
        worker.add_orchestrator(fn)
    worker.add_activity(price)
    worker.start()
    order = Order("ada", [Item("a", 2), Item("b", 1)])
    iid = client.schedule_new_orchestration(parent, input=order)
    client.raise_orchestration_event(iid, "approval", data=Approval(approved=True, by="bob"))
    state = client.wait_for_orchestration_completion(iid, timeout=TIMEOUT)
    assert state is not None and state.runtime_status is OrchestrationStatus.COMPLETED, state
    assert state.get_output()["types"] == ["Receipt", "dict", "Receipt", "Approval"]
    assert state.get_input(Order) == order
    assert state.get_custom_status(Approval) == Approval(approved=True, by="bob")
    assert state.get_output(dict[str, Any])["receipt"]["total"] == 30


def test_an_unknown_field_fails_the_instance_naming_type_and_field(
    worker: TaskHubWorker, client: TaskHubClient
) -> None:
    worker.add_orchestrator(strict)
    worker.start()
    iid = client.schedule_new_orchestration(
        strict, input={"customer": "x", "items": [], "coupon": "FREE"}
    )
    state = client.wait_for_orchestration_completion(iid, timeout=TIMEOUT)
    assert state is not None and state.failure_details is not None
    assert state.failure_details.error_type == "durable_azstorage.model.errors.PayloadTypeError"
    assert "input of orchestrator 'strict'" in state.failure_details.message
    assert "Order has no field 'coupon'" in state.failure_details.message


def test_the_return_type_survives_retries(worker: TaskHubWorker, client: TaskHubClient) -> None:
    worker.add_orchestrator(retried)
    worker.add_activity(flaky_price)
    worker.start()
    iid = client.schedule_new_orchestration(retried, input=Order("x", []))
    state = client.wait_for_orchestration_completion(iid, timeout=TIMEOUT)
    assert state is not None and state.get_output() == "Receipt", state
    assert len(FLAKY_CALLS) == 3
