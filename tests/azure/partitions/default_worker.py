"""A worker process with the default settings, for the SIGKILL test.

Usage: ``python default_worker.py CONNECTION_STRING HUB``. Runs a ``TaskHubWorker`` on the
default ``AzureStorageBackend`` (partition manager, 30 s leases, 30 s visibility timeouts)
with the ``slow_sequence`` orchestrator: ``input`` activities in a row, each sleeping 0.3 s and
returning ``"<instance>:<step>"``. Prints ``started <worker id>`` once it runs; SIGTERM stops it
gracefully.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
import time
from collections.abc import Generator
from datetime import timedelta
from typing import Any

from durable_azstorage import ActivityContext, OrchestrationContext, TaskHubWorker
from durable_azstorage.azure.provider import AzureStorageBackend
from durable_azstorage.azure.settings import AzureStorageSettings

STEP_SECONDS = 0.3


def slow_sequence(ctx: OrchestrationContext, steps: int) -> Generator[Any, Any, list[str]]:
    out: list[str] = []
    for number in range(steps):
        out.append((yield ctx.call_activity("slow_step", input=number)))
    return out


def slow_step(ctx: ActivityContext, number: int) -> str:
    time.sleep(STEP_SECONDS)
    return f"{ctx.orchestration_id}:{number}"


async def main(connection_string: str, hub: str) -> None:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    settings = AzureStorageSettings(connection_string=connection_string, task_hub=hub)
    backend = AzureStorageBackend(settings)
    worker = TaskHubWorker(backend=backend)
    worker.add_orchestrator(slow_sequence)
    worker.add_activity(slow_step)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    run = asyncio.ensure_future(worker.run_async())
    while backend.partition_manager is None and not run.done():
        await asyncio.sleep(0.005)
    print("started", settings.worker_id, flush=True)
    await stop.wait()
    await worker.stop_async(grace=timedelta(seconds=10))
    await run


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
