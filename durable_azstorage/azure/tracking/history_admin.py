"""Management operations of ``AzureStorageBackend`` that need more than the Backend basics.

* ``replace_history`` (rewind): the rewritten events are committed as a *replacing*
  generation of the same execution through ``HistoryStore.commit`` (ETag-guarded against the
  sentinel just read, so a concurrent episode loses or wins cleanly), then the Instances row
  is written. Order as in a checkpoint: history (the authority) first, then the index.
* **Stale index** tooling. The History sentinel is the authority on an instance's execution
  and runtime status; the Instances row is an index written after it (ARCHITECTURE.md §5),
  so a crash in between leaves the row behind until the next message for that instance
  repairs it — for an ended instance, never. ``find_stale`` joins one scan of the sentinels
  (``RowKey eq 'sentinel'``) with one scan of the Instances rows; ``repair_stale`` rewrites
  each stale row from the history (``state_from_history``, as crash recovery does).

Kinds of disagreement (``StaleInstance.problem``):

* ``status``: same execution, different runtime status (crash between history and row);
* ``execution``: the row names another execution and is not Pending (a Pending row with
  another execution is a replacement waiting for its start message, which is fine);
* ``missing-row``: history without an Instances row (a purge that stopped half-way);
  repair re-creates the row;
* ``missing-history``: a non-Pending row without history; not repairable from history, so
  ``repair`` leaves it (purge the instance to clean up).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from azure.data.tables.aio import TableClient

from durable_azstorage.azure.storage.naming import unescape_key
from durable_azstorage.azure.storage.retry import TransientRetry
from durable_azstorage.azure.tracking.history_derivation import state_from_history
from durable_azstorage.azure.tracking.history_rows import Sentinel, parse_sentinel
from durable_azstorage.azure.tracking.history_store import SENTINEL_ROW, HistoryStore
from durable_azstorage.azure.tracking.instance_store import InstanceStore
from durable_azstorage.azure.tracking.sessions import SessionCache
from durable_azstorage.model.errors import (
    ConcurrencyConflictError,
    OrchestrationNotFoundError,
)
from durable_azstorage.model.history import HistoryEvent
from durable_azstorage.model.query import OrchestrationQuery
from durable_azstorage.model.stale import REPAIRABLE, StaleInstance
from durable_azstorage.model.state import InstanceState
from durable_azstorage.model.status import OrchestrationStatus

_CONCURRENCY = 8


async def replace_history(
    history: HistoryStore,
    instances: InstanceStore,
    sessions: SessionCache,
    instance_id: str,
    events: Sequence[HistoryEvent],
    state: InstanceState,
) -> None:
    """``Backend.replace_history`` on Azure (see the module docstring)."""
    loaded = await history.load(instance_id)
    current = loaded.sentinel.execution_id
    if current is None:
        if await instances.get(instance_id, fetch_payloads=False) is None:
            raise OrchestrationNotFoundError(instance_id)
    if current is None or current != state.execution_id:
        raise ConcurrencyConflictError(
            f"instance {instance_id!r} now runs execution {current!r}, not "
            f"{state.execution_id!r}; its history was not replaced"
        )
    sessions.discard(instance_id)
    await history.commit(
        instance_id,
        expected=loaded.sentinel,
        new_events=events,
        new_execution=True,
        execution_id=current,
        consumed_message_ids=(),
        runtime_status=state.runtime_status,
        completed_at=state.completed_at,
    )
    await instances.upsert(state)


async def _sentinels(table: TableClient, retry: TransientRetry) -> dict[str, Sentinel]:
    async def scan() -> list[Any]:
        pager = table.query_entities("RowKey eq @rk", parameters={"rk": SENTINEL_ROW})
        return [e async for e in pager]

    found: dict[str, Sentinel] = {}
    for row in await retry.call(scan):
        instance_id = unescape_key(str(row["PartitionKey"]))
        sentinel = parse_sentinel(row, instance_id)
        if sentinel.execution_id is not None:
            found[instance_id] = sentinel
    return found


async def _rows(instances: InstanceStore) -> dict[str, InstanceState]:
    query = OrchestrationQuery(page_size=1000)
    rows: dict[str, InstanceState] = {}
    while True:
        page = await instances.query(query)
        rows.update((s.instance_id, s) for s in page.items)
        if page.continuation_token is None:
            return rows
        query = OrchestrationQuery(page_size=1000, continuation_token=page.continuation_token)


def _problem(row: InstanceState | None, sentinel: Sentinel | None) -> str | None:
    if sentinel is None:
        if row is None or row.runtime_status is OrchestrationStatus.PENDING:
            return None
        return "missing-history"
    if row is None:
        return "missing-row"
    if row.execution_id != sentinel.execution_id:
        return None if row.runtime_status is OrchestrationStatus.PENDING else "execution"
    if sentinel.runtime_status is not None and row.runtime_status is not sentinel.runtime_status:
        return "status"
    return None


async def find_stale(
    history_table: TableClient, instances: InstanceStore, retry: TransientRetry
) -> list[StaleInstance]:
    """Every instance whose row disagrees with its sentinel, sorted by instance id."""
    sentinels, rows = await asyncio.gather(_sentinels(history_table, retry), _rows(instances))
    stale: list[StaleInstance] = []
    for instance_id in sorted(set(sentinels) | set(rows)):
        row, sentinel = rows.get(instance_id), sentinels.get(instance_id)
        problem = _problem(row, sentinel)
        if problem is not None:
            stale.append(
                StaleInstance(
                    instance_id=instance_id,
                    problem=problem,
                    row_status=row.runtime_status if row else None,
                    history_status=sentinel.runtime_status if sentinel else None,
                    row_execution_id=row.execution_id if row else None,
                    history_execution_id=sentinel.execution_id if sentinel else None,
                )
            )
    return stale


async def repair_stale(
    history: HistoryStore,
    instances: InstanceStore,
    sessions: SessionCache,
    stale: Sequence[StaleInstance],
) -> list[StaleInstance]:
    """Rewrite the repairable rows from history; returns the ones repaired.

    Each instance is re-read first, so one that moved on since ``find_stale`` is left alone.
    """
    gate = asyncio.Semaphore(_CONCURRENCY)
    repaired: list[StaleInstance] = []

    async def repair(item: StaleInstance) -> None:
        async with gate:
            loaded = await history.load(item.instance_id)
            found = await instances.get(item.instance_id, fetch_payloads=True)
            previous = found[0] if found is not None else None
            sentinel = loaded.sentinel
            if not loaded.events or _problem(previous, sentinel) not in REPAIRABLE:
                return
            state = state_from_history(
                item.instance_id,
                loaded.events,
                status=sentinel.runtime_status or OrchestrationStatus.RUNNING,
                completed_at=sentinel.completed_at,
                previous=previous,
                custom_status=sentinel.custom_status,
            )
            if state is None:
                return
            sessions.discard(item.instance_id)
            await instances.upsert(state)
            repaired.append(item)

    await asyncio.gather(*(repair(i) for i in stale if i.repairable))
    return sorted(repaired, key=lambda i: i.instance_id)
