"""``bench sequence`` and ``bench fanout``: how fast orchestrations complete under load.

``sequence`` starts N orchestrations of 5 chained activities at once and measures throughput
(over the span from the first creation to the last completion, from the instances' stored
timestamps) and each instance's end-to-end latency. By default it runs twice, with extended
sessions on and off, and reports the ratio. ``fanout`` runs one orchestration with ``size``
parallel activities and measures its time to completion.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from typing import Any

from rich.progress import Progress

from durable_azstorage.azure.settings import AzureStorageSettings
from durable_azstorage.azure.storage.metrics import RequestCounts
from durable_azstorage.bench.ceiling import add_rows as add_ceiling_rows
from durable_azstorage.bench.ceiling import measure as measure_ceiling
from durable_azstorage.bench.ceiling import mix_rate
from durable_azstorage.bench.cpu_usage import CpuMeter, describe
from durable_azstorage.bench.environment import (
    StorageTarget,
    machine_info,
    settings_info,
)
from durable_azstorage.bench.report import Report, fmt_ratio, fmt_seconds
from durable_azstorage.bench.runtime import (
    by_operation_name,
    elapsed,
    in_process,
    latency_summary,
    span,
    wait_all,
)
from durable_azstorage.bench.workload import (
    SEQUENCE_LENGTH,
    bench_fanout,
    bench_sequence,
)
from durable_azstorage.client.async_client import AsyncTaskHubClient


async def run_batch(
    client: AsyncTaskHubClient, count: int, progress: Progress, label: str, *, timeout: float
) -> dict[str, Any]:
    """Start ``count`` sequence orchestrations, wait for all; throughput and latency."""
    task = progress.add_task(f"{label}: {count} orchestrations", total=count)
    limit = asyncio.Semaphore(32)

    async def start(i: int) -> str:
        async with limit:
            return await client.schedule_new_orchestration(bench_sequence, input=SEQUENCE_LENGTH)

    wall = time.perf_counter()
    ids = await asyncio.gather(*(start(i) for i in range(count)))
    states = await wait_all(
        client, ids, timeout=timeout, on_done=lambda n: progress.update(task, completed=n)
    )
    wall = time.perf_counter() - wall
    progress.remove_task(task)
    seconds = span(states)
    activities = count * SEQUENCE_LENGTH
    return {
        "orchestrations": count,
        "activities": activities,
        "span_s": round(seconds, 4),
        "client_wall_s": round(wall, 4),
        "orchestrations_per_s": round(count / seconds, 3),
        "activities_per_s": round(activities / seconds, 3),
        "latency_s": latency_summary([elapsed(s) for s in states]),
    }


def _sequence_rows(report: Report, label: str, r: dict[str, Any]) -> None:
    lat = r["latency_s"]
    report.row(f"{label}: orchestrations/s", f"{r['orchestrations_per_s']:.2f}")
    report.row(f"{label}: activities/s", f"{r['activities_per_s']:.2f}")
    report.row(
        f"{label}: latency p50 / p95 / p99",
        " / ".join(fmt_seconds(lat[k]) for k in ("p50", "p95", "p99")),
    )
    req = r["storage_requests"]
    ratio = (
        f" = {req['ratio_to_ceiling']:.0%} of the ceiling for its mix "
        f"({req['ceiling_per_s_for_worker_mix']:.0f}/s)"
        if "ratio_to_ceiling" in req
        else ""
    )
    report.row(f"{label}: storage requests/s", f"{req['per_s']:.0f}")
    report.row(f"{label}: of which worker", f"{req['worker_per_s']:.0f}{ratio}")


def storage_requests(
    worker: RequestCounts,
    client: RequestCounts,
    run: dict[str, Any],
    ceiling: dict[str, Any] | None,
) -> dict[str, Any]:
    """A run's storage requests per second and by operation, worker and client apart.

    With a ceiling, the ratio of the *worker's* requests/s (the engine's work; the client's
    status polls are the benchmark's) to the ceiling's rate for the worker's mix."""
    seconds = run["client_wall_s"]
    total = worker.total + client.total
    worker_ops = by_operation_name(worker)
    by_operation = Counter(worker_ops) + Counter(by_operation_name(client))
    out: dict[str, Any] = {
        "worker": worker.total,
        "client": client.total,
        "total": total,
        "per_s": round(total / seconds, 1),
        "worker_per_s": round(worker.total / seconds, 1),
        "per_orchestration": round(total / run["orchestrations"], 2),
        "by_operation": dict(sorted(by_operation.items())),
        "worker_by_operation": worker_ops,
    }
    if ceiling is not None:
        rate = mix_rate(ceiling, worker_ops)
        out["ceiling_per_s_for_worker_mix"] = round(rate, 1)
        out["ratio_to_ceiling"] = round(worker.total / seconds / rate, 3)
    return out


def batch_timeout(count: int) -> float:
    """How long a batch of ``count`` orchestrations may take: a burst of 1,000 on a 2-core
    machine runs breadth-first (every instance's first step before anyone's last), so the
    first completions come late; never less than 10 minutes."""
    return max(600.0, 2.0 * count)


async def sequence(
    target: StorageTarget,
    progress: Progress,
    *,
    count: int = 20,
    compare_sessions: bool = True,
    timeout: float | None = None,
    ceiling_count: int | None = None,
) -> Report:
    """N orchestrations x 5 sequential activities, extended sessions on (and off); with
    ``ceiling_count``, the request ceiling first (``bench ceiling``) and each run's ratio."""
    report = Report("sequence")
    report.environment = {"machine": machine_info(), "storage": target.description}
    modes = [True, False] if compare_sessions else [target.settings.extended_sessions]
    runs: dict[str, dict[str, Any]] = {}
    settings: AzureStorageSettings | None = None
    limit = None
    if ceiling_count is not None:
        limit = await measure_ceiling(target.settings, progress, count=ceiling_count)
        add_ceiling_rows(report, limit)
    for sessions in modes:
        label = f"extended sessions {'on' if sessions else 'off'}"
        settings = target.hub("seq", extended_sessions=sessions)
        async with in_process(settings) as rt:
            counters = (rt.worker_backend.request_counter, rt.client_backend.request_counter)
            before = [c.snapshot() for c in counters]
            meter = CpuMeter(
                {"azurite": [target.description.get("pid")], "client + worker": [os.getpid()]}
            )
            meter.start()
            runs[label] = await run_batch(
                rt.client, count, progress, label, timeout=timeout or batch_timeout(count)
            )
            runs[label]["cpu"] = meter.stop()
            used = [c.snapshot() - b for c, b in zip(counters, before, strict=False)]
        runs[label]["storage_requests"] = storage_requests(used[0], used[1], runs[label], limit)
        _sequence_rows(report, label, runs[label])
        report.row(f"{label}: CPU (cores busy)", describe(runs[label]["cpu"]))
    assert settings is not None
    report.settings = {
        **settings_info(settings),
        "count": count,
        "activities_per_orchestration": SEQUENCE_LENGTH,
        "max_concurrent_activities": 10,
        "workers": "1 (in this process)",
    }
    report.settings.pop("extended_sessions", None)
    report.settings.pop("task_hub", None)
    report.results = {"runs": runs}
    if limit is not None:
        report.results["ceiling"] = limit
        report.notes.append(
            "ratio to the ceiling = the worker's storage requests/s (over the client's wall "
            "time; the client's status polls are the benchmark's) / the ceiling's rate for "
            "the same mix of operations, each costed at its measured phase rate (see bench "
            "ceiling). A guide, not a bound: it can pass 100 % (a run's receives are often "
            "empty, the ceiling's take 32 messages; the machine's load moves between the two)"
        )
    if len(runs) == 2:
        on, off = runs["extended sessions on"], runs["extended sessions off"]
        ratio = on["orchestrations_per_s"] / off["orchestrations_per_s"]
        report.results["sessions_on_vs_off_throughput_ratio"] = round(ratio, 3)
        report.row(
            "throughput ratio sessions on/off",
            fmt_ratio(on["orchestrations_per_s"], off["orchestrations_per_s"]),
        )
        report.row(
            "p50 latency ratio sessions on/off",
            fmt_ratio(on["latency_s"]["p50"], off["latency_s"]["p50"]),
        )
    report.notes.append(
        "throughput = orchestrations / (last completion - first creation), from the stored "
        "instance timestamps; the client, the worker and Azurite share this machine's cores"
    )
    return report


async def fanout(
    target: StorageTarget,
    progress: Progress,
    *,
    size: int = 1000,
    timeout: float = 1800,
    activity_prefetch: int | None = None,
) -> Report:
    """One orchestration with ``size`` parallel activities: time to completion."""
    report = Report("fanout")
    report.environment = {"machine": machine_info(), "storage": target.description}
    settings = target.hub("fan")
    async with in_process(settings, activity_prefetch=activity_prefetch) as rt:
        task = progress.add_task(f"fan-out of {size} activities", total=None)
        wall = time.perf_counter()
        instance_id = await rt.client.schedule_new_orchestration(bench_fanout, input=size)
        (state,) = await wait_all(rt.client, [instance_id], timeout=timeout, poll=0.1)
        wall = time.perf_counter() - wall
        progress.remove_task(task)
        history = await rt.client.get_orchestration_history(instance_id)
        final = await rt.client.get_orchestration_state(instance_id)
    seconds = elapsed(state)
    output = final.get_output() if final is not None else None
    if output != size * (size + 1) // 2:
        raise RuntimeError(f"fan-out returned {output!r}, not the expected sum")
    report.settings = {
        **settings_info(settings),
        "size": size,
        "max_concurrent_activities": 10,
        "activity_prefetch": activity_prefetch or "backend default",
    }
    report.settings.pop("task_hub", None)
    report.results = {
        "activities": size,
        "time_to_completion_s": round(seconds, 4),
        "client_wall_s": round(wall, 4),
        "activities_per_s": round(size / seconds, 3),
        "history_events": len(history),
    }
    report.row("activities", str(size))
    report.row("time to completion", fmt_seconds(seconds))
    report.row("activities/s", f"{size / seconds:.1f}")
    report.row("history events", str(len(history)))
    report.notes.append(
        "Azurite's queue receive slows with queue depth (ARCHITECTURE.md §7): a deep work-item "
        "queue costs more here than on Azure Storage"
    )
    return report
