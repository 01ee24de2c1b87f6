"""Partition managers in real worker processes on one 8-partition hub on Azurite.

Each process (``manager_process.py``) runs a ``PartitionManager`` under its default identity
(``<hostname>-<pid>``) and logs every change of ``owned()`` with a wall-clock timestamp. The
test SIGKILLs one process (its leases must expire first), adds one (it gets its share),
SIGTERMs one (graceful: hand-over without waiting for expiry) and finally rebuilds, from the
logs, every interval in which a process could dequeue a partition: no two overlap, and no
lease row ever named an owner while another process was dequeuing that partition.
Processes are stopped by PID in the fixture's finalizer, also on failure.
"""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sim_support import PARTITIONS
from sim_support import wait_balanced as leases_balanced

from durable_azstorage.azure.partitioning.lease_table import LeaseRow, LeaseTable
from durable_azstorage.azure.storage.clients import StorageClients

# One lease-fleet test at a time across xdist workers (see conftest.lease_fleet_alone).
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("lease_fleet_alone")]

SCRIPT = Path(__file__).with_name("manager_process.py")
TIMEOUT = 40.0


@dataclass
class Worker:
    process: subprocess.Popen[str]
    log: Path
    worker_id: str = ""
    ended_at: float | None = None  # when it was killed or exited


@dataclass
class Processes:
    connection_string: str
    hub: str
    folder: Path
    workers: list[Worker] = field(default_factory=list)

    async def spawn(self) -> Worker:
        log = self.folder / f"worker{len(self.workers)}.jsonl"
        with open(log.with_suffix(".err"), "w") as err:  # the child keeps its own descriptor
            process = subprocess.Popen(
                [
                    sys.executable,
                    str(SCRIPT),
                    self.connection_string,
                    self.hub,
                    str(PARTITIONS),
                    str(log),
                ],
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
            )
        worker = Worker(process, log)
        self.workers.append(worker)
        assert process.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(process.stdout.readline), TIMEOUT)
        assert line.startswith("started "), f"worker did not start: {line!r}"
        worker.worker_id = line.split()[1]
        return worker

    def alive(self) -> list[Worker]:
        return [w for w in self.workers if w.ended_at is None]

    def kill(self, worker: Worker, sig: signal.Signals) -> None:
        worker.process.send_signal(sig)
        if sig is signal.SIGKILL:
            worker.process.wait()
            worker.ended_at = time.time()


@pytest.fixture
def processes(
    hub8: StorageClients,
    tmp_path: Path,
) -> Iterator[Processes]:
    procs = Processes(hub8.settings.connection_string or "", hub8.settings.task_hub, tmp_path)
    try:
        yield procs
    finally:
        for worker in procs.workers:
            if worker.process.poll() is None:
                worker.process.kill()
            worker.process.wait()


async def wait_balanced(table: LeaseTable, workers: list[Worker], what: str) -> float:
    return await leases_balanced(table, {w.worker_id for w in workers}, what, TIMEOUT)


def intervals(workers: list[Worker]) -> dict[int, list[tuple[float, float, str]]]:
    """Per partition: (from, to, worker) while the worker's owned() contained it."""
    found: dict[int, list[tuple[float, float, str]]] = {p: [] for p in range(PARTITIONS)}
    for worker in workers:
        since: dict[int, float] = {}
        for line in worker.log.read_text().splitlines():
            entry = json.loads(line)
            owned = set(entry["owned"])
            for p in owned - set(since):
                since[p] = entry["t"]
            for p in set(since) - owned:
                found[p].append((since.pop(p), entry["t"], worker.worker_id))
        end = worker.ended_at if worker.ended_at is not None else float("inf")
        for p, start in since.items():
            found[p].append((start, end, worker.worker_id))
    return found


async def test_kill_join_and_graceful_stop_across_processes(
    processes: Processes,
    hub8: StorageClients,
) -> None:
    names = hub8.settings.names
    table = LeaseTable(hub8.table(names.partitions_table), names, hub8.retry)
    samples: list[tuple[float, float, dict[int, LeaseRow]]] = []
    done = asyncio.Event()

    async def sample() -> None:
        while not done.is_set():
            before = time.time()
            rows = await table.read_all()
            samples.append((before, time.time(), rows))
            await asyncio.sleep(0.1)

    sampler = asyncio.ensure_future(sample())
    measured: dict[str, float] = {}
    try:
        await asyncio.gather(*(processes.spawn() for _ in range(3)))
        measured["3 processes balanced"] = await wait_balanced(table, processes.alive(), "start")
        assert all(
            w.worker_id == f"{socket.gethostname()}-{w.process.pid}" for w in processes.workers
        )

        victim = processes.workers[0]
        rows = await table.read_all()
        held = {p: r.expires_at for p, r in rows.items() if r.current_owner == victim.worker_id}
        processes.kill(victim, signal.SIGKILL)
        measured["SIGKILL to resumed"] = await wait_balanced(
            table, processes.alive(), "after SIGKILL"
        )
        rows = await table.read_all()
        for p, expiry in held.items():
            taken = rows[p].owned_since
            assert taken is not None and expiry is not None and taken >= expiry

        await processes.spawn()
        measured["join to balanced"] = await wait_balanced(table, processes.alive(), "after join")

        leaving = processes.workers[1]
        rows = await table.read_all()
        held = {p: r.expires_at for p, r in rows.items() if r.current_owner == leaving.worker_id}
        start = time.monotonic()
        processes.kill(leaving, signal.SIGTERM)
        code = await asyncio.to_thread(leaving.process.wait, TIMEOUT)
        leaving.ended_at = time.time()
        assert code == 0, leaving.log.with_suffix(".err").read_text()
        measured["SIGTERM to resumed"] = (
            time.monotonic()
            - start
            + await wait_balanced(table, processes.alive(), "after SIGTERM")
        )
        rows = await table.read_all()
        for p, expiry in held.items():
            taken = rows[p].owned_since
            assert taken is not None and expiry is not None and taken < expiry
    finally:
        done.set()
        await sampler
    for worker in processes.alive():
        worker.process.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(worker.process.wait, TIMEOUT) == 0
        worker.ended_at = time.time()

    found = intervals(processes.workers)
    for p, spans in found.items():
        spans.sort()
        for (_, end, first), (start, _, second) in zip(spans, spans[1:], strict=False):
            assert start >= end, f"partition {p}: {second} from {start} while {first} until {end}"
    for before, after, rows in samples:  # a row never names X while Y dequeued throughout
        for p, row in rows.items():
            for start, end, holder in found[p]:
                if holder != row.current_owner and start <= before and after <= end:
                    raise AssertionError(
                        f"partition {p}: row names {row.current_owner}, {holder} dequeues"
                    )
    assert len(samples) > 5  # the cross-check did run
    print("\nmeasured (s):", {k: round(v, 2) for k, v in measured.items()})
