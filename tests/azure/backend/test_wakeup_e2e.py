"""The wake-up signal end to end: a client in another backend (another process, as far as
storage can tell) starts work on a worker whose pollers have backed off far beyond
``wakeup_interval``; the worker is woken by the signal instead of waiting for its next poll."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest

from durable_azstorage import (
    ActivityContext,
    AsyncTaskHubClient,
    OrchestrationContext,
    TaskHubWorker,
)
from durable_azstorage.azure.provider import AzureStorageBackend
from durable_azstorage.azure.settings import AzureStorageSettings
from durable_azstorage.testing.eventually import eventually_async

pytestmark = pytest.mark.azurite


def greet(ctx: ActivityContext, name: str) -> str:
    return f"hi {name}"


def one_step(ctx: OrchestrationContext, name: str):  # type: ignore[no-untyped-def]
    return (yield ctx.call_activity("greet", input=name))


@pytest.fixture
def settings(azure_settings: AzureStorageSettings) -> AzureStorageSettings:
    # Pollers may back off to 10 minutes: only the wake-up can make this test finish in time.
    return dataclasses.replace(
        azure_settings,
        partition_count=2,
        max_poll_interval=timedelta(minutes=10),
        wakeup_interval=timedelta(milliseconds=200),
    )


@pytest.fixture
async def worker_backend(settings: AzureStorageSettings) -> AsyncIterator[AzureStorageBackend]:
    setup = AzureStorageBackend(settings)  # the worker's backend runs on the worker's loop
    await setup.create_task_hub()
    await setup.stop()
    backend = AzureStorageBackend(settings)
    worker = TaskHubWorker(backend=backend)
    worker.add_orchestrator(one_step)
    worker.add_activity(greet)
    worker.start()
    try:
        yield backend
    finally:
        worker.stop(grace=timedelta(seconds=5))
        cleanup = AzureStorageBackend(settings)
        await cleanup.delete_task_hub()
        await cleanup.stop()


async def test_a_start_from_another_backend_wakes_an_idle_worker(
    settings: AzureStorageSettings, worker_backend: AzureStorageBackend
) -> None:
    await _until_backed_off(worker_backend)
    async with AsyncTaskHubClient(backend=AzureStorageBackend(settings)) as client:
        instance_id = await client.schedule_new_orchestration("one_step", input="there")
        state = await client.wait_for_orchestration_completion(instance_id, timeout=120)
        touches, _ = client.backend.wakeups  # type: ignore[attr-defined]

    assert state.get_output() == "hi there"
    assert touches == 1  # the client has no poller of its own: it signals, once (throttled)
    assert worker_backend.wakeups[1] >= 1


async def _until_backed_off(backend: AzureStorageBackend, timeout: float = 30) -> None:
    """Wait until every poller of the worker waits longer than the wake-up interval."""
    slowest_poll: Any = backend._slowest_poll
    await eventually_async(
        slowest_poll,
        until=lambda seconds: seconds >= 1.0,
        timeout=timeout,
        interval=0.1,
        what="the worker's slowest poll interval to back off to 1 s",
    )
