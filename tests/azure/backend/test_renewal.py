"""Work that outlasts the visibility timeout keeps its lock (the worker renews it)."""

from __future__ import annotations

import dataclasses
import threading
import time
from datetime import timedelta

import pytest

from durable_azstorage import (
    ActivityContext,
    AsyncTaskHubClient,
    OrchestrationContext,
    TaskHubWorker,
)
from durable_azstorage.azure.provider import AzureStorageBackend
from durable_azstorage.azure.settings import AzureStorageSettings

pytestmark = pytest.mark.azurite

calls: list[int] = []
lock = threading.Lock()


def slow(ctx: ActivityContext, x: int) -> int:
    with lock:
        calls.append(x)
    time.sleep(5)  # longer than the 2 s visibility timeout
    return x + 1


def one_slow(ctx: OrchestrationContext, x: int):  # type: ignore[no-untyped-def]
    return (yield ctx.call_activity("slow", input=x))


async def test_long_activity_runs_once(azure_settings: AzureStorageSettings) -> None:
    settings = dataclasses.replace(
        azure_settings,
        control_queue_visibility_timeout=timedelta(seconds=2),
        work_item_visibility_timeout=timedelta(seconds=2),
        max_poll_interval=timedelta(milliseconds=500),
    )
    client_backend = AzureStorageBackend(settings)
    await client_backend.create_task_hub()
    worker_backend = AzureStorageBackend(settings)
    assert worker_backend.lock_timeout == timedelta(seconds=2)
    worker = TaskHubWorker(backend=worker_backend)  # renews at lock_timeout / 3
    worker.add_orchestrator(one_slow)
    worker.add_activity(slow)
    worker.start()
    try:
        async with AsyncTaskHubClient(backend=client_backend) as client:
            iid = await client.schedule_new_orchestration("one_slow", input=41)
            state = await client.wait_for_orchestration_completion(iid, timeout=60)
            assert state.get_output() == 42
        assert calls == [41], "the activity ran again: its lock was not renewed"
    finally:
        worker.stop(grace=timedelta(seconds=5))
        await client_backend.delete_task_hub()
        await client_backend.stop()
