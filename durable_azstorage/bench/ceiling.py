"""``bench ceiling``: the raw request rate the storage account serves this process.

A scenario's storage requests/s means little alone: on a 2-core machine running Azurite it is
bounded by what one Python process and the emulator can serve at all (ARCHITECTURE.md §7).
This measures that bound with the engine's own clients (``StorageClients``: one shared HTTP
session, the request-counting policy) and nothing of the engine above them, in four phases
on a scratch queue and table that are deleted afterwards:

* ``queue_put``: ``count`` PutMessage;
* ``queue_get``: GetMessages of up to 32 (the engine's receive size) until all are received;
* ``queue_delete``: ``count`` DeleteMessage;
* ``table_batch``: ``count // 4`` entity-group transactions of ``batch_rows`` upserts each
  (the engine commits an episode as one such batch).

Each phase keeps ``concurrency`` requests in flight, on connections opened before the
timing starts. ``mix_rate`` turns the per-phase rates
into the ceiling for a scenario's own mix of operations, the denominator of the ratio that
``bench sequence --with-ceiling`` reports.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from rich.progress import Progress

from durable_azstorage.azure.settings import AzureStorageSettings
from durable_azstorage.azure.storage.clients import StorageClients
from durable_azstorage.azure.storage.table_transactions import TableTransactions
from durable_azstorage.bench.environment import StorageTarget, machine_info
from durable_azstorage.bench.report import Report, fmt_seconds
from durable_azstorage.bench.runtime import percentile

RECEIVE_BATCH = 32  # messages per GetMessages, as the engine's receivers ask
MESSAGE_TEXT = "x" * 300  # about the size of an engine message (a JSON history event)

# (service, operation) -> the phase whose rate it is costed at by ``mix_rate``
PHASE_OF = {
    ("queue", "PutMessage"): "queue_put",
    ("queue", "GetMessages"): "queue_get",
    ("queue", "DeleteMessage"): "queue_delete",
    ("table", "Batch"): "table_batch",
}


class _Phase:
    """Times one phase and each of its requests; counts the responses the policy saw."""

    def __init__(self, clients: StorageClients) -> None:
        self._clients = clients
        self.latencies: list[float] = []

    async def timed(self, call: Awaitable[Any]) -> Any:
        start = time.perf_counter()
        result = await call
        self.latencies.append(time.perf_counter() - start)
        return result

    async def run(
        self,
        jobs: int,
        concurrency: int,
        job: Callable[[int], Awaitable[None]],
    ) -> dict[str, Any]:
        before = self._clients.counter.snapshot()
        next_job = iter(range(jobs))

        async def lane() -> None:
            for i in next_job:
                await job(i)

        wall, cpu = time.perf_counter(), time.process_time()
        await asyncio.gather(*(lane() for _ in range(max(1, min(concurrency, jobs)))))
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        requests = (self._clients.counter.snapshot() - before).total
        return {
            "requests": requests,
            "seconds": round(wall, 4),
            "requests_per_s": round(requests / wall, 1) if wall else 0.0,
            # near 1: this process is the limit; well below: the storage (or the machine) is
            "client_cpu_share": round(cpu / wall, 2) if wall else 0.0,
            "latency_s": {
                "p50": round(percentile(self.latencies, 50), 4),
                "p99": round(percentile(self.latencies, 99), 4),
            },
        }


async def measure(
    settings: AzureStorageSettings,
    progress: Progress,
    *,
    count: int = 1000,
    concurrency: int = 32,
    batch_rows: int = 4,
) -> dict[str, Any]:
    """The four phases on a scratch queue and table; the ``results`` of a ceiling report."""
    name = f"benchceiling{uuid.uuid4().hex[:10]}"
    batches = max(1, count // 4)
    phases: dict[str, dict[str, Any]] = {}
    task = progress.add_task("ceiling", total=4)
    async with StorageClients(settings) as clients:
        queue, table = clients.queue(name), clients.table(name)
        await queue.create_queue()
        await table.create_table()
        try:
            await _warm_up(queue, table, concurrency)
            phases["queue_put"] = await _put(clients, queue, count, concurrency)
            progress.advance(task)
            received: list[Any] = []
            phases["queue_get"] = await _get(clients, queue, count, concurrency, received)
            if not received:
                raise RuntimeError(
                    f"bench ceiling: queue {name} returned none of the {count} messages put"
                )
            phases["queue_get"]["messages_per_s"] = round(
                len(received) / phases["queue_get"]["seconds"], 1
            )
            progress.advance(task)
            phases["queue_delete"] = await _delete(clients, queue, received, concurrency)
            progress.advance(task)
            phases["table_batch"] = await _batch(clients, table, batches, concurrency, batch_rows)
            progress.advance(task)
        finally:
            await queue.delete_queue()
            await table.delete_table()
            progress.remove_task(task)
    requests = sum(p["requests"] for p in phases.values())
    seconds = sum(p["seconds"] for p in phases.values())
    return {
        "phases": phases,
        "requests": requests,
        "seconds": round(seconds, 4),
        "requests_per_s": round(requests / seconds, 1),
        "messages": count,
        "batches": batches,
        "batch_rows": batch_rows,
        "concurrency": concurrency,
        "load_average_at_end": machine_info()["load_average_at_start"],
    }


async def _warm_up(queue: Any, table: Any, concurrency: int) -> None:
    """Open the connections first, so that no phase pays for them (TLS on Azure)."""

    async def query() -> None:
        async for _ in table.query_entities("PartitionKey eq 'warm-up'"):
            pass

    await asyncio.gather(
        *(queue.get_queue_properties() for _ in range(concurrency)),
        *(query() for _ in range(concurrency)),
    )


async def _put(
    clients: StorageClients,
    queue: Any,
    count: int,
    concurrency: int,
) -> dict[str, Any]:
    phase = _Phase(clients)

    async def put(_: int) -> None:
        await phase.timed(queue.send_message(MESSAGE_TEXT))

    return await phase.run(count, concurrency, put)


async def _get(
    clients: StorageClients, queue: Any, count: int, concurrency: int, received: list[Any]
) -> dict[str, Any]:
    """Receive until ``count`` messages are held (hidden for 5 min, longer than the run)."""
    phase = _Phase(clients)
    empty_pages = 0

    async def get(_: int) -> None:
        nonlocal empty_pages
        while len(received) < count and empty_pages < 3 * concurrency:
            got = await phase.timed(_receive(queue))
            received.extend(got)
            empty_pages += not got

    return await phase.run(concurrency, concurrency, get)


async def _receive(queue: Any) -> list[Any]:
    """One GetMessages request, as ``azure.messaging.queues.MessageQueue.receive`` makes it."""
    pager = queue.receive_messages(
        messages_per_page=RECEIVE_BATCH, visibility_timeout=300, max_messages=RECEIVE_BATCH
    )
    async for page in pager.by_page():
        return [m async for m in page]
    return []


async def _delete(
    clients: StorageClients,
    queue: Any,
    received: list[Any],
    concurrency: int,
) -> dict[str, Any]:
    phase = _Phase(clients)

    async def delete(i: int) -> None:
        await phase.timed(queue.delete_message(received[i]))

    return await phase.run(len(received), concurrency, delete)


async def _batch(
    clients: StorageClients, table: Any, batches: int, concurrency: int, rows: int
) -> dict[str, Any]:
    phase = _Phase(clients)
    transactions = TableTransactions(table)  # what the engine commits through

    async def batch(i: int) -> None:
        operations = [
            (
                "upsert",
                {"PartitionKey": f"p{i:06d}", "RowKey": f"{r:016x}", "Payload": MESSAGE_TEXT},
            )
            for r in range(rows)
        ]
        await phase.timed(transactions.submit(operations))

    return await phase.run(batches, concurrency, batch)


def mix_rate(ceiling: dict[str, Any], by_operation: dict[str, int]) -> float:
    """Requests/s the ceiling allows for this mix of ``"service.Operation"`` counts.

    Each request is costed at its phase's rate; operations no phase measures (queries,
    single-row writes, blob reads) at the overall rate. Total requests / total cost.
    """
    phases, overall = ceiling["phases"], float(ceiling["requests_per_s"])
    total = sum(by_operation.values())
    cost = 0.0
    for key, n in by_operation.items():
        service, _, operation = key.partition(".")
        phase = PHASE_OF.get((service, operation))
        rate = float(phases[phase]["requests_per_s"]) if phase in phases else overall
        cost += n / rate if rate else 0.0
    return total / cost if cost else overall


async def ceiling(
    target: StorageTarget,
    progress: Progress,
    *,
    count: int = 1000,
    concurrency: int = 32,
    batch_rows: int = 4,
) -> Report:
    """The ceiling as a report of its own (``bench ceiling``)."""
    report = Report("ceiling")
    report.environment = {"machine": machine_info(), "storage": target.description}
    report.results = await measure(
        target.settings, progress, count=count, concurrency=concurrency, batch_rows=batch_rows
    )
    report.settings = {
        "messages": count,
        "batches": report.results["batches"],
        "batch_rows": batch_rows,
        "concurrency": concurrency,
        "receive_batch": RECEIVE_BATCH,
        "message_bytes": len(MESSAGE_TEXT),
    }
    add_rows(report, report.results)
    report.notes.append(
        "one Python process with the engine's clients and no engine; the ceiling a scenario "
        "can approach on this machine and account (the client and an emulator share the cores)"
    )
    return report


def add_rows(report: Report, results: dict[str, Any]) -> None:
    """The ceiling's table rows (also under ``bench sequence --with-ceiling``)."""
    for name, phase in results["phases"].items():
        lat = phase["latency_s"]
        extra = f", {phase['messages_per_s']:.0f} messages/s" if "messages_per_s" in phase else ""
        report.row(
            f"ceiling {name.replace('_', ' ')}: requests/s",
            f"{phase['requests_per_s']:.0f}{extra} (p50 {fmt_seconds(lat['p50'])}, "
            f"p99 {fmt_seconds(lat['p99'])}, client CPU "
            f"{phase['client_cpu_share']:.0%})",
        )
    report.row("ceiling, all phases: requests/s", f"{results['requests_per_s']:.0f}")
