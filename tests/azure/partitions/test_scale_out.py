"""Scale-out with real worker processes: the provider wired to its partition manager.

Three ``scale_worker.py`` processes (``TaskHubWorker`` on the default ``AzureStorageBackend``,
lease 3 s / renew 1 s / acquire 1 s) share an 8-partition hub while this test schedules a
steady stream of 2-activity ``sequence`` orchestrations. It SIGKILLs one (its partitions move
after lease expiry), adds one (it gets its share) and SIGTERMs one (hand-over before the
lease would expire). Afterwards every orchestration must have completed with the right output
and no duplicated TaskScheduled ids; ``durable-azstorage hub partitions --json`` must show
the live owners; the workers' logs must show no instant at which two
workers owned a partition, and no work item of a partition dequeued by a worker while another
owned it. The client-only backend of the test must never appear in the lease rows.
Processes are stopped by PID in the fixture's finalizer, also on failure.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sim_support import PARTITIONS
from sim_support import wait_balanced as leases_balanced

from durable_azstorage import AsyncTaskHubClient, OrchestrationStatus
from durable_azstorage.azure.partitioning.lease_table import LeaseTable
from durable_azstorage.azure.settings import AzureStorageSettings
from durable_azstorage.azure.storage.clients import StorageClients
from durable_azstorage.model.history import TaskScheduled
from durable_azstorage.testing.eventually import eventually_async

# One lease-fleet test at a time across xdist workers (see conftest.lease_fleet_alone).
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("lease_fleet_alone")]

SCRIPT = Path(__file__).with_name("scale_worker.py")
TIMEOUT = 40.0
STEPS = 2


@dataclass
class Worker:
    process: subprocess.Popen[str]
    log: Path
    worker_id: str = ""
    ended_at: float | None = None  # when it was killed or exited

    def entries(self) -> list[dict[str, object]]:
        return [json.loads(line) for line in self.log.read_text().splitlines()]


@dataclass
class Fleet:
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
        assert line.startswith("started "), (
            f"worker did not start: {line!r}\n{log.with_suffix('.err').read_text()}"
        )
        worker.worker_id = line.split()[1]
        return worker

    def alive(self) -> list[Worker]:
        return [w for w in self.workers if w.ended_at is None]

    async def terminate(self, worker: Worker) -> None:
        worker.process.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(worker.process.wait, TIMEOUT)
        worker.ended_at = time.time()
        assert code == 0, worker.log.with_suffix(".err").read_text()[-3000:]


@pytest.fixture
def fleet(hub8: StorageClients, tmp_path: Path) -> Iterator[Fleet]:
    procs = Fleet(hub8.settings.connection_string or "", hub8.settings.task_hub, tmp_path)
    try:
        yield procs
    finally:
        for worker in procs.workers:
            if worker.process.poll() is None:
                worker.process.kill()
            worker.process.wait()


async def wait_balanced(table: LeaseTable, workers: list[Worker], what: str) -> float:
    return await leases_balanced(table, {w.worker_id for w in workers}, what, TIMEOUT)


def ownership_spans(workers: list[Worker]) -> dict[int, list[tuple[float, float, str]]]:
    """Per partition: (from, to, worker) while the worker's owned() contained it."""
    found: dict[int, list[tuple[float, float, str]]] = {p: [] for p in range(PARTITIONS)}
    for worker in workers:
        since: dict[int, float] = {}
        for entry in worker.entries():
            if "owned" not in entry:
                continue
            owned = set(entry["owned"])  # type: ignore[call-overload]
            t = float(entry["t"])  # type: ignore[arg-type]
            for p in owned - set(since):
                since[p] = t
            for p in set(since) - owned:
                found[p].append((since.pop(p), t, worker.worker_id))
        end = worker.ended_at if worker.ended_at is not None else float("inf")
        for p, start in since.items():
            found[p].append((start, end, worker.worker_id))
    return found


def show_partitions(fleet: Fleet) -> list[dict[str, Any]]:
    """``durable-azstorage hub partitions --json`` for the fleet's hub, as a real command."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DURABLE_AZSTORAGE_")}
    env["DURABLE_AZSTORAGE_CONNECTION_STRING"] = fleet.connection_string
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "durable_azstorage",
            "hub",
            "partitions",
            "--task-hub",
            fleet.hub,
            "--json",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    shown: list[dict[str, Any]] = json.loads(done.stdout)
    return shown


async def test_workers_share_move_and_hand_over_partitions_without_losing_steps(
    fleet: Fleet,
    hub8: StorageClients,
) -> None:
    names = hub8.settings.names
    table = LeaseTable(hub8.table(names.partitions_table), names, hub8.retry)
    client_settings = AzureStorageSettings(
        connection_string=fleet.connection_string,
        task_hub=fleet.hub,
        partition_count=PARTITIONS,
    )
    measured: dict[str, float] = {}
    instances: list[str] = []
    producing = asyncio.Event()
    producing.set()

    async with AsyncTaskHubClient(client_settings) as client:

        async def produce() -> None:
            while producing.is_set():
                instances.append(await client.schedule_new_orchestration("sequence", input=STEPS))
                await asyncio.sleep(0.1)

        await asyncio.gather(*(fleet.spawn() for _ in range(3)))
        measured["3 workers balanced"] = await wait_balanced(table, fleet.alive(), "at start")
        producer = asyncio.ensure_future(produce())
        try:
            await asyncio.sleep(2)  # mid-run: work items of every partition in flight

            victim = fleet.workers[0]
            held = {
                p: r.expires_at
                for p, r in (await table.read_all()).items()
                if r.current_owner == victim.worker_id
            }
            victim.process.send_signal(signal.SIGKILL)
            victim.process.wait()
            victim.ended_at = time.time()
            measured["SIGKILL to resumed"] = await wait_balanced(
                table, fleet.alive(), "after SIGKILL"
            )
            rows = await table.read_all()
            for p, expiry in held.items():  # taken only after the dead worker's lease expired
                taken = rows[p].owned_since
                assert taken is not None and expiry is not None and taken >= expiry, p

            await fleet.spawn()
            measured["join to balanced"] = await wait_balanced(table, fleet.alive(), "after join")
            # Under load a lease may lapse and move between two reads: the command must come
            # to show every live worker as an owner (and only them), not at one lucky instant.
            alive = {w.worker_id for w in fleet.alive()}
            shown = await eventually_async(
                lambda: asyncio.to_thread(show_partitions, fleet),
                until=lambda rows: {p["owner"] for p in rows} == alive,
                timeout=TIMEOUT,
                interval=1.0,
                what="`hub partitions` naming exactly the live workers as owners",
            )
            assert [p["partition"] for p in shown] == list(range(PARTITIONS))
            assert all(p["expires_at"] and p["approximate_messages"] >= 0 for p in shown), shown

            leaving = fleet.workers[1]
            held = {
                p: r.expires_at
                for p, r in (await table.read_all()).items()
                if r.current_owner == leaving.worker_id
            }
            assert held, "the worker to stop owns no partition"
            start = time.monotonic()
            await fleet.terminate(leaving)
            measured["SIGTERM to resumed"] = (
                time.monotonic()
                - start
                + await wait_balanced(table, fleet.alive(), "after SIGTERM")
            )
            rows = await table.read_all()
            for p, expiry in held.items():  # handed over, not left to expire
                taken = rows[p].owned_since
                assert taken is not None and expiry is not None and taken < expiry, p
            await asyncio.sleep(1)
        finally:
            producing.clear()
            await producer

        # Every orchestration completes with each step exactly once.
        assert len(instances) > 20
        states = await asyncio.gather(
            *(client.wait_for_orchestration_completion(i, timeout=TIMEOUT) for i in instances)
        )
        for iid, state in zip(instances, states, strict=False):
            assert state.runtime_status is OrchestrationStatus.COMPLETED, (iid, state)
            assert state.get_output() == [f"{iid}:{s}" for s in range(STEPS)], iid
        histories = await asyncio.gather(*(client.get_orchestration_history(i) for i in instances))
        for iid, history in zip(instances, histories, strict=False):
            scheduled = Counter(e.event_id for e in history if isinstance(e, TaskScheduled))
            assert sorted(scheduled) == list(range(STEPS)), (iid, scheduled)
            assert set(scheduled.values()) == {1}, (iid, scheduled)

    rows = await table.read_all()  # the client-only backend never took a lease
    assert client_settings.worker_id not in {r.current_owner for r in rows.values()}
    for worker in fleet.alive():
        await fleet.terminate(worker)

    spans = ownership_spans(fleet.workers)
    for p, found in spans.items():
        found.sort()
        for (_, end, first), (begin, _, second) in zip(found, found[1:], strict=False):
            assert begin >= end, (
                f"partition {p}: {second} owned it from {begin}, {first} until {end}"
            )
    dequeued = 0
    for worker in fleet.workers:
        for entry in worker.entries():
            if "dequeued" not in entry:
                continue
            dequeued += 1
            p, t = int(entry["dequeued"]), float(entry["t"])  # type: ignore[call-overload, arg-type]
            for begin, end, holder in spans[p]:
                assert not (holder != worker.worker_id and begin < t < end), (
                    f"partition {p}: {worker.worker_id} dequeued at {t} while {holder} owned it"
                )
    assert dequeued >= len(instances) * (STEPS + 1)
    print(
        "\nmeasured (s):",
        {k: round(v, 2) for k, v in measured.items()},
        f"{len(instances)} orchestrations",
    )
