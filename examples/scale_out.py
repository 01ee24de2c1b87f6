"""Scale-out: N worker processes share one task hub; stop one and watch its partitions move.

Run: python examples/scale_out.py [--workers 3] [--orchestrations 12]

1. A task hub is created; its orchestration messages are spread over 4 partitions (control
   queues; ``--partitions``). Each partition is processed by one worker at a time: the owner
   of its lease. Activities go through one shared queue that every worker takes from.
2. N worker processes start. Each is ``python -m durable_azstorage worker --app
   scale_out:make_worker --app-dir examples``: the command you would run on N machines. They
   share out the partitions through lease rows in the hub's Partitions table.
3. This process, a client only (it takes no leases), schedules M orchestrations. Each one
   runs three activities in a row; every activity returns the pid of the process that ran it.
4. One worker gets SIGTERM: it finishes its in-flight work and hands its partitions over to
   the survivors, while M more orchestrations are scheduled. They all complete.

Everything printed is measured: ownership is read from the lease table, pids come back from
the activities, durations are timed here; times of day are UTC. The workers use short leases
(6 s, renewed every 2 s, claimed every 1 s) so that the demo is quick; defaults: 30/10/10 s.

With no storage account configured (DURABLE_AZSTORAGE_CONNECTION_STRING), a local Azurite is
started for the run and stopped afterwards; with one, a fresh task hub is used there and
deleted at the end (``--keep-hub`` keeps it). Worker processes are stopped by PID when the
demo ends, also on failure or Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Generator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import FrameType
from typing import Any

from durable_azstorage import (
    ActivityContext,
    AsyncTaskHubClient,
    AzureStorageSettings,
    OrchestrationContext,
    OrchestrationStatus,
    TaskHubWorker,
)
from durable_azstorage.azure.partitioning.lease_table import LeaseRow, LeaseTable
from durable_azstorage.azure.storage.clients import StorageClients
from durable_azstorage.testing.local import local_settings, storage_configured

EXAMPLES = Path(__file__).resolve().parent
ACTIVITIES_PER_ORCHESTRATION = 3
STOP_GRACE = 10.0  # seconds a stopping worker may take before it is killed


# --- the application: what every worker process runs -------------------------------------
def report_pid(ctx: ActivityContext, step: int) -> int:
    return os.getpid()


def visit(ctx: OrchestrationContext, _: int) -> Generator[Any, Any, list[int]]:
    pids = []
    for step in range(ACTIVITIES_PER_ORCHESTRATION):
        pids.append((yield ctx.call_activity(report_pid, input=step)))
    return pids


def make_worker() -> TaskHubWorker:
    """Called in each worker process by ``durable-azstorage worker --app scale_out:make_worker``.

    The account, hub and partition count come from the environment; the worker id (the lease
    owner name) names this process, so the demo can tell the workers apart."""
    settings = AzureStorageSettings.from_env(
        worker_id=f"{socket.gethostname()}-{os.getpid()}",
        lease_interval=timedelta(seconds=6),  # short leases: a quick demo (defaults: 30/10/10 s)
        lease_renew_interval=timedelta(seconds=2),
        lease_acquire_interval=timedelta(seconds=1),
        max_poll_interval=timedelta(seconds=1),  # idle workers look for messages every second
    )
    worker = TaskHubWorker(settings)
    worker.add_orchestrator(visit)
    worker.add_activity(report_pid)
    return worker


# --- the demo: processes, lease table, output ----------------------------------------------
def now() -> str:
    return datetime.now(timezone.utc).strftime("%H:%M:%S.%f")[:-3]


def say(text: str = "") -> None:
    print(f"[{now()}] {text}" if text else "", flush=True)


class Workers:
    """The worker processes, each started in its own session with its log in a temp folder."""

    def __init__(self, settings: AzureStorageSettings) -> None:
        self.settings = settings
        self.logs = Path(tempfile.mkdtemp(prefix="dtaz-scale-out-"))
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self, count: int) -> None:
        env = dict(os.environ)
        if self.settings.connection_string:
            env["DURABLE_AZSTORAGE_CONNECTION_STRING"] = self.settings.connection_string
        env["DURABLE_AZSTORAGE_TASK_HUB"] = self.settings.task_hub
        env["DURABLE_AZSTORAGE_PARTITION_COUNT"] = str(self.settings.partition_count)
        command = [
            sys.executable,
            "-m",
            "durable_azstorage",
            "worker",
            "--app",
            "scale_out:make_worker",
            "--app-dir",
            str(EXAMPLES),
            "--grace",
            str(STOP_GRACE),
            "--log-level",
            "INFO",
        ]
        for number in range(1, count + 1):
            with open(self.logs / f"worker-{number}.log", "wb") as log:
                process = subprocess.Popen(
                    command,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # Ctrl-C reaches only us
                    preexec_fn=_stop_with_parent(),  # noqa: PLW1509 (one prctl call)
                )
            self.processes.append(process)
            say(f"started worker {number} (pid {process.pid})")

    def name(self, owner: str | None) -> str:
        """``worker 2 (pid 1234)`` for a lease owner id ``<host>-<pid>``."""
        for number, process in enumerate(self.processes, 1):
            if owner is not None and owner.endswith(f"-{process.pid}"):
                return f"worker {number} (pid {process.pid})"
        return owner or "-"

    def owner_id(self, process: subprocess.Popen[bytes]) -> str:
        return f"{socket.gethostname()}-{process.pid}"

    def running(self) -> list[subprocess.Popen[bytes]]:
        return [p for p in self.processes if p.poll() is None]

    def check_alive(self, expected: list[subprocess.Popen[bytes]]) -> None:
        for process in expected:
            if process.poll() is not None:
                raise RuntimeError(
                    f"{self.name(self.owner_id(process))} exited with code {process.returncode}:"
                    f"\n{self.tail(process)}"
                )

    def tail(self, process: subprocess.Popen[bytes], chars: int = 2000) -> str:
        number = self.processes.index(process) + 1
        return (self.logs / f"worker-{number}.log").read_text(errors="replace")[-chars:]

    def stop_all(self) -> None:
        """SIGTERM every running worker by PID (graceful), SIGKILL what is left after the grace."""
        for process in self.running():
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE + 5
        for process in self.processes:
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signal.SIGKILL)
                process.wait()


def _stop_with_parent() -> Callable[[], None] | None:
    """Linux: the kernel sends a worker SIGTERM if this process dies (even by SIGKILL)."""
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl

    def hook() -> None:
        prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG

    return hook


class Leases:
    """Reads the hub's lease rows: what ``durable-azstorage hub partitions`` shows."""

    def __init__(self, clients: StorageClients, settings: AzureStorageSettings) -> None:
        names = settings.names
        self._table = LeaseTable(clients.table(names.partitions_table), names, clients.retry)

    async def read(self) -> dict[int, LeaseRow]:
        return await self._table.read_all()

    async def wait_until(
        self,
        done: Callable[[dict[int, LeaseRow]], bool],
        timeout: float,
        what: str,
        check: Callable[[], None],
    ) -> dict[int, LeaseRow]:
        deadline = time.monotonic() + timeout
        while True:
            rows = await self.read()
            if done(rows):
                return rows
            check()
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what} did not happen within {timeout:g} s")
            await asyncio.sleep(0.1)


def settled(rows: dict[int, LeaseRow], owners: set[str], partitions: int) -> bool:
    """Every partition has a live owner among ``owners``, no hand-over is pending, and the
    owners' counts differ by at most one (the balancer's goal)."""
    at = datetime.now(timezone.utc)
    if len(rows) < partitions:  # the first worker creates the rows
        return False
    for row in rows.values():
        if row.current_owner not in owners or row.is_draining or row.next_owner:
            return False
        if row.expires_at is None or row.expires_at <= at:
            return False
    counts = Counter(row.current_owner for row in rows.values())
    per_owner = [counts.get(o, 0) for o in owners]
    return max(per_owner) - min(per_owner) <= 1


def print_table(rows: dict[int, LeaseRow], workers: Workers) -> None:
    print(f"    {'partition':<10} {'control queue':<28} {'owner':<22} owned since (UTC)")
    for p, row in sorted(rows.items()):
        since = row.owned_since.strftime("%H:%M:%S.%f")[:-3] if row.owned_since else "-"
        print(f"    {p:<10} {row.queue:<28} {workers.name(row.current_owner):<22} {since}")
    print(flush=True)


async def wait_exit(process: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while process.poll() is None:
        if time.monotonic() > deadline:
            raise RuntimeError(f"pid {process.pid} did not exit within {timeout:g} s of SIGTERM")
        await asyncio.sleep(0.05)


async def run_batch(client: AsyncTaskHubClient, count: int, timeout: float) -> list[list[int]]:
    """Schedule ``count`` orchestrations and wait for all; the activity pids of each."""
    ids = await asyncio.gather(
        *(client.schedule_new_orchestration(visit, input=i) for i in range(count))
    )
    states = await asyncio.gather(
        *(client.wait_for_orchestration_completion(i, timeout=timeout) for i in ids)
    )
    failed = [s for s in states if s.runtime_status is not OrchestrationStatus.COMPLETED]
    if failed:
        raise RuntimeError(
            f"{len(failed)} orchestration(s) did not complete: "
            f"{failed[0].instance_id} is {failed[0].runtime_status.value}"
        )
    return [list(s.get_output()) for s in states]


@dataclass
class Outcome:
    """What the demo measured, for the summary."""

    before: dict[int, LeaseRow]  # lease rows once balanced
    after: dict[int, LeaseRow]  # lease rows once re-balanced among the survivors
    batches: list[list[list[int]]]  # per batch, per orchestration: the activities' pids
    stopped: subprocess.Popen[bytes]
    handover: float  # seconds from SIGTERM until every partition had a surviving owner


async def demo(
    settings: AzureStorageSettings, workers: Workers, args: argparse.Namespace
) -> Outcome:
    """The demo's steps, printed as they happen."""
    partitions = settings.partition_count
    async with AsyncTaskHubClient(settings) as client, StorageClients(settings) as clients:
        await client.create_task_hub()
        leases = Leases(clients, settings)
        say(f"task hub {settings.task_hub!r} created with {partitions} partitions")
        print(
            f"    each worker: durable-azstorage worker --app scale_out:make_worker "
            f"--app-dir {EXAMPLES.name}  (logs: {workers.logs})",
            flush=True,
        )

        # 1. start the workers and wait until they have shared out the partitions
        started = time.monotonic()
        workers.start(args.workers)
        everyone = list(workers.processes)
        ids = {workers.owner_id(p) for p in everyone}
        before = await leases.wait_until(
            lambda rows: settled(rows, ids, partitions),
            args.timeout,
            "balancing the partitions",
            lambda: workers.check_alive(everyone),
        )
        say(
            f"partitions balanced {time.monotonic() - started:.1f} s after the workers started "
            f"(the same view: durable-azstorage hub partitions -t {settings.task_hub}):"
        )
        print_table(before, workers)

        # 2. a first batch of orchestrations
        say(
            f"batch 1: scheduling {args.orchestrations} orchestrations "
            f"({ACTIVITIES_PER_ORCHESTRATION} activities each)"
        )
        t = time.monotonic()
        batch1 = await run_batch(client, args.orchestrations, args.timeout)
        say(
            f"batch 1: {len(batch1)}/{args.orchestrations} completed in "
            f"{time.monotonic() - t:.1f} s"
        )

        # 3. stop the worker owning the most partitions; more work arrives meanwhile
        counts = Counter(row.current_owner for row in before.values())
        stopped = max(everyone, key=lambda p: counts.get(workers.owner_id(p), 0))
        stopped_name = workers.name(workers.owner_id(stopped))
        survivors = [p for p in everyone if p is not stopped]
        survivor_ids = {workers.owner_id(p) for p in survivors}
        say(
            f"stopping {stopped_name} with SIGTERM: it finishes its work, then hands its "
            f"{counts[workers.owner_id(stopped)]} partition(s) over"
        )
        stop_sent = time.monotonic()
        os.kill(stopped.pid, signal.SIGTERM)
        say(f"batch 2: scheduling {args.orchestrations} more orchestrations during the hand-over")
        batch2 = asyncio.ensure_future(run_batch(client, args.orchestrations, args.timeout))
        try:

            def check() -> None:
                workers.check_alive(survivors)

            await leases.wait_until(
                lambda rows: all(row.current_owner in survivor_ids for row in rows.values()),
                args.timeout,
                "the hand-over",
                check,
            )
            handover = time.monotonic() - stop_sent
            say(
                f"hand-over done {handover:.1f} s after SIGTERM: every partition is owned by a "
                "survivor"
            )
            await wait_exit(stopped, STOP_GRACE + 5)
            say(
                f"{stopped_name} exited with code {stopped.returncode}, "
                f"{time.monotonic() - stop_sent:.1f} s after SIGTERM"
            )
            after = await leases.wait_until(
                lambda rows: settled(rows, survivor_ids, partitions),
                args.timeout,
                "re-balancing",
                check,
            )
            say("partitions now:")
            print_table(after, workers)
            await batch2
        finally:
            batch2.cancel()
        say(
            f"batch 2: {len(batch2.result())}/{args.orchestrations} completed, "
            f"{time.monotonic() - stop_sent:.1f} s after they were scheduled"
        )
    return Outcome(before, after, [batch1, batch2.result()], stopped, handover)


def summarize(outcome: Outcome, workers: Workers, per_batch: int) -> bool:
    """Print the summary; True when every check passed."""
    stopped_id = workers.owner_id(outcome.stopped)
    completed = sum(len(batch) for batch in outcome.batches)
    total = per_batch * len(outcome.batches)
    owners_before = {row.current_owner for row in outcome.before.values()}
    owners_after = {row.current_owner for row in outcome.after.values()}
    left = sum(1 for row in outcome.after.values() if row.current_owner == stopped_id)
    by_pid = [Counter(pid for pids in batch for pid in pids) for batch in outcome.batches]
    print()
    print("Summary")
    print(f"  orchestrations completed: {completed} of {total}")
    print(
        f"  partition owners before the stop: {_workers(len(owners_before))}; "
        f"after: {_workers(len(owners_after))}"
    )
    print(
        f"  partitions owned by the stopped {workers.name(stopped_id)} after the hand-over: {left}"
    )
    print(
        f"  hand-over time (SIGTERM to every partition owned by a survivor): "
        f"{outcome.handover:.1f} s"
    )
    print("  activities run per worker process (each activity returns os.getpid()):")
    print(f"    {'worker':<22} {'batch 1':>8} {'batch 2':>8}")
    for process in workers.processes:
        print(
            f"    {workers.name(workers.owner_id(process)):<22} "
            f"{by_pid[0].get(process.pid, 0):>8} {by_pid[1].get(process.pid, 0):>8}"
        )
    sys.stdout.flush()
    return completed == total and left == 0 and outcome.stopped.returncode == 0


def _workers(count: int) -> str:
    return f"{count} worker" + ("" if count == 1 else "s")


async def delete_hub(settings: AzureStorageSettings) -> None:
    async with AsyncTaskHubClient(settings) as client:
        await client.delete_task_hub()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, default=3, help="worker processes (>= 2)")
    parser.add_argument(
        "--orchestrations", type=int, default=12, help="orchestrations per batch (two batches)"
    )
    parser.add_argument("--partitions", type=int, default=4, help="partition count (1-16)")
    parser.add_argument(
        "--timeout",
        type=float,
        default=60.0,
        help="seconds each step may take before the demo gives up",
    )
    parser.add_argument(
        "--keep-hub",
        action="store_true",
        help="keep the task hub in a configured account (default: delete it)",
    )
    args = parser.parse_args(argv)
    if args.workers < 2:
        parser.error("--workers: need at least 2 (one is stopped, the others take over)")
    if args.orchestrations < 1:
        parser.error("--orchestrations: need at least 1")
    return args


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # SIGTERM: run the finally blocks that stop the workers


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    configured = storage_configured()
    if not configured:
        say("no storage account configured: starting a local Azurite for this run")
    hub = f"scaleout{uuid.uuid4().hex[:8]}"
    with local_settings(hub, partition_count=args.partitions) as settings:
        say(f"storage account: {settings.account_name}")
        workers = Workers(settings)
        ok = interrupted = False
        try:
            ok = summarize(asyncio.run(demo(settings, workers, args)), workers, args.orchestrations)
        except (RuntimeError, TimeoutError) as exc:  # a step failed: say which, keep the logs
            print(f"error: {exc}", file=sys.stderr, flush=True)
        except KeyboardInterrupt:
            interrupted = True
            print("interrupted: stopping the workers", file=sys.stderr, flush=True)
        finally:
            workers.stop_all()
            if configured and not args.keep_hub:
                try:
                    asyncio.run(delete_hub(settings))
                except Exception as exc:  # noqa: BLE001 (cleanup must not hide the outcome)
                    print(f"could not delete task hub {hub}: {exc!r}", file=sys.stderr)
            if ok:
                shutil.rmtree(workers.logs, ignore_errors=True)
            else:
                print(f"worker logs kept in {workers.logs}", file=sys.stderr, flush=True)
    if interrupted:
        return 130
    print(
        "OK: every orchestration completed and the stopped worker's partitions moved"
        if ok
        else "FAILED: see above",
        flush=True,
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
