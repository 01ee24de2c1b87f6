"""Throughput of 5-activity sequences with 1, 2 and 4 worker processes (not a test).

Usage: ``python tests/azure/partitions/measure_throughput.py [COUNT] [WORKERS...]``. Starts its
own Azurite; for each worker count: a fresh 4-partition hub, that many ``scale_worker.py``
processes (waits until every partition is owned), COUNT orchestrations scheduled at once, and
the time until the last one completed. Processes and Azurite are stopped by PID at the end.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from durable_azstorage import AsyncTaskHubClient, OrchestrationStatus
from durable_azstorage.azure.partitioning.lease_table import LeaseTable
from durable_azstorage.azure.settings import AzureStorageSettings
from durable_azstorage.azure.storage.clients import StorageClients
from durable_azstorage.azure.tracking.taskhub import TaskHubResources
from durable_azstorage.testing.azurite import Azurite

SCRIPT = Path(__file__).with_name("scale_worker.py")
PARTITIONS = 4
STEPS = 5


async def run(connection_string: str, workers: int, count: int, folder: Path) -> float:
    hub = f"bench{uuid.uuid4().hex[:10]}"
    settings = AzureStorageSettings(
        connection_string=connection_string, task_hub=hub, partition_count=PARTITIONS
    )
    procs: list[subprocess.Popen[bytes]] = []
    async with StorageClients(settings) as clients:
        await TaskHubResources(clients).create_if_not_exists()
        try:
            for i in range(workers):
                log = folder / f"{hub}-{i}.jsonl"
                with open(log.with_suffix(".err"), "w") as err:
                    procs.append(
                        subprocess.Popen(
                            [
                                sys.executable,
                                str(SCRIPT),
                                connection_string,
                                hub,
                                str(PARTITIONS),
                                str(log),
                            ],
                            stdout=subprocess.DEVNULL,
                            stderr=err,
                        )
                    )
            table = LeaseTable(
                clients.table(settings.names.partitions_table), settings.names, clients.retry
            )
            while True:  # every partition owned, each worker holding its share
                rows = (await table.read_all()).values()
                owners = [r.current_owner for r in rows]
                if (
                    None not in owners
                    and len(set(owners)) == min(workers, PARTITIONS)
                    and not any(r.next_owner for r in rows)
                ):
                    break
                await asyncio.sleep(0.1)
            async with AsyncTaskHubClient(settings) as client:
                started = time.monotonic()
                ids = [
                    await client.schedule_new_orchestration("sequence", input=STEPS)
                    for _ in range(count)
                ]
                for iid in ids:
                    state = await client.wait_for_orchestration_completion(iid, timeout=600)
                    assert state.runtime_status is OrchestrationStatus.COMPLETED, state
                    assert state.get_output() == [f"{iid}:{s}" for s in range(STEPS)]
                return time.monotonic() - started
        finally:
            for p in procs:
                p.send_signal(signal.SIGTERM)
            for p in procs:
                try:
                    p.wait(30)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
            await TaskHubResources(clients).delete()


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    counts = [int(a) for a in sys.argv[2:]] or [1, 2, 4]
    emulator = Azurite(die_with_parent=True)
    emulator.start()
    try:
        with tempfile.TemporaryDirectory() as folder:
            for workers in counts:
                elapsed = asyncio.run(run(emulator.connection_string, workers, count, Path(folder)))
                print(
                    f"{workers} worker process(es): {count} x {STEPS}-activity sequences in "
                    f"{elapsed:.1f} s = {count / elapsed:.1f} orchestrations/s",
                    flush=True,
                )
    finally:
        emulator.stop()


if __name__ == "__main__":
    main()
