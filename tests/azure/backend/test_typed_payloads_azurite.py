"""Typed payloads on Azurite: a dataclass input, result and event survive real storage."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest
from e2e.test_typed_payloads_e2e import Approval, Item, Order, Receipt, child, parent, price

from durable_azstorage import OrchestrationStatus, TaskHubClient, TaskHubWorker
from durable_azstorage.azure.settings import AzureStorageSettings

pytestmark = pytest.mark.azurite


def test_typed_payloads_round_trip_on_azurite(azure_settings: AzureStorageSettings) -> None:
    settings = dataclasses.replace(
        azure_settings, partition_count=1, max_poll_interval=timedelta(seconds=1)
    )
    worker = TaskHubWorker(settings)
    for fn in (parent, child):
        worker.add_orchestrator(fn)
    worker.add_activity(price)
    with TaskHubClient(settings) as client:
        client.create_task_hub()
        worker.start()
        try:
            order = Order("ada", [Item("a", 3)])
            iid = client.schedule_new_orchestration(parent, input=order)
            client.raise_orchestration_event(
                iid, "approval", data=Approval(approved=True, by="eve")
            )
            state = client.wait_for_orchestration_completion(iid, timeout=60)
        finally:
            worker.stop(grace=timedelta(seconds=5))
        assert state is not None and state.runtime_status is OrchestrationStatus.COMPLETED, state
        assert state.get_output()["types"] == ["Receipt", "dict", "Receipt", "Approval"]
        assert state.get_input(Order) == order
        assert state.get_custom_status(Approval) == Approval(approved=True, by="eve")
        assert Receipt(order, 30) == Receipt(
            state.get_input(Order), state.get_output()["receipt"]["total"]
        )
        client.delete_task_hub()
