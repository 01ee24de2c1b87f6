"""One real worker process for the scale-out tests and the throughput measurement.

Usage: ``python scale_worker.py CONNECTION_STRING HUB PARTITIONS LOG_PATH``. It runs a
``TaskHubWorker`` on the default ``AzureStorageBackend`` (lease-based partition manager with
lease 3 s / renew 1 s / acquire 1 s) with the ``sequence`` orchestrator: ``input`` activities
in a row, each returning ``"<instance>:<step>"``, the output being their list. Appended to
LOG_PATH as JSON lines, flushed at once (they survive a SIGKILL): every change of ``owned()``
(``{"t", "worker", "owned"}``) and every dequeued orchestration work item
(``{"t", "worker", "dequeued": partition}``). SIGTERM stops the worker gracefully, exit 0.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import sys
import time
from collections.abc import Generator
from datetime import timedelta
from typing import IO, Any

from durable_azstorage import ActivityContext, OrchestrationContext, TaskHubWorker
from durable_azstorage.azure.provider import AzureStorageBackend
from durable_azstorage.azure.settings import AzureStorageSettings
from durable_azstorage.azure.storage.naming import partition_of
from durable_azstorage.backend.protocol import OrchestrationWorkItem


def sequence(ctx: OrchestrationContext, steps: int) -> Generator[Any, Any, list[str]]:
    out: list[str] = []
    for step in range(steps):
        out.append((yield ctx.call_activity("step", input=step)))
    return out


def step(ctx: ActivityContext, number: int) -> str:
    return f"{ctx.orchestration_id}:{number}"


def settings_for(connection_string: str, hub: str, partitions: int) -> AzureStorageSettings:
    return AzureStorageSettings(
        connection_string=connection_string,
        task_hub=hub,
        partition_count=partitions,
        lease_interval=timedelta(seconds=3),
        lease_renew_interval=timedelta(seconds=1),
        lease_acquire_interval=timedelta(seconds=1),
        max_poll_interval=timedelta(seconds=1),
        # What a SIGKILLed worker had received comes back after this, not after 5 minutes.
        control_queue_visibility_timeout=timedelta(seconds=8),
        work_item_visibility_timeout=timedelta(seconds=8),
    )


class Recorder:
    def __init__(self, log: IO[str], worker: str, partitions: int) -> None:
        self.log, self.worker, self.partitions = log, worker, partitions

    def write(self, **fields: Any) -> None:
        self.log.write(json.dumps({"t": time.time(), "worker": self.worker, **fields}) + "\n")
        self.log.flush()

    def owned(self, owned: frozenset[int]) -> None:
        self.write(owned=sorted(owned))

    def wrap(self, backend: AzureStorageBackend) -> None:
        """Log the partition of every orchestration work item handed out."""
        original = backend.lock_next_orchestration

        async def lock_next(timeout: float) -> OrchestrationWorkItem | None:
            item = await original(timeout)
            if item is not None:
                self.write(dequeued=partition_of(item.instance_id, self.partitions))
            return item

        backend.lock_next_orchestration = lock_next  # type: ignore[method-assign]


async def main(connection_string: str, hub: str, partitions: int, log_path: str) -> None:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("durable_azstorage.azure.partitioning.manager").setLevel(logging.INFO)
    logging.getLogger("durable_azstorage.azure.provider").setLevel(logging.INFO)
    settings = settings_for(connection_string, hub, partitions)
    backend = AzureStorageBackend(settings)
    worker = TaskHubWorker(backend=backend, max_concurrent_orchestrations=8)
    worker.add_orchestrator(sequence)
    worker.add_activity(step)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    with open(log_path, "a", encoding="utf-8") as log:
        recorder = Recorder(log, settings.worker_id, partitions)
        recorder.wrap(backend)
        run = asyncio.ensure_future(worker.run_async())
        while backend.partition_manager is None and not run.done():
            await asyncio.sleep(0.005)
        manager = backend.partition_manager
        assert manager is not None, "the backend did not build its partition manager"
        manager.subscribe(recorder.owned)
        recorder.owned(manager.owned())
        print("started", settings.worker_id, flush=True)
        await stop.wait()
        await worker.stop_async(grace=timedelta(seconds=10))
        await run
        recorder.write(stopped=True, owned=sorted(manager.owned()))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]))
