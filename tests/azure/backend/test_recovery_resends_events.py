"""Found by the torture test on Azurite (``--backend azurite --seed 102``): recovery re-sends
a committed episode's ``EventSent`` messages although step 2 had sent them. The copy carries
the same ``source_id`` (derived from the sender's execution and event id), so the target's
replay applies the event once. Real worker and client, the crash injected after step 2.
"""

from __future__ import annotations

import asyncio
from collections.abc import Generator
from datetime import timedelta
from typing import Any

import pytest
from test_checkpoint import Crash

from durable_azstorage import AsyncTaskHubClient, OrchestrationContext, TaskHubWorker, when_any
from durable_azstorage.azure.provider import AzureStorageBackend
from durable_azstorage.azure.settings import AzureStorageSettings
from durable_azstorage.model import history as h
from durable_azstorage.model.status import OrchestrationStatus

pytestmark = pytest.mark.azurite


def receiver(ctx: OrchestrationContext, _: Any) -> Generator[Any, Any, Any]:
    first = yield ctx.wait_for_external_event("Ping")
    late = ctx.wait_for_external_event("Ping")
    timeout = ctx.create_timer(timedelta(seconds=6))
    winner = yield when_any([late, timeout])
    return [first, "second ping" if winner is late else "one ping"]


def pinger(ctx: OrchestrationContext, target: str) -> None:
    ctx.send_event(target, "Ping", data="p")


async def test_an_event_sent_before_a_crash_is_applied_once(
    fast_settings: AzureStorageSettings,
) -> None:
    crashed: list[str] = []

    async def die_once_after_sending(step: str, instance_id: str) -> None:
        if step == "messages" and instance_id == "pinger-1" and not crashed:
            crashed.append(instance_id)
            raise Crash(f"killed after step {step!r} for {instance_id}")

    backend = AzureStorageBackend(fast_settings, checkpoint_hook=die_once_after_sending)
    worker = TaskHubWorker(backend=backend)
    worker.add_orchestrator(receiver)
    worker.add_orchestrator(pinger)
    async with AsyncTaskHubClient(fast_settings) as client:
        await client.create_task_hub()
        try:
            run = asyncio.ensure_future(worker.run_async())
            try:
                await client.schedule_new_orchestration(receiver, instance_id="receiver-1")
                await client.schedule_new_orchestration(
                    pinger, input="receiver-1", instance_id="pinger-1"
                )
                state = await client.wait_for_orchestration_completion("receiver-1", timeout=60)
            finally:
                await worker.stop_async()
                await run
            assert crashed == ["pinger-1"], "the crash was not injected"
            assert state.runtime_status is OrchestrationStatus.COMPLETED
            assert state.get_output() == ["p", "one ping"]
            history = await client.get_orchestration_history("receiver-1")
            assert sum(isinstance(e, h.EventRaised) for e in history) == 1
        finally:
            await client.delete_task_hub()
