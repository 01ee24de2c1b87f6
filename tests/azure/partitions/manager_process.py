"""One worker process for the multi-process test: a PartitionManager and a fake drainer.

Usage: ``python manager_process.py CONNECTION_STRING HUB PARTITIONS LOG_PATH``. The worker id
is the default (``<hostname>-<pid>``). Every change of ``owned()`` is appended to LOG_PATH as
one JSON line ``{"t": <unix time>, "worker": ..., "owned": [...]}``, flushed at once, so the
test can reconstruct who could dequeue what and when, even after a SIGKILL. SIGTERM stops the
manager gracefully (drain, release) and exits 0.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time
from datetime import timedelta

from durable_azstorage.azure.partitioning.manager import PartitionManager
from durable_azstorage.azure.settings import AzureStorageSettings
from durable_azstorage.azure.storage.clients import StorageClients


class SleepyDrainer:
    """In-flight work of a partition takes 0.3 s to finish."""

    async def drain(self, partition: int) -> None:
        await asyncio.sleep(0.3)


async def main(connection_string: str, hub: str, partitions: int, log_path: str) -> None:
    settings = AzureStorageSettings(
        connection_string=connection_string,
        task_hub=hub,
        partition_count=partitions,
        lease_interval=timedelta(seconds=3),
        lease_renew_interval=timedelta(seconds=1),
        lease_acquire_interval=timedelta(seconds=1),
    )
    with open(log_path, "a", encoding="utf-8") as log:

        def record(owned: frozenset[int]) -> None:
            line = {"t": time.time(), "worker": settings.worker_id, "owned": sorted(owned)}
            log.write(json.dumps(line) + "\n")
            log.flush()

        async with StorageClients(settings) as clients:
            manager = PartitionManager(
                settings, clients, SleepyDrainer(), fast_interval=timedelta(seconds=0.2)
            )
            manager.subscribe(record)
            stop = asyncio.Event()
            asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
            await manager.start()
            print("started", settings.worker_id, flush=True)
            await stop.wait()
            await manager.stop(graceful=True)
            record(manager.owned())


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]))
