"""``bench scale``: the sequence scenario served by 1, 2, 4 ... worker *processes*.

Each process is ``python -m durable_azstorage worker --app
durable_azstorage.bench.workload:worker_from_env`` with the hub named in its environment; the
benchmark process is only the client. Processes are stopped by PID (SIGTERM, SIGKILL after a
grace), also on failure. Throughput is reported with its ratio to the smallest process count.
On one machine the workers share its cores with each other, the client and Azurite, so the
ratio shows coordination overhead more than the scale-out a cluster would see.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rich.progress import Progress

from durable_azstorage.azure.partitioning.lease_table import LeaseTable
from durable_azstorage.azure.settings import AzureStorageSettings
from durable_azstorage.azure.storage.clients import StorageClients
from durable_azstorage.bench.cpu_usage import CpuMeter, describe
from durable_azstorage.bench.environment import (
    StorageTarget,
    connection_env,
    machine_info,
    settings_info,
)
from durable_azstorage.bench.report import Report, fmt_ratio, fmt_seconds
from durable_azstorage.bench.runtime import hub, warm_up
from durable_azstorage.bench.throughput import batch_timeout, run_batch

WORKER_APP = "durable_azstorage.bench.workload:worker_from_env"
STOP_GRACE = 15.0
# What `durable-azstorage worker` prints once SIGTERM stops it gracefully (cli/worker.py's
# STOPS_GRACEFULLY; the bench sits below the CLI, tests/bench checks the two agree).
WORKER_READY = "Ctrl-C or SIGTERM stops it"


class WorkerProcesses:
    """``count`` worker processes on one hub; logs kept in a temporary folder."""

    def __init__(self, settings: AzureStorageSettings, count: int) -> None:
        self.settings = settings
        self.count = count
        self.logs = Path(tempfile.mkdtemp(prefix="dtaz-bench-"))
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self) -> None:
        env = connection_env(self.settings)
        for i in range(self.count):
            env["DURABLE_AZSTORAGE_WORKER_ID"] = f"bench-worker-{i}"
            with open(self.logs / f"worker-{i}.log", "wb") as log:
                self.processes.append(
                    subprocess.Popen(
                        [
                            sys.executable,
                            "-m",
                            "durable_azstorage",
                            "worker",
                            "--app",
                            WORKER_APP,
                            "--grace",
                            "5",
                            "--log-level",
                            "WARNING",
                        ],
                        env=dict(env),
                        stdin=subprocess.DEVNULL,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                    )
                )

    def check_alive(self) -> None:
        for i, proc in enumerate(self.processes):
            if proc.poll() is not None:
                raise RuntimeError(
                    f"worker process {i} (pid {proc.pid}) exited with "
                    f"{proc.returncode}: {self.log_tail(i)}"
                )

    def log_text(self, i: int) -> str:
        return (self.logs / f"worker-{i}.log").read_text(errors="replace")

    def log_tail(self, i: int, chars: int = 1500) -> str:
        return self.log_text(i)[-chars:]

    def stop(self) -> list[int | None]:
        """SIGTERM each by PID, SIGKILL whatever is left after the grace; the exit codes.

        A worker still starting (a short run ends before it has its signal handler) is
        given up to the grace to say it is ready first: a SIGTERM before that kills it."""
        self._wait_ready(STOP_GRACE)
        for proc in self.processes:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGTERM)
        codes: list[int | None] = []
        for proc in self.processes:
            try:
                codes.append(proc.wait(STOP_GRACE))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGKILL)
                codes.append(proc.wait())
        return codes

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for i, proc in enumerate(self.processes):
            while proc.poll() is None and WORKER_READY not in self.log_text(i):
                if time.monotonic() > deadline:
                    return
                time.sleep(0.05)

    def log_problems(self) -> dict[str, Any]:
        """Warning and error lines the workers logged (e.g. ownership conflicts)."""
        lines = []
        for i in range(self.count):
            lines += [
                f"[{i}] {line}"
                for line in self.log_text(i).splitlines()
                if " WARNING " in line or " ERROR " in line
            ]
        return {"count": len(lines), "first": lines[:5]}


async def partition_owners(settings: AzureStorageSettings) -> dict[str, str | None]:
    """Who holds each partition's lease now (from the hub's Partitions table)."""
    async with StorageClients(settings) as clients:
        names = settings.names
        table = LeaseTable(clients.table(names.partitions_table), names, clients.retry)
        rows = await table.read_all()
    return {str(p): row.current_owner for p, row in sorted(rows.items())}


async def wait_balanced(
    settings: AzureStorageSettings, processes: int, timeout: float
) -> tuple[float | None, dict[str, str | None]]:
    """Wait until every process owns a partition (or all partitions have distinct owners).

    Returns the seconds it took (None: not within ``timeout``) and the owners last seen.
    """
    loop = asyncio.get_running_loop()
    start = loop.time()
    wanted = min(processes, settings.partition_count)
    while True:
        owners = await partition_owners(settings)
        if len({o for o in owners.values() if o}) >= wanted and all(owners.values()):
            return round(loop.time() - start, 2), owners
        if loop.time() - start > timeout:
            return None, owners
        await asyncio.sleep(0.5)


def _owned_counts(owners: dict[str, str | None]) -> str:
    counts: dict[str, int] = {}
    for owner in owners.values():
        counts[owner or "nobody"] = counts.get(owner or "nobody", 0) + 1
    return ", ".join(f"{o.removeprefix('bench-')}: {n}" for o, n in sorted(counts.items()))


@contextlib.contextmanager
def running(settings: AzureStorageSettings, count: int) -> Iterator[WorkerProcesses]:
    workers = WorkerProcesses(settings, count)
    try:
        workers.start()
        yield workers
    finally:
        workers.stop()


async def scale(
    target: StorageTarget,
    progress: Progress,
    *,
    count: int = 40,
    processes: list[int] | None = None,
    settle: float = 2.0,
    balance_timeout: float = 60.0,
) -> Report:
    """Sequence throughput with each process count in ``processes``."""
    processes = processes or [1, 2, 4]
    report = Report("scale")
    report.environment = {"machine": machine_info(), "storage": target.description}
    runs: dict[str, dict[str, Any]] = {}
    settings = target.settings
    for k in processes:
        settings = target.hub("scale")
        async with hub(settings) as client:
            with running(settings, k) as workers:
                task = progress.add_task(f"{k} worker process(es): starting", total=None)
                await warm_up(client)
                progress.update(
                    task,
                    description=f"{k} worker process(es): waiting until "
                    "every process owns a partition",
                )
                balanced, owners_before = await wait_balanced(settings, k, balance_timeout)
                await asyncio.sleep(settle)
                workers.check_alive()
                progress.remove_task(task)
                meter = CpuMeter(
                    {
                        "azurite": [target.description.get("pid")],
                        "workers": [p.pid for p in workers.processes],
                        "client": [os.getpid()],
                    }
                )
                meter.start()
                result = await run_batch(
                    client, count, progress, f"{k} process(es)", timeout=batch_timeout(count)
                )
                result["cpu"] = meter.stop()
                workers.check_alive()
                result["seconds_until_balanced"] = balanced
                result["partition_owners_before"] = owners_before
                result["partition_owners_after"] = await partition_owners(settings)
                exit_codes = workers.stop()
                result["worker_exit_codes"] = exit_codes
                result["worker_log_problems"] = workers.log_problems()
        runs[str(k)] = result
        lat = result["latency_s"]
        report.row(f"{k} process(es): orchestrations/s", f"{result['orchestrations_per_s']:.2f}")
        report.row(
            f"{k} process(es): latency p50 / p99",
            f"{fmt_seconds(lat['p50'])} / {fmt_seconds(lat['p99'])}",
        )
        report.row(f"{k} process(es): CPU (cores busy)", describe(result["cpu"]))
        report.row(
            f"{k} process(es): partitions owned (after run)",
            _owned_counts(result["partition_owners_after"]),
        )
        report.row(
            f"{k} process(es): time until each owned a partition",
            "n/a" if balanced is None else f"{balanced:.1f} s",
        )
        if result["worker_log_problems"]["count"]:
            report.row(
                f"{k} process(es): warnings/errors logged",
                str(result["worker_log_problems"]["count"]),
            )
    base = runs[str(processes[0])]["orchestrations_per_s"]
    ratios = {k: round(r["orchestrations_per_s"] / base, 3) for k, r in runs.items()}
    for k in processes[1:]:
        report.row(
            f"throughput ratio {k}/{processes[0]} processes",
            fmt_ratio(runs[str(k)]["orchestrations_per_s"], base),
        )
    report.results = {"runs": runs, "throughput_ratio_to_first": ratios}
    report.settings = {
        **settings_info(settings),
        "count": count,
        "processes": processes,
        "settle_s": settle,
        "balance_timeout_s": balance_timeout,
        "max_concurrent_activities_per_process": 10,
    }
    report.settings.pop("task_hub", None)
    report.notes.append(
        f"{machine_info()['cores']} cores shared by the client, every worker process and the "
        "storage emulator (if local): more processes than cores cannot add throughput here"
    )
    return report
