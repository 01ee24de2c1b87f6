"""``HistoryStore``: an instance's event-sourced history in the ``{hub}History`` table.

Layout (DTFX_REFERENCE.md §1.1): PartitionKey = escaped instance id; one row per event with
RowKey = 16 upper-case hex digits of its index; a ``sentinel`` row (sorts after every hex key,
so it is the last row a query returns) whose ETag guards the whole partition.

The sentinel is the commit record. It names the current execution (``ExecutionId``), which
rows belong to it (``FirstRow`` .. ``FirstRow + EventCount - 1``), the episode number, the ids
of the queue messages the last episode consumed, the runtime status and completion time.
Rows outside that range, or with another ``ExecutionId``, are leftovers and never read back.

A commit is one entity-group transaction per <= 100 operations / < 4 MiB, each carrying the
sentinel with an ``If-Match`` on the ETag returned by the previous one. Only the *final*
transaction advances the sentinel's counts; earlier ones merely re-stamp it (and claim the
ETag chain, so a competing writer fails on its first transaction and writes nothing). A crash
between transactions therefore leaves the committed history exactly as it was: the new rows
lie beyond ``EventCount`` and are overwritten by the next commit.

Continue-as-new writes the new generation from row 0 when it fits in one transaction (the
overwrite is atomic with the sentinel). A larger new generation is written after the live
rows instead (``FirstRow`` moves), because overwriting rows 0.. in an early transaction would
corrupt the committed generation if the commit stopped half-way.

Properties above 60 KiB (UTF-16) are uploaded to payload blobs before the first transaction
(``{Property}BlobName`` columns) and resolved on load. The blobs of a generation replaced by
continue-as-new are deleted after the replacing commit when this process knows them (it
loaded or wrote that generation); unknown ones stay until purge.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.data.tables import TableEntity, UpdateMode
from azure.data.tables.aio import TableClient

from durable_azstorage.azure.storage.naming import escape_key
from durable_azstorage.azure.storage.payloads import (
    BlobLedger,
    PayloadNotFoundError,
    PayloadStore,
    history_blob_name,
    instance_prefix,
)
from durable_azstorage.azure.storage.retry import TransientRetry
from durable_azstorage.azure.storage.table_transactions import TableTransactions
from durable_azstorage.azure.tracking.history_rows import (
    EMPTY_SENTINEL,
    PendingBlob,
    RecordedCustomStatus,
    Sentinel,
    blob_references,
    entity_to_event,
    estimated_size,
    event_columns,
    offload_properties,
    parse_sentinel,
    sentinel_columns,
)
from durable_azstorage.azure.tracking.local_tasks import EMPTY as EMPTY_LOCAL_TASKS
from durable_azstorage.azure.tracking.local_tasks import LocalTasks
from durable_azstorage.model.errors import ConcurrencyConflictError, DurableTaskError
from durable_azstorage.model.history import HistoryEvent
from durable_azstorage.model.status import OrchestrationStatus

SENTINEL_ROW = "sentinel"
MAX_BATCH_OPERATIONS = 100  # entity-group transaction limit (Azurite answers more with garbage)
MAX_BATCH_BYTES = 4 * 1024 * 1024 - 128 * 1024  # 4 MiB limit less headroom for the framing
_OP_OVERHEAD = 1024  # multipart boundary, request line and headers of one operation
_CONCURRENCY = 8

BatchHook = Callable[[int, int], Awaitable[None]]
"""``hook(index, count)`` before each transaction of a commit; tests raise to simulate a crash."""


class HistoryCorruptedError(DurableTaskError):
    """A row the sentinel vouches for is missing or belongs to another execution."""


@dataclass(frozen=True, slots=True, kw_only=True)
class LoadedHistory:
    events: tuple[HistoryEvent, ...]  # the current execution only, in order
    sentinel: Sentinel


@dataclass(slots=True)
class _Batch:
    rows: list[dict[str, Any]] = field(default_factory=list)
    size: int = 0


def row_key(index: int) -> str:
    return f"{index:016X}"


class HistoryStore:
    """Loads and commits the History rows of instances (one table client per task hub)."""

    def __init__(
        self,
        table: TableClient,
        payloads: PayloadStore,
        *,
        retry: TransientRetry | None = None,
        batch_hook: BatchHook | None = None,
        max_batch_operations: int = MAX_BATCH_OPERATIONS,
        max_batch_bytes: int = MAX_BATCH_BYTES,
    ) -> None:
        if not 2 <= max_batch_operations <= MAX_BATCH_OPERATIONS:
            raise ValueError(f"max_batch_operations: must be in 2..{MAX_BATCH_OPERATIONS}")
        self._table = table
        self._transactions = TableTransactions(table)
        self._payloads = payloads
        self._retry = retry if retry is not None else TransientRetry()
        self.batch_hook = batch_hook
        self._max_ops = max_batch_operations
        self._max_bytes = max_batch_bytes
        self._ledger = BlobLedger()

    # ------------------------------------------------------------------ load

    async def load(self, instance_id: str, *, execution_id: str | None = None) -> LoadedHistory:
        """The current execution's events and the sentinel (``EMPTY_SENTINEL`` if none).

        With ``execution_id``, the events are returned only if the stored execution is that
        one (else no events, and the sentinel as stored): a client that replaced an ended
        instance must not read the old execution's history as the new one's.
        One table query (a page per 1,000 rows) plus one blob read per offloaded property.
        """
        try:
            return await self._load(instance_id, execution_id)
        except PayloadNotFoundError:
            # a continue-as-new committed meanwhile and removed the old generation's blobs
            return await self._load(instance_id, execution_id)

    async def _load(self, instance_id: str, execution_id: str | None) -> LoadedHistory:
        pk = escape_key(instance_id)

        async def query() -> list[TableEntity]:
            pager = self._table.query_entities("PartitionKey eq @pk", parameters={"pk": pk})
            return [e async for e in pager]

        rows = await self._retry.call(query)
        if not rows or rows[-1].get("RowKey") != SENTINEL_ROW:
            return LoadedHistory(events=(), sentinel=EMPTY_SENTINEL)
        sentinel_row = rows.pop()
        sentinel = parse_sentinel(sentinel_row, instance_id)
        if sentinel.execution_id is None or sentinel.event_count == 0:
            return LoadedHistory(events=(), sentinel=sentinel)
        if execution_id is not None and execution_id != sentinel.execution_id:
            return LoadedHistory(events=(), sentinel=sentinel)
        by_key = {r["RowKey"]: r for r in rows}
        wanted: list[TableEntity] = []
        for index in range(sentinel.first_row, sentinel.first_row + sentinel.event_count):
            row = by_key.get(row_key(index))
            if row is None or row.get("ExecutionId") != sentinel.execution_id:
                found = "missing" if row is None else f"of execution {row.get('ExecutionId')!r}"
                raise HistoryCorruptedError(
                    f"history of instance {instance_id!r}: row {row_key(index)} is {found}, but "
                    f"the sentinel lists {sentinel.event_count} events of execution "
                    f"{sentinel.execution_id!r} from row {row_key(sentinel.first_row)}"
                )
            wanted.append(row)
        references = [blob_references(r) for r in wanted]
        await self._resolve(wanted)
        self._ledger.record(
            instance_id, frozenset(n for refs in references for n in refs.values()), sentinel.etag
        )
        try:
            events = tuple(entity_to_event(r) for r in wanted)
        except ValueError as exc:
            raise ValueError(f"history of instance {instance_id!r}: {exc}") from exc
        return LoadedHistory(events=events, sentinel=sentinel)

    async def _resolve(self, rows: list[TableEntity]) -> None:
        gate = asyncio.Semaphore(_CONCURRENCY)

        async def fetch(row: TableEntity, prop: str, blob: str) -> None:
            async with gate:
                row[prop] = await self._payloads.get(blob)

        await asyncio.gather(*(fetch(r, p, b) for r in rows for p, b in blob_references(r).items()))

    # ------------------------------------------------------------------ commit

    async def commit(
        self,
        instance_id: str,
        *,
        expected: Sentinel,
        new_events: Sequence[HistoryEvent],
        new_execution: bool,
        execution_id: str,
        consumed_message_ids: Sequence[str],
        runtime_status: OrchestrationStatus,
        completed_at: datetime | None,
        outbox: str = "",
        archived_executions: Sequence[str] | None = None,
        custom_status: RecordedCustomStatus | None = None,
        local_tasks: LocalTasks = EMPTY_LOCAL_TASKS,
    ) -> Sentinel:
        """Append ``new_events`` (or, with ``new_execution``, replace the history with them).

        ``archived_executions`` (newest first) replaces the sentinel's list of archived
        executions; None keeps it.

        Succeeds only if the sentinel still has ``expected.etag`` (None: no sentinel yet);
        otherwise raises ``ConcurrencyConflictError`` having changed nothing visible. Raises
        ``ValueError`` before any write if an event cannot be stored. Returns the new sentinel.
        """
        if not execution_id:
            raise ValueError(f"instance {instance_id!r}: execution_id must not be empty")
        if not new_execution and expected.execution_id not in (None, execution_id):
            raise ValueError(
                f"instance {instance_id!r}: appending to execution {execution_id!r} but the "
                f"history holds execution {expected.execution_id!r}; pass new_execution=True"
            )
        pk = escape_key(instance_id)
        columns = [event_columns(e) for e in new_events]  # validates before any write
        for c in columns:
            c["ExecutionId"] = execution_id
        count = len(columns) if new_execution else expected.event_count + len(columns)
        final = Sentinel(
            etag=None,
            execution_id=execution_id,
            event_count=count,
            episode=expected.episode + 1,
            consumed_message_ids=tuple(consumed_message_ids),
            runtime_status=runtime_status,
            completed_at=completed_at,
            outbox=outbox,
            archived_executions=(
                expected.archived_executions
                if archived_executions is None
                else tuple(archived_executions)
            ),
            custom_status=custom_status,
            local_tasks=local_tasks,
        )
        sentinel_size = estimated_size(sentinel_columns(final)) + _OP_OVERHEAD
        batches = self._plan(columns, sentinel_size)
        if new_execution:
            live_end = expected.first_row + expected.event_count
            first_row = 0 if len(batches) == 1 or len(columns) <= expected.first_row else live_end
            start = first_row
        else:
            first_row = expected.first_row
            start = expected.first_row + expected.event_count
        final = dataclasses.replace(final, first_row=first_row)

        blobs: list[PendingBlob] = []
        for offset, row in enumerate(r for b in batches for r in b.rows):
            key = row_key(start + offset)
            row["PartitionKey"], row["RowKey"] = pk, key
            kind = str(row["EventType"])
            blobs += offload_properties(
                row,
                functools.partial(history_blob_name, instance_id, key, kind),
                keep=frozenset({"EventType", "ExecutionId"}),
            )
        known = (
            frozenset()
            if expected.execution_id is None or expected.event_count == 0
            else self._ledger.get(instance_id, expected.etag)
        )
        uploaded = frozenset(b.name for b in blobs)
        await self._upload(blobs)
        try:
            etag = await self._write(instance_id, pk, batches, expected.etag, final)
        except ConcurrencyConflictError:
            await self._payloads.discard(uploaded)  # surely not committed (unlike I/O errors)
            raise
        if new_execution:
            self._ledger.record(instance_id, uploaded, etag)
            await self._payloads.discard(known or ())  # the replaced generation's blobs
        elif known is not None:
            self._ledger.record(instance_id, known | uploaded, etag)
        else:
            self._ledger.forget(instance_id)
        return dataclasses.replace(final, etag=etag)

    def _plan(self, columns: list[dict[str, Any]], sentinel_size: int) -> list[_Batch]:
        """Greedy split into transactions; each leaves room for the sentinel operation."""
        batches = [_Batch(size=sentinel_size)]
        for row in columns:
            size = estimated_size(row) + _OP_OVERHEAD
            current = batches[-1]
            if len(current.rows) + 2 > self._max_ops or (
                current.rows and current.size + size > self._max_bytes
            ):
                current = _Batch(size=sentinel_size)
                batches.append(current)
            current.rows.append(row)
            current.size += size
        return batches

    async def _write(
        self,
        instance_id: str,
        pk: str,
        batches: list[_Batch],
        etag: str | None,
        final: Sentinel,
    ) -> str:
        checkpoint = uuid.uuid4().hex
        for index, batch in enumerate(batches):
            if self.batch_hook is not None:
                await self.batch_hook(index, len(batches))
            last = index == len(batches) - 1
            sentinel: dict[str, Any]
            if last:
                sentinel = sentinel_columns(final)
            elif etag is None:
                sentinel = sentinel_columns(EMPTY_SENTINEL)  # "no history yet", claimed
            else:
                sentinel = {}
            sentinel.update(
                PartitionKey=pk,
                RowKey=SENTINEL_ROW,
                IsCheckpointComplete=last,
                CheckpointId=f"{checkpoint}-{index}",
            )
            if last:
                sentinel["CheckpointCompletedTimestamp"] = datetime.now(timezone.utc)
            ops: list[Any] = [("upsert", r, {"mode": UpdateMode.REPLACE}) for r in batch.rows]
            if etag is None:
                ops.append(("create", sentinel))
            else:
                mode = UpdateMode.REPLACE if last else UpdateMode.MERGE
                ops.append(
                    (
                        "update",
                        sentinel,
                        {
                            "mode": mode,
                            "etag": etag,
                            "match_condition": MatchConditions.IfNotModified,
                        },
                    )
                )
            etag = await self._submit(instance_id, pk, ops, sentinel["CheckpointId"])
        assert etag is not None
        return etag

    async def _submit(self, instance_id: str, pk: str, ops: list[Any], checkpoint_id: str) -> str:
        """One guarded transaction; returns the sentinel's new ETag.

        If an attempt failed without an answer and the retry then meets a conflict, the first
        attempt may have succeeded: the sentinel's ``CheckpointId`` tells.
        """
        attempts = 0

        async def attempt() -> str:
            nonlocal attempts
            attempts += 1
            try:
                results = await self._transactions.submit(ops)
            except HttpResponseError as exc:
                if not _is_conflict(exc):
                    raise
                if attempts > 1:
                    stored = await self._get_sentinel(pk)
                    if stored is not None and stored.get("CheckpointId") == checkpoint_id:
                        return str(stored.metadata["etag"])
                raise ConcurrencyConflictError(
                    f"history of instance {instance_id!r} changed since it was loaded (HTTP "
                    f"{exc.status_code} on the sentinel): another writer committed first; "
                    "nothing of this commit is visible"
                ) from None
            return str(results[-1]["etag"])

        return await self._retry.call(attempt)

    async def sentinel(self, instance_id: str) -> Sentinel:
        """The instance's sentinel alone (one point read; ``EMPTY_SENTINEL`` if none)."""
        row = await self._get_sentinel(escape_key(instance_id))
        return EMPTY_SENTINEL if row is None else parse_sentinel(row, instance_id)

    async def _get_sentinel(self, pk: str) -> Any:
        try:
            return await self._retry.call(lambda: self._table.get_entity(pk, SENTINEL_ROW))
        except ResourceNotFoundError:
            return None

    async def _upload(self, blobs: list[PendingBlob]) -> None:
        gate = asyncio.Semaphore(_CONCURRENCY)

        async def put(blob: PendingBlob) -> None:
            async with gate:
                await self._payloads.put(blob.name, blob.text)

        await asyncio.gather(*(put(b) for b in blobs))

    # ------------------------------------------------------------------ delete

    async def delete(self, instance_id: str, *, payloads: bool = True) -> int:
        """Delete every History row of the instance and (``payloads``) its history payload
        blobs; a purge that deletes the instance's whole blob prefix itself passes False and
        saves a listing.

        Returns the number of rows deleted (the sentinel included). Idempotent.
        """
        pk = escape_key(instance_id)
        self._ledger.forget(instance_id)

        async def keys() -> list[str]:
            pager = self._table.query_entities(
                "PartitionKey eq @pk", parameters={"pk": pk}, select=["RowKey"]
            )
            return [str(e["RowKey"]) async for e in pager]

        row_keys = await self._retry.call(keys)
        gate = asyncio.Semaphore(_CONCURRENCY)

        async def delete_batch(chunk: list[str]) -> int:
            async with gate:
                ops = [("delete", {"PartitionKey": pk, "RowKey": k}) for k in chunk]
                try:
                    await self._retry.call(lambda: self._transactions.submit(ops))
                    return len(chunk)
                except HttpResponseError as exc:
                    if exc.status_code != 404:
                        raise
                # someone deleted a row meanwhile: the batch is refused as a whole
                return sum([await self._delete_row(pk, k) for k in chunk])

        step = MAX_BATCH_OPERATIONS
        chunks = [row_keys[i : i + step] for i in range(0, len(row_keys), step)]
        deleted = sum(await asyncio.gather(*(delete_batch(c) for c in chunks)))
        if payloads:
            await self._payloads.delete_prefix(instance_prefix(instance_id) + "history-")
        return deleted

    async def _delete_row(self, pk: str, key: str) -> int:
        op = [("delete", {"PartitionKey": pk, "RowKey": key})]  # unlike delete_entity, says 404
        try:
            await self._retry.call(lambda: self._transactions.submit(op))
        except HttpResponseError as exc:
            if exc.status_code == 404:
                return 0
            raise
        return 1


def _is_conflict(exc: HttpResponseError) -> bool:
    if exc.status_code in (409, 412):
        return True
    # If-Match on a sentinel that was deleted (purge) answers 404 ResourceNotFound
    return exc.status_code == 404 and getattr(exc, "error_code", None) == "ResourceNotFound"


__all__ = [
    "EMPTY_SENTINEL",
    "MAX_BATCH_BYTES",
    "MAX_BATCH_OPERATIONS",
    "BatchHook",
    "HistoryCorruptedError",
    "HistoryStore",
    "LoadedHistory",
    "Sentinel",
    "row_key",
]
