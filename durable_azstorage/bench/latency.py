"""``bench latency``: how long one orchestration takes when it arrives at an idle worker.

An idle worker polls each queue with an exponential back-off (50 ms doubling up to
``max_poll_interval``, 10 s by default; the .NET provider backs off to 30 s). A start message
from *another process* is seen at the next poll, or sooner through the wake-up signal (the
client touches one blob that idle workers read every ``wakeup_interval``). A client sharing the
worker's backend (same process) wakes the poller at once. Both are measured when
``compare_shared`` is set, and the ratio reported.
"""

from __future__ import annotations

import asyncio
from typing import Any

from rich.progress import Progress

from durable_azstorage.bench.environment import (
    StorageTarget,
    machine_info,
    settings_info,
)
from durable_azstorage.bench.report import Report, fmt_ratio, fmt_seconds
from durable_azstorage.bench.runtime import elapsed, in_process, percentile, wait_all
from durable_azstorage.bench.workload import bench_single

MIN_POLL = 0.05  # the control and work-item receivers' shortest poll interval


def poll_interval_after(idle: float, max_poll: float) -> float:
    """The back-off interval reached after ``idle`` seconds without messages."""
    interval, waited = MIN_POLL, 0.0
    while waited + interval <= idle and interval < max_poll:
        waited += interval
        interval = min(interval * 2, max_poll)
    return interval


async def _samples(
    target: StorageTarget,
    progress: Progress,
    *,
    shared: bool,
    idle: float,
    repeat: int,
    idle_polls: list[float],
) -> list[float]:
    """Latency samples; appends the worker's queue receives per second while idle to
    ``idle_polls``."""
    settings = target.hub("lat")
    label = "client in the worker's process" if shared else "separate client"
    samples: list[float] = []
    async with in_process(settings, shared_backend=shared) as rt:
        task = progress.add_task(f"{label}: idle {idle:g}s, then one orchestration", total=repeat)
        for i in range(repeat):
            before = rt.worker_backend.request_counter.snapshot()
            await asyncio.sleep(idle)
            polled = rt.worker_backend.request_counter.snapshot() - before
            idle_polls.append(polled.counts.get(("queue", "GetMessages"), 0) / max(idle, 1e-3))
            instance_id = await rt.client.schedule_new_orchestration(bench_single, input=i)
            (state,) = await wait_all(rt.client, [instance_id], timeout=idle + 120, poll=0.05)
            samples.append(elapsed(state))
            progress.update(task, completed=i + 1)
        progress.remove_task(task)
    return samples


def _summary(samples: list[float]) -> dict[str, Any]:
    return {
        "samples_s": [round(s, 4) for s in samples],
        "p50": round(percentile(samples, 50), 4),
        "p99": round(percentile(samples, 99), 4),
        "max": round(max(samples), 4),
    }


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
    idle_polls: list[float] = []
    for label, shared in modes.items():
        results[label] = _summary(
            await _samples(
                target, progress, shared=shared, idle=idle, repeat=repeat, idle_polls=idle_polls
            )
        )
        r = results[label]
        report.row(f"{label}: p50 / p99", f"{fmt_seconds(r['p50'])} / {fmt_seconds(r['p99'])}")
    expected = poll_interval_after(idle, max_poll)
    results["poll_interval_after_idle_s"] = expected
    report.row("worker poll interval after the idle period", fmt_seconds(expected))
    queues = target.settings.partition_count + 1
    polls = sum(idle_polls) / len(idle_polls)
    effective = queues / polls if polls else float("inf")
    results["idle_queue_receives_per_s"] = round(polls, 3)
    results["effective_poll_interval_per_queue_s"] = round(effective, 3)
    report.row("worker queue receives/s while idle (measured)", f"{polls:.2f}")
    report.row(f"effective poll interval per queue ({queues} queues)", fmt_seconds(effective))
    if compare_shared:
        sep, same = results["separate client"], results["client in the worker's process"]
        results["separate_vs_shared_p50_ratio"] = round(sep["p50"] / same["p50"], 3)
        report.row("p50 ratio separate/shared", fmt_ratio(sep["p50"], same["p50"]))
    report.results = results
    if effective < expected / 4:
        report.notes.append(
            f"measured: the idle worker polled its queues every {effective:.2f} s on average, "
            f"not every {expected:g} s as the back-off alone would: the orchestration "
            "dispatcher calls lock_next_orchestration with a 1 s timeout, and each call that "
            "restarts demand wakes every control-queue receiver (resetting its back-off to "
            "50 ms). So a start message from another process is seen within ~0.1-0.4 s, at the "
            "price of idle requests (bench cost)."
        )
    wakeup = target.settings.wakeup_interval
    if wakeup is None:
        seen = "waits up to that long for the next poll"
    else:
        seen = (
            f"is seen at the next poll or the next read of the wake-up signal (every "
            f"{wakeup.total_seconds():g} s while idle), whichever comes first; this scenario "
            "starts each sample a whole number of wake-up intervals after the worker started, "
            "so it measures the worst phase: arrivals at random times wait half as long on "
            "average"
        )
    report.notes.append(
        f"an idle worker's pollers back off from 50 ms doubling to max_poll_interval "
        f"({max_poll:g} s; .NET: 30 s); after {idle:g} s idle the interval is {expected:g} s, "
        f"so a start message from another process {seen}. "
        "Once it is seen, the activity request and its result are messages the worker sends "
        "itself, which wake its own pollers at once. A client sharing the worker's backend "
        "wakes the control-queue poller too. Lower --max-poll-interval or wakeup_interval "
        "trade idle requests (see bench cost) for latency."
    )
    return report
