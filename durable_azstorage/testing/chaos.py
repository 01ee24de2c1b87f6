"""A real-process chaos run on Azurite: workers SIGKILLed at random under a steady load.

``python -m durable_azstorage.testing.chaos --minutes 3 [--workers 3] [--rate 2] [--seed S]``
starts a local Azurite (on disk), creates a hub, runs ``--workers`` worker processes
(``durable-azstorage worker --app durable_azstorage.testing.chaos_app:make_worker``, default
settings unless ``--fast-leases``), starts ``chaos_flow`` orchestrations at ``--rate`` per
second for ``--minutes``, and every 10–40 s (seeded) SIGKILLs a random worker and starts a
replacement. Then it waits until every instance ended and checks each one: Completed, with
the output ``chaos_app.expected_output`` gives, nothing in the poison store. It prints the
numbers (instances, kills, activity executions beyond one per task, the slowest instance)
and exits 1 on any violation. Every process it starts is stopped by PID, also on failure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from durable_azstorage.azure.provider import AzureStorageBackend
from durable_azstorage.azure.settings import AzureStorageSettings
from durable_azstorage.client.async_client import AsyncTaskHubClient
from durable_azstorage.model.status import OrchestrationStatus
from durable_azstorage.testing.azurite import Azurite
from durable_azstorage.testing.chaos_app import RECORD_ENV, expected_output

APP = "durable_azstorage.testing.chaos_app:make_worker"
FAST_LEASES = {  # --fast-leases: seconds, for a short run in the test suite
    "DURABLE_AZSTORAGE_LEASE_INTERVAL": "6",
    "DURABLE_AZSTORAGE_LEASE_RENEW_INTERVAL": "2",
    "DURABLE_AZSTORAGE_LEASE_ACQUIRE_INTERVAL": "2",
    "DURABLE_AZSTORAGE_CONTROL_QUEUE_VISIBILITY_TIMEOUT": "6",
    "DURABLE_AZSTORAGE_WORK_ITEM_VISIBILITY_TIMEOUT": "6",
}


@dataclass
class ChaosReport:
    instances: int = 0
    kills: int = 0
    completed: int = 0
    violations: list[str] = field(default_factory=list)
    executions: int = 0
    tasks: int = 0
    slowest: float = 0.0
    poison: int = 0

    def summary(self) -> dict[str, object]:
        return {
            "instances": self.instances,
            "completed": self.completed,
            "kills": self.kills,
            "activity executions": self.executions,
            "activity tasks": self.tasks,
            "re-executions": self.executions - self.tasks,
            "poison": self.poison,
            "slowest instance (s)": round(self.slowest, 1),
            "violations": len(self.violations),
        }


class Fleet:
    """Worker processes, started and stopped by PID."""

    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        self._env = env
        self._log_dir = log_dir
        self.processes: list[subprocess.Popen[bytes]] = []

    def spawn(self) -> subprocess.Popen[bytes]:
        log = open(self._log_dir / f"worker-{len(self.processes)}.log", "wb")
        process = subprocess.Popen(
            [sys.executable, "-m", "durable_azstorage", "worker", "--app", APP],
            env=self._env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        self.processes.append(process)
        return process

    def alive(self) -> list[subprocess.Popen[bytes]]:
        return [p for p in self.processes if p.poll() is None]

    def stop_all(self) -> None:
        for process in self.alive():
            process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


async def run(
    *,
    minutes: float,
    workers: int,
    rate: float,
    seed: int,
    fast_leases: bool,
    drain_timeout: float,
) -> ChaosReport:
    rng = random.Random(seed)
    report = ChaosReport()
    with tempfile.TemporaryDirectory(prefix="chaos-") as tmp:
        folder = Path(tmp)
        records = folder / "records"
        records.mkdir()
        azurite = Azurite(location=folder / "azurite")
        azurite.start()
        fleet: Fleet | None = None
        try:
            env = {
                **os.environ,
                RECORD_ENV: str(records),
                "DURABLE_AZSTORAGE_CONNECTION_STRING": azurite.connection_string,
                "DURABLE_AZSTORAGE_TASK_HUB": "chaos",
                **(FAST_LEASES if fast_leases else {}),
            }
            settings = AzureStorageSettings(
                connection_string=azurite.connection_string, task_hub="chaos"
            )
            async with AsyncTaskHubClient(settings) as client:
                await client.create_task_hub()
                fleet = Fleet(env, folder)
                for _ in range(workers):
                    fleet.spawn()
                started = await _load(client, fleet, rng, report, minutes, rate)
                await _drain(client, started, report, drain_timeout)
            report.poison = await _poison_count(settings)
            _count_executions(records, report)
        finally:
            if fleet is not None:
                fleet.stop_all()
            azurite.stop()
    if report.poison:
        report.violations.append(f"{report.poison} message(s) in the poison store")
    return report


async def _load(
    client: AsyncTaskHubClient,
    fleet: Fleet,
    rng: random.Random,
    report: ChaosReport,
    minutes: float,
    rate: float,
) -> dict[str, float]:
    """Start instances at ``rate``/s, kill a worker every 10-40 s; raise each instance's event
    (half of them before it starts). Returns instance id -> start time."""
    started: dict[str, float] = {}
    late: set[asyncio.Future[None]] = set()
    end = time.monotonic() + minutes * 60
    next_kill = time.monotonic() + rng.uniform(10, 40)
    number = 0
    while time.monotonic() < end:
        instance_id = f"chaos-{number}"
        early = rng.random() < 0.5
        await client.schedule_new_orchestration(
            "chaos_flow",
            input=number,
            instance_id=instance_id,
        )
        started[instance_id] = time.monotonic()
        if early:
            await client.raise_orchestration_event(instance_id, "go", data=f"go-{number}")
        else:
            late.add(
                asyncio.ensure_future(
                    _raise_later(client, instance_id, f"go-{number}", rng.uniform(2, 6))
                )
            )
        number += 1
        if time.monotonic() >= next_kill and fleet.alive():
            victim = rng.choice(fleet.alive())
            victim.send_signal(signal.SIGKILL)
            victim.wait()
            report.kills += 1
            fleet.spawn()
            next_kill = time.monotonic() + rng.uniform(10, 40)
        await asyncio.sleep(1 / rate)
    report.instances = len(started)
    await asyncio.gather(*late)
    return started


async def _raise_later(
    client: AsyncTaskHubClient, instance_id: str, data: str, delay: float
) -> None:
    await asyncio.sleep(delay)
    await client.raise_orchestration_event(instance_id, "go", data=data)


async def _drain(
    client: AsyncTaskHubClient, started: dict[str, float], report: ChaosReport, timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    pending = set(started)
    while pending and time.monotonic() < deadline:
        for instance_id in sorted(pending):
            state = await client.get_orchestration_state(instance_id)
            if state is None or not state.runtime_status.is_terminal:
                continue
            pending.discard(instance_id)
            report.slowest = max(report.slowest, time.monotonic() - started[instance_id])
            number = int(instance_id.rsplit("-", 1)[1])
            if state.runtime_status is not OrchestrationStatus.COMPLETED:
                report.violations.append(
                    f"{instance_id}: {state.runtime_status.value} {state.failure_details}"
                )
            elif state.get_output() != expected_output(number):
                report.violations.append(f"{instance_id}: output {state.get_output()!r}")
            else:
                report.completed += 1
        await asyncio.sleep(1)
    for instance_id in sorted(pending):
        report.violations.append(f"{instance_id}: not ended {timeout:.0f} s after the load")


async def _poison_count(settings: AzureStorageSettings) -> int:
    backend = AzureStorageBackend(settings)
    try:
        return len(await backend.list_poison())
    finally:
        await backend.stop()


def _count_executions(records: Path, report: ChaosReport) -> None:
    per_task = Counter(".".join(p.name.split(".")[:-1]) for p in records.iterdir())
    report.executions = sum(per_task.values())
    report.tasks = len(per_task)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m durable_azstorage.testing.chaos")
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--rate", type=float, default=2.0, help="orchestrations started per second")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--fast-leases", action="store_true", help="6 s leases and visibility")
    parser.add_argument("--drain-timeout", type=float, default=300.0)
    args = parser.parse_args(argv)
    report = asyncio.run(
        run(
            minutes=args.minutes,
            workers=args.workers,
            rate=args.rate,
            seed=args.seed,
            fast_leases=args.fast_leases,
            drain_timeout=args.drain_timeout,
        )
    )
    print(json.dumps(report.summary(), indent=2))
    for violation in report.violations[:20]:
        print("VIOLATION", violation)
    return 1 if report.violations else 0


if __name__ == "__main__":
    sys.exit(main())
