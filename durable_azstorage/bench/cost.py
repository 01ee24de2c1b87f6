"""``bench cost``: storage requests (billed transactions) per orchestration, per activity, idle.

Counts come from the backends' ``RequestCounter`` (every response, by service and REST
operation). The worker and the client have separate backends and are counted separately; the
client's count is split into starting instances and polling for their status (the polling is
the benchmark's, an application waiting differently pays differently). After the run the
worker sits idle for ``settle`` seconds (its poll back-off reaches ``max_poll_interval``), then
its requests are counted over ``idle_window`` seconds: the standing cost of a deployment. The
requests of the settle period are reported too: what the pollers' fast start after work (the
wake-up watch's in particular) costs each time a burst of work ends.
"""

from __future__ import annotations

import asyncio
from typing import Any

from rich.progress import Progress
from rich.table import Table

from durable_azstorage.azure.storage.metrics import RequestCounts
from durable_azstorage.bench.environment import (
    StorageTarget,
    machine_info,
    settings_info,
)
from durable_azstorage.bench.report import Report
from durable_azstorage.bench.runtime import by_operation_name, in_process, wait_all
from durable_azstorage.bench.workload import SEQUENCE_LENGTH, bench_sequence


async def _sleep_with_progress(progress: Progress, label: str, seconds: float) -> None:
    task = progress.add_task(label, total=max(1, round(seconds)))
    step = 0.5
    waited = 0.0
    while waited < seconds:
        await asyncio.sleep(min(step, seconds - waited))
        waited += step
        progress.update(task, completed=min(waited, seconds))
    progress.remove_task(task)


async def cost(
    target: StorageTarget,
    progress: Progress,
    *,
    count: int = 10,
    settle: float = 25.0,
    idle_window: float = 30.0,
) -> Report:
    """Requests per orchestration / activity (worker and client apart), and idle requests."""
    report = Report("cost")
    report.environment = {"machine": machine_info(), "storage": target.description}
    settings = target.hub("cost")
    activities = count * SEQUENCE_LENGTH
    async with in_process(settings) as rt:
        worker_counter = rt.worker_backend.request_counter
        client_counter = rt.client_backend.request_counter
        w0, c0 = worker_counter.snapshot(), client_counter.snapshot()
        ids = [
            await rt.client.schedule_new_orchestration(bench_sequence, input=SEQUENCE_LENGTH)
            for _ in range(count)
        ]
        c1 = client_counter.snapshot()
        task = progress.add_task(
            f"{count} orchestrations x {SEQUENCE_LENGTH} activities", total=count
        )
        await wait_all(
            rt.client, ids, timeout=600, on_done=lambda n: progress.update(task, completed=n)
        )
        progress.remove_task(task)
        worker_run = worker_counter.snapshot() - w0
        client_start = c1 - c0
        client_poll = client_counter.snapshot() - c1
        idle: RequestCounts | None = None
        settling: RequestCounts | None = None
        if idle_window > 0:
            s0 = worker_counter.snapshot()
            await _sleep_with_progress(progress, "idle: letting the poll back-off settle", settle)
            i0 = worker_counter.snapshot()
            settling = i0 - s0
            await _sleep_with_progress(progress, "idle: counting requests", idle_window)
            idle = worker_counter.snapshot() - i0
    report.settings = {
        **settings_info(settings),
        "count": count,
        "activities_per_orchestration": SEQUENCE_LENGTH,
        "settle_s": settle,
        "idle_window_s": idle_window,
    }
    report.settings.pop("task_hub", None)

    breakdown = Table(title="requests by operation", title_justify="left")
    for name in ("operation", "worker", "client start", "worker+start per orch.", "per activity"):
        breakdown.add_column(name, justify="left" if name == "operation" else "right")
    worker_ops, start_ops = by_operation_name(worker_run), by_operation_name(client_start)
    for op in sorted(set(worker_ops) | set(start_ops)):
        both = worker_ops.get(op, 0) + start_ops.get(op, 0)
        breakdown.add_row(
            op,
            str(worker_ops.get(op, 0)),
            str(start_ops.get(op, 0)),
            f"{both / count:.2f}",
            f"{both / activities:.2f}",
        )
    report.tables.append(breakdown)

    per_orch = (worker_run.total + client_start.total) / count
    results: dict[str, Any] = {
        "orchestrations": count,
        "activities": activities,
        "worker": {
            "total": worker_run.total,
            "by_service": worker_run.by_service(),
            "by_operation": worker_ops,
        },
        "client_start": {
            "total": client_start.total,
            "by_service": client_start.by_service(),
            "by_operation": start_ops,
        },
        "client_status_polls": {
            "total": client_poll.total,
            "by_operation": by_operation_name(client_poll),
        },
        "requests_per_orchestration": round(per_orch, 3),
        "requests_per_activity": round(per_orch / SEQUENCE_LENGTH, 3),
        "worker_requests_per_orchestration": round(worker_run.total / count, 3),
        "client_start_requests_per_orchestration": round(client_start.total / count, 3),
    }
    report.row("requests per orchestration (worker + start)", f"{per_orch:.1f}")
    report.row("  of which worker", f"{worker_run.total / count:.1f}")
    report.row("  of which client start", f"{client_start.total / count:.1f}")
    report.row(
        f"requests per activity ({SEQUENCE_LENGTH} per orch.)", f"{per_orch / SEQUENCE_LENGTH:.1f}"
    )
    report.row(
        "worker by service",
        ", ".join(f"{k} {v / count:.1f}" for k, v in sorted(worker_run.by_service().items()))
        + " /orch.",
    )
    report.row("client status polls (not counted above)", str(client_poll.total))
    if settling is not None and settle > 0:
        results["settle"] = {
            "window_s": settle,
            "requests": settling.total,
            "by_operation": by_operation_name(settling),
        }
        report.row(
            f"requests in the {settle:g} s after the last completion (back-off settling)",
            f"{settling.total} ("
            + ", ".join(f"{k} {v}" for k, v in by_operation_name(settling).items())
            + ")",
        )
    if idle is not None and idle_window > 0:
        per_minute = idle.total * 60 / idle_window
        per_partition = per_minute / settings.partition_count
        max_poll = settings.max_poll_interval.total_seconds()
        expected = (settings.partition_count + 1) * 60 / max_poll
        results["idle"] = {
            "window_s": idle_window,
            "requests": idle.total,
            "requests_per_minute": round(per_minute, 2),
            "requests_per_minute_per_partition": round(per_partition, 2),
            "by_operation": by_operation_name(idle),
            "expected_queue_polls_per_minute": round(expected, 2),
        }
        report.row("idle requests per minute (worker)", f"{per_minute:.1f}")
        report.row("idle requests per minute per partition", f"{per_partition:.1f}")
        report.row(
            "idle requests per minute by operation",
            ", ".join(f"{k} {v * 60 / idle_window:.0f}" for k, v in by_operation_name(idle).items())
            or "none",
        )
        report.notes.append(
            f"expected idle queue polls: ({settings.partition_count} control queues + 1 work-item "
            f"queue) x 60 / max_poll_interval {max_poll:g} s = {expected:.1f}/min; lease "
            "renewals and scans add table requests where the partition manager is wired in, "
            "and the wake-up signal one blob read per wakeup_interval once the worker has been "
            "idle for wakeup_interval / wakeup_backoff_ratio (25 s by default; faster before)"
        )
        polls_per_minute = idle.counts.get(("queue", "GetMessages"), 0) * 60 / idle_window
        if polls_per_minute > 3 * expected:
            report.notes.append(
                "measured idle queue polls are far above the back-off's: something restarted "
                "the receivers' back-off during the idle window (only a poll that finds a "
                "message does), e.g. work from another process or a timer"
            )
    report.results = results
    return report
