"""Entities through the checkpoint protocol's crash recovery, on Azurite (real worker).

An entity episode commits a new generation whose ``EventSent`` events imply its answers; a
crash after step 1 leaves them unsent, and recovery must re-derive and send them. A caller's
crash after step 2 re-sends its call; the entity must drop the copy (same sender sequence)."""

from __future__ import annotations

import asyncio
from collections.abc import Generator
from typing import Any

import pytest
from test_checkpoint import Crash

from durable_azstorage import (
    AsyncTaskHubClient,
    EntityContext,
    EntityInstanceId,
    OrchestrationContext,
    TaskHubWorker,
)
from durable_azstorage.azure.provider import AzureStorageBackend
from durable_azstorage.azure.settings import AzureStorageSettings
from durable_azstorage.model.status import OrchestrationStatus

pytestmark = pytest.mark.azurite

COUNTER = EntityInstanceId("counter", "c")


def counter(ctx: EntityContext, amount: int) -> int:
    total: int = ctx.get_state(int, 0) + amount
    ctx.set_state(total)
    return total


def caller(ctx: OrchestrationContext, calls: int) -> Generator[Any, Any, list[int]]:
    results = []
    for _ in range(calls):
        results.append((yield ctx.call_entity(COUNTER, "add", 1)))
    return results


@pytest.mark.parametrize(
    ("step", "victim"),
    [("history", str(COUNTER)), ("messages", "caller-1")],
    ids=["entity-after-history", "caller-after-messages"],
)
async def test_a_crash_loses_no_answer_and_runs_no_operation_twice(
    fast_settings: AzureStorageSettings, step: str, victim: str
) -> None:
    crashed: list[str] = []

    async def die_once(at: str, instance_id: str) -> None:
        if at == step and instance_id == victim and not crashed:
            crashed.append(instance_id)
            raise Crash(f"killed after step {at!r} for {instance_id}")

    worker = TaskHubWorker(backend=AzureStorageBackend(fast_settings, checkpoint_hook=die_once))
    worker.add_entity(counter)
    worker.add_orchestrator(caller)
    async with AsyncTaskHubClient(fast_settings) as client:
        await client.create_task_hub()
        try:
            run = asyncio.ensure_future(worker.run_async())
            try:
                await client.schedule_new_orchestration(caller, input=3, instance_id="caller-1")
                state = await client.wait_for_orchestration_completion("caller-1", timeout=90)
            finally:
                await worker.stop_async()
                await run
            assert crashed == [victim], "the crash was not injected"
            assert state.runtime_status is OrchestrationStatus.COMPLETED, state.failure_details
            assert state.get_output() == [1, 2, 3]
            found = await client.get_entity(COUNTER)
            assert found is not None and found.get_state() == 3
        finally:
            await client.delete_task_hub()
