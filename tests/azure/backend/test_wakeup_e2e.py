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
        partition_count=1,  # one control-queue poller: the slowest is the only one
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
    # The watch reads the signal at least every 200 ms; the backed-off poller may still poll
    # inside that window by chance (about 1 in 16 at 3.2 s) and find the start first. Such
    # an attempt proves nothing either way, so it is repeated: three chance polls running
    # would be a finding.
    for _ in range(3):
        await _until_backed_off(worker_backend)
        woken = worker_backend.wakeups[1]
        async with AsyncTaskHubClient(backend=AzureStorageBackend(settings)) as client:
            instance_id = await client.schedule_new_orchestration("one_step", input="there")
            state = await client.wait_for_orchestration_completion(instance_id, timeout=120)
            touches, _ = client.backend.wakeups  # type: ignore[attr-defined]
        assert state.get_output() == "hi there"
        assert touches == 1  # the client has no poller of its own: it signals, once (throttled)
        if worker_backend.wakeups[1] > woken:
            return
    pytest.fail("three starts in a row were found by a poll before the wake-up watch saw them")


async def _until_backed_off(backend: AzureStorageBackend, timeout: float = 30) -> None:
    """Wait until the worker's poller waits far longer than the wake-up interval."""
    slowest_poll: Any = backend._slowest_poll
    await eventually_async(
        slowest_poll,
        until=lambda seconds: seconds >= 3.0,
        timeout=timeout,
        interval=0.1,
        what="the worker's control-queue poll interval to back off to 3 s",
    )
