"""kill -9 a worker process mid-fan-out; a new worker finishes every instance correctly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from crash_worker import settings as worker_settings

from durable_azstorage import AsyncTaskHubClient, OrchestrationStatus
from durable_azstorage.azure.provider import AzureStorageBackend
from durable_azstorage.model import history as h
from durable_azstorage.testing.azurite import Azurite
from durable_azstorage.testing.eventually import eventually_async

pytestmark = [pytest.mark.azurite, pytest.mark.slow]
SCRIPT = Path(__file__).with_name("crash_worker.py")


class Processes:
    def __init__(self) -> None:
        self.started: list[subprocess.Popen[bytes]] = []

    def start(self, conn: str, hub: str) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            [sys.executable, str(SCRIPT), conn, hub],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        self.started.append(proc)
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.strip() == b"ready", f"worker did not start: {line!r}"
        return proc


@pytest.fixture
def processes() -> Iterator[Processes]:
    procs = Processes()
    try:
        yield procs
    finally:
        for proc in procs.started:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


async def test_kill_9_mid_fan_out_then_another_worker_completes_everything(
    azurite: Azurite, hub_name: str, processes: Processes
) -> None:
    settings = worker_settings(azurite.connection_string, hub_name)
    backend = AzureStorageBackend(settings)
    await backend.create_task_hub()
    try:
        async with AsyncTaskHubClient(backend=backend) as client:
            first = processes.start(azurite.connection_string, hub_name)
            n = 40
            ids = [
                await client.schedule_new_orchestration("squares", input=n, instance_id=f"sq-{i}")
                for i in range(3)
            ]

            # Wait until the fan-out is under way, then kill the worker without warning.
            async def completed_tasks() -> int:
                return sum(
                    isinstance(e, h.TaskCompleted) for e in await backend.get_history(ids[0])
                )

            await eventually_async(
                completed_tasks,
                timeout=30,
                interval=0.05,
                what=f"the first activity result of {ids[0]}",
            )
            os.kill(first.pid, signal.SIGKILL)
            first.wait(timeout=10)
            processes.start(azurite.connection_string, hub_name)
            expected = sum(i * i for i in range(n))
            for iid in ids:
                state = await client.wait_for_orchestration_completion(iid, timeout=120)
                assert state.runtime_status is OrchestrationStatus.COMPLETED, state
                assert state.get_output() == expected
                history = await backend.get_history(iid)
                assert sum(isinstance(e, h.TaskScheduled) for e in history) == n
                completed = {e.task_scheduled_id for e in history if isinstance(e, h.TaskCompleted)}
                assert completed == set(range(n)) or len(completed) == n
    finally:
        await backend.delete_task_hub()
        await backend.stop()
