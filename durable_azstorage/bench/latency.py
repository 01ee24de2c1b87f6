"""``bench latency``: how long one orchestration takes when it arrives at an idle worker.

An idle worker's queue receivers back off from 50 ms, doubling, to ``max_poll_interval``
(10 s by default; the .NET provider backs off to 30 s). A start message from *another
process* is seen at the next poll, or sooner through the wake-up signal: the client touches
one blob after it enqueued, and the worker reads that blob every 50 ms right after work, then
every ``wakeup_backoff_ratio`` (8 %) of its idle time, at most every ``wakeup_interval``. A
client sharing the worker's backend (same process) wakes the poller at once. Both are
measured when ``compare_shared`` is set, and the ratio reported. The "separate client" has
its own backend on the same event loop: to storage and to the worker it is another process.

Latency is taken from the instance's stored timestamps (created to completed), and also as
the client sees it: from the start call to ``wait_for_orchestration_completion`` returning,
which adds the client's own status polling.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from datetime import timedelta
from typing import Any

from rich.progress import Progress

from durable_azstorage.azure.messaging.wakeup import WATCH_FASTEST, queue_backoff
from durable_azstorage.azure.storage.metrics import RequestCounts
from durable_azstorage.bench.environment import (
    StorageTarget,
    machine_info,
    settings_info,
)
from durable_azstorage.bench.report import Report, fmt_ratio, fmt_seconds
from durable_azstorage.bench.runtime import by_operation_name, elapsed, in_process, percentile
from durable_azstorage.bench.workload import bench_single
from durable_azstorage.model.polling import IdleBackoff
from durable_azstorage.model.status import OrchestrationStatus


def poll_interval_after(idle: float, max_poll: float) -> float:
    """The queue receivers' back-off interval reached after ``idle`` seconds without work."""
    return queue_backoff(timedelta(seconds=max_poll)).interval_after(idle)


def watch_interval_after(idle: float, wakeup_interval: float, ratio: float) -> float:
    """The wake-up watch's interval after ``idle`` seconds without work."""
    slowest = max(WATCH_FASTEST, wakeup_interval)
    return IdleBackoff(fastest=WATCH_FASTEST, slowest=slowest, ratio=ratio).interval_after(idle)


async def _samples(
    target: StorageTarget,
    progress: Progress,
    *,
    shared: bool,
    idle: float,
    repeat: int,
    idle_requests: list[RequestCounts],
) -> tuple[list[float], list[float]]:
    """Latency samples, stored and as the client saw them; appends the worker's storage
    requests during each idle period to ``idle_requests``."""
    settings = target.hub("lat")
    label = "client in the worker's process" if shared else "separate client"
    samples: list[float] = []
    seen: list[float] = []
    async with in_process(settings, shared_backend=shared) as rt:
        task = progress.add_task(f"{label}: idle {idle:g}s, then one orchestration", total=repeat)
        for i in range(repeat):
            before = rt.worker_backend.request_counter.snapshot()
            await asyncio.sleep(idle)
            idle_requests.append(rt.worker_backend.request_counter.snapshot() - before)
            started = time.perf_counter()
            instance_id = await rt.client.schedule_new_orchestration(bench_single, input=i)
            state = await rt.client.wait_for_orchestration_completion(
                instance_id, fetch_payloads=False, timeout=idle + 120
            )
            seen.append(time.perf_counter() - started)
            if state.runtime_status is not OrchestrationStatus.COMPLETED:
                raise RuntimeError(f"{instance_id}: {state.runtime_status.value}")
            samples.append(elapsed(state))
            progress.update(task, completed=i + 1)
        progress.remove_task(task)
    return samples, seen


def _percentiles(samples: list[float]) -> dict[str, Any]:
    return {
        "samples_s": [round(s, 4) for s in samples],
        "p50": round(percentile(samples, 50), 4),
        "p99": round(percentile(samples, 99), 4),
        "max": round(max(samples), 4),
    }


def _summary(samples: list[float], seen: list[float]) -> dict[str, Any]:
    return {**_percentiles(samples), "seen_by_client": _percentiles(seen)}


async def latency(
    target: StorageTarget,
    progress: Progress,
    *,
    idle: float = 10.0,
    repeat: int = 3,
    compare_shared: bool = True,
) -> Report:
    """Start-to-completion latency of a one-activity orchestration after ``idle`` seconds."""
    report = Report("latency")
    report.environment = {"machine": machine_info(), "storage": target.description}
    max_poll = target.settings.max_poll_interval.total_seconds()
    report.settings = {**settings_info(target.settings), "idle_s": idle, "repeat": repeat}
    report.settings.pop("task_hub", None)
    modes = {"separate client": False}
    if compare_shared:
        modes["client in the worker's process"] = True
    results: dict[str, Any] = {}
    idle_requests: list[RequestCounts] = []
    for label, shared in modes.items():
        samples, seen = await _samples(
            target, progress, shared=shared, idle=idle, repeat=repeat, idle_requests=idle_requests
        )
        r = results[label] = _summary(samples, seen)
        c = r["seen_by_client"]
        report.row(f"{label}: p50 / p99", f"{fmt_seconds(r['p50'])} / {fmt_seconds(r['p99'])}")
        report.row(
            "  as the client saw it (its status polls included)",
            f"{fmt_seconds(c['p50'])} / {fmt_seconds(c['p99'])}",
        )
    settings = target.settings
    wakeup = settings.wakeup_interval
    queues = poll_interval_after(idle, max_poll)
    results["poll_interval_after_idle_s"] = queues
    report.row("queue receivers' poll interval after the idle period", fmt_seconds(queues))
    watch: float | None = None
    if wakeup is not None:
        watch = watch_interval_after(idle, wakeup.total_seconds(), settings.wakeup_backoff_ratio)
        results["wakeup_watch_interval_after_idle_s"] = watch
        report.row("wake-up watch interval after the idle period", fmt_seconds(watch))
    seconds = idle * len(idle_requests)
    by_operation: Counter[str] = Counter()
    for counts in idle_requests:
        by_operation.update(by_operation_name(counts))
    per_s = sum(by_operation.values()) / max(seconds, 1e-3)
    results["idle_requests_per_s"] = round(per_s, 3)
    results["idle_requests_per_s_by_operation"] = [  # a list: dict values are client modes
        {"operation": op, "per_s": round(n / max(seconds, 1e-3), 3)}
        for op, n in sorted(by_operation.items())
    ]
    report.row(
        f"worker storage requests/s during the {idle:g} s idle periods",
        f"{per_s:.2f} ("
        + ", ".join(f"{op} {n / max(seconds, 1e-3):.1f}" for op, n in sorted(by_operation.items()))
        + ")",
    )
    if compare_shared:
        sep, same = results["separate client"], results["client in the worker's process"]
        results["separate_vs_shared_p50_ratio"] = round(sep["p50"] / same["p50"], 3)
        report.row("p50 ratio separate/shared", fmt_ratio(sep["p50"], same["p50"]))
    report.results = results
    if watch is None:
        seen_by = f"waits for the next poll ({fmt_seconds(queues)} apart after {idle:g} s idle)"
    else:
        seen_by = (
            f"is seen at the next poll of its queue ({fmt_seconds(queues)} apart after "
            f"{idle:g} s idle) or the next read of the wake-up signal ({fmt_seconds(watch)} "
            "apart), whichever comes first"
        )
    report.notes.append(
        f"queue receivers back off from 50 ms doubling to max_poll_interval ({max_poll:g} s; "
        ".NET: 30 s); the wake-up watch reads one blob every 50 ms right after work, then "
        f"every {settings.wakeup_backoff_ratio:g} x the idle time, at most every wakeup_interval"
        f"; a start message from another process {seen_by}. Once it is seen, the activity "
        "request is a message the worker sends itself (which wakes its own poller at once) "
        "and the result is handed over in process. A client sharing the worker's backend "
        "wakes the control-queue poller directly. wakeup_backoff_ratio and wakeup_interval "
        "trade idle requests (see bench cost) for latency."
    )
    return report
