"""``InstanceStore``: the ``{hub}Instances`` table, one row per instance (the query index).

Row layout (DTFX_REFERENCE.md §1.2): PartitionKey = escaped instance id, RowKey ``""``,
columns ``Name``, ``Version``, ``RuntimeStatus``, ``Input``, ``Output``, ``CustomStatus``,
``CreatedTime``, ``LastUpdatedTime``, ``CompletedTime``, ``ExecutionId``, ``Generation``,
``Tags`` (JSON), ``ScheduledStartTime``, plus ``FailureDetails`` (JSON; DTFx folds it into
``Output``) and ``ParentInstanceId``. ``None`` values are omitted.

Large values (> 60 KiB UTF-16) go to payload blobs with a ``{Column}BlobName`` column, the
same convention as the History table. (DTFx stores the blob's absolute URL in the column
itself; a name keeps rows valid when the account endpoint changes, e.g. Azurite's ports.)
Reads with payloads always resolve them, so callers see the real data.

The row is an index: the History sentinel is authoritative, and the provider repairs a stale
row. When this process rewrites a row whose previous version it knows (it wrote or read it),
the blobs only that version referenced are deleted; others are left for purge (which deletes
the instance's whole blob folder). A reader that meets a blob deleted under its feet re-reads
the row.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.data.tables import UpdateMode
from azure.data.tables.aio import TableClient

from durable_azstorage.azure.storage.naming import escape_key, unescape_key
from durable_azstorage.azure.storage.payloads import (
    BlobLedger,
    PayloadNotFoundError,
    PayloadStore,
    instance_blob_name,
    instance_prefix,
)
from durable_azstorage.azure.storage.retry import TransientRetry
from durable_azstorage.azure.storage.table_transactions import TableTransactions
from durable_azstorage.azure.tracking.history_rows import blob_references, offload_properties
from durable_azstorage.azure.tracking.instance_rows import (
    LEAN_SELECT,
    NEVER_OFFLOADED,
    PAYLOAD_COLUMNS,
    ROW_KEY,
    decode_token,
    encode_token,
    exact_match,
    query_filter,
    to_entity,
    to_state,
)
from durable_azstorage.model.errors import (
    ConcurrencyConflictError,
    OrchestrationAlreadyExistsError,
)
from durable_azstorage.model.query import OrchestrationQuery, Page
from durable_azstorage.model.state import InstanceState
from durable_azstorage.model.status import OrchestrationStatus

_CONCURRENCY = 8
EPISODE_COLUMN = "Episode"  # the History sentinel's episode the row reflects
WRITE_EPISODE_ATTEMPTS = 5


def _older(
    row: dict[str, Any], state: InstanceState, episode: int, predecessors: frozenset[str]
) -> bool:
    """Whether the stored ``row`` reflects less than ``state`` at ``episode`` (see
    ``InstanceStore.write_episode``)."""
    stored = row.get(EPISODE_COLUMN)
    if row.get("ExecutionId") == state.execution_id:
        return stored is None or int(stored) < episode
    if row.get("ExecutionId") in predecessors:
        return True
    if stored is not None:
        return int(stored) < episode
    return row.get("RuntimeStatus") != OrchestrationStatus.PENDING.value


class InstanceStore:
    """Reads, writes and queries Instances rows (one table client per task hub)."""

    def __init__(
        self, table: TableClient, payloads: PayloadStore, *, retry: TransientRetry | None = None
    ) -> None:
        self._table = table
        self._transactions = TableTransactions(table)
        self._payloads = payloads
        self._retry = retry if retry is not None else TransientRetry()
        self._ledger = BlobLedger()
        self._writing: Counter[str] = Counter()  # writes in flight per instance

    # ------------------------------------------------------------------ single rows

    async def get(
        self, instance_id: str, *, fetch_payloads: bool = True
    ) -> tuple[InstanceState, str] | None:
        """``(state, etag)`` of the row, or None. Without payloads, input/output are None."""
        try:
            return await self._get(instance_id, fetch_payloads)
        except PayloadNotFoundError:  # the row was rewritten meanwhile: read the new version
            return await self._get(instance_id, fetch_payloads)

    async def _get(
        self, instance_id: str, fetch_payloads: bool
    ) -> tuple[InstanceState, str] | None:
        select = None if fetch_payloads else LEAN_SELECT
        try:
            entity = await self._retry.call(
                lambda: self._table.get_entity(escape_key(instance_id), ROW_KEY, select=select)
            )
        except ResourceNotFoundError:
            return None
        etag = str(entity.metadata["etag"])
        row = dict(entity)
        self._ledger.record(instance_id, frozenset(blob_references(row).values()))
        await self._resolve(row, fetch_payloads)
        return to_state(row, instance_id), etag

    async def upsert(self, state: InstanceState) -> None:
        """Write the row unconditionally (replacing every column)."""

        async def write(entity: dict[str, Any]) -> None:
            await self._retry.call(
                lambda: self._table.upsert_entity(entity, mode=UpdateMode.REPLACE)
            )

        await self._write(state, write)

    async def write_episode(
        self,
        state: InstanceState,
        episode: int,
        *,
        etag: str | None = None,
        predecessors: frozenset[str] = frozenset(),
    ) -> str | None:
        """Write the row as of committed ``episode`` unless the stored row is newer; returns
        the row's new ETag (None: skipped, a newer episode's row is there).

        Monotonic, so a late write (a worker that stalled between commit and this step, a
        recovery racing a newer episode) never turns Completed back into Running. The row
        carries ``Episode``; it is replaced only if it names the same execution at an older
        episode, another execution at an older episode (continue-as-new), or another
        execution without one (a row of an earlier version) unless that row is a client's
        Pending start, which only its own execution's episodes replace — or an episode that
        started from it (``predecessors``: the executions the episode consumed a start of or
        continued from, e.g. a first episode that continued as new at once). ``etag``: the
        row's ETag from this process's last write (spares the read when nobody else wrote).
        """
        written: list[str | None] = []

        async def write(entity: dict[str, Any]) -> None:
            entity[EPISODE_COLUMN] = episode
            known = etag
            for _ in range(WRITE_EPISODE_ATTEMPTS):
                if known is None:
                    current = await self._row_version(state.instance_id)
                    if current is not None and not _older(current[0], state, episode, predecessors):
                        written.append(None)
                        return
                    known = current[1] if current is not None else None
                try:
                    if known is None:
                        meta = await self._retry.call(lambda: self._table.create_entity(entity))
                    else:
                        meta = await self._retry.call(
                            lambda known=known: self._table.update_entity(  # type: ignore[misc]
                                entity,
                                mode=UpdateMode.REPLACE,
                                etag=known,
                                match_condition=MatchConditions.IfNotModified,
                            )
                        )
                except HttpResponseError as exc:
                    if exc.status_code not in (404, 409, 412):
                        raise
                    known = None  # someone else wrote it meanwhile: read and decide again
                    continue
                written.append(str(meta.get("etag")) if meta.get("etag") else None)
                return
            raise ConcurrencyConflictError(
                f"the Instances row of {state.instance_id!r} kept changing; episode {episode} "
                f"not written after {WRITE_EPISODE_ATTEMPTS} attempts"
            )

        await self._write(state, write)
        return written[0] if written else None

    async def _row_version(self, instance_id: str) -> tuple[dict[str, Any], str] | None:
        """The columns that order rows (execution, episode, status) and the ETag."""
        try:
            entity = await self._retry.call(
                lambda: self._table.get_entity(
                    escape_key(instance_id),
                    ROW_KEY,
                    select=["ExecutionId", EPISODE_COLUMN, "RuntimeStatus"],
                )
            )
        except ResourceNotFoundError:
            return None
        return dict(entity), str(entity.metadata["etag"])

    async def insert_pending(self, state: InstanceState, *, replace_etag: str | None) -> str | None:
        """Insert the row of a new instance, or replace the row read with ``replace_etag``;
        returns the written row's ETag (None when unknown).

        Raises ``OrchestrationAlreadyExistsError`` if a row appeared meanwhile (insert), or
        ``ConcurrencyConflictError`` if the row changed or vanished since it was read.
        """
        written: list[str] = []

        def keep(meta: Any) -> None:
            if isinstance(meta, dict) and meta.get("etag"):
                written.append(str(meta["etag"]))

        async def insert(entity: dict[str, Any]) -> None:
            try:
                keep(await self._retry.call(lambda: self._table.create_entity(entity)))
                return
            except HttpResponseError as exc:
                if exc.status_code != 409:
                    raise
            found = await self.get(state.instance_id, fetch_payloads=False)
            if found is not None and state.execution_id is not None:
                if found[0].execution_id == state.execution_id:
                    return  # our own insert, answered 409 on a retry after a lost response
            status = found[0].runtime_status.value if found is not None else "unknown"
            raise OrchestrationAlreadyExistsError(state.instance_id, status)

        async def replace(entity: dict[str, Any]) -> None:
            try:
                keep(
                    await self._retry.call(
                        lambda: self._table.update_entity(
                            entity,
                            mode=UpdateMode.REPLACE,
                            etag=replace_etag,
                            match_condition=MatchConditions.IfNotModified,
                        )
                    )
                )
            except HttpResponseError as exc:
                if exc.status_code not in (404, 409, 412):
                    raise
                raise ConcurrencyConflictError(
                    f"the Instances row of {state.instance_id!r} changed since it was read "
                    f"(HTTP {exc.status_code}); another client created or replaced it first"
                ) from None

        await self._write(state, insert if replace_etag is None else replace)
        return written[0] if written else None

    async def _write(
        self, state: InstanceState, write: Callable[[dict[str, Any]], Awaitable[None]]
    ) -> None:
        """Upload oversized values, ``write`` the row, then delete the blobs that only the
        previous version (as far as this process knows it) referenced.

        With another write of the same row in flight here, which one lands last is unknown:
        the ledger is forgotten instead (leftovers go with purge) rather than deleting blobs
        a row may still reference.
        """
        instance_id = state.instance_id
        self._writing[instance_id] += 1
        try:
            entity, uploaded = await self._prepare(state)
            try:
                await write(entity)
            except (ConcurrencyConflictError, OrchestrationAlreadyExistsError):
                await self._payloads.discard(uploaded)  # surely not written
                raise
            alone = self._writing[instance_id] == 1
        finally:
            self._writing[instance_id] -= 1
            if self._writing[instance_id] <= 0:
                del self._writing[instance_id]
        previous = self._ledger.get(instance_id)
        if not alone:
            self._ledger.forget(instance_id)
            return
        self._ledger.record(instance_id, uploaded)
        if previous:
            await self._payloads.discard(previous - uploaded)

    async def delete(self, instance_id: str, *, payloads: bool = True) -> bool:
        """Delete the row and (``payloads``) its payload blobs; False if there was no row."""
        self._ledger.forget(instance_id)
        op = [("delete", {"PartitionKey": escape_key(instance_id), "RowKey": ROW_KEY})]
        existed = True
        try:
            await self._retry.call(lambda: self._transactions.submit(op))
        except HttpResponseError as exc:
            if exc.status_code != 404:
                raise
            existed = False
        if payloads:
            await self._payloads.delete_prefix(instance_prefix(instance_id) + "instance-")
        return existed

    # ------------------------------------------------------------------ queries

    async def query(self, query: OrchestrationQuery) -> Page[InstanceState]:
        """One page of matching instances, in PartitionKey (escaped id) order.

        The continuation token wraps the service's own (opaque, versioned); a malformed one
        raises ``ValueError``. A page holds ``page_size`` items unless it is the last one.
        """
        where, params = query_filter(query)
        select = None if query.fetch_inputs_and_outputs else LEAN_SELECT
        token = decode_token(query.continuation_token) if query.continuation_token else None
        rows: list[dict[str, Any]] = []
        while True:
            remaining = query.page_size - len(rows)
            page, token = await self._retry.call(
                lambda remaining=remaining, token=token: self._page(  # type: ignore[misc]
                    where, params, select, remaining, token
                )
            )
            rows += page
            if token is None or len(rows) >= query.page_size:
                break
        gate = asyncio.Semaphore(_CONCURRENCY)

        async def state_of(row: dict[str, Any]) -> InstanceState | None:
            instance_id = unescape_key(row["PartitionKey"])
            async with gate:
                try:
                    await self._resolve(row, query.fetch_inputs_and_outputs)
                except PayloadNotFoundError:  # rewritten meanwhile: read the new version
                    found = await self._get(instance_id, query.fetch_inputs_and_outputs)
                    return found[0] if found is not None else None
            return to_state(row, instance_id)

        states = await asyncio.gather(*(state_of(r) for r in rows))
        items = [s for s in states if s is not None and exact_match(s, query)]
        return Page(items=items, continuation_token=encode_token(token) if token else None)

    async def _page(
        self,
        where: str,
        params: dict[str, Any],
        select: list[str] | None,
        size: int,
        token: dict[str, str | None] | None,
    ) -> tuple[list[dict[str, Any]], dict[str, str | None] | None]:
        if where:
            pager = self._table.query_entities(
                where, parameters=params, results_per_page=size, select=select
            )
        else:
            pager = self._table.list_entities(results_per_page=size, select=select)
        pages = pager.by_page(continuation_token=token)  # type: ignore[arg-type]
        async for page in pages:
            rows = [dict(e) async for e in page]
            return rows, pages.continuation_token  # type: ignore[attr-defined]
        return [], None

    # ------------------------------------------------------------------ payloads

    async def _prepare(self, state: InstanceState) -> tuple[dict[str, Any], frozenset[str]]:
        """The row's entity, with oversized values uploaded to blobs."""
        entity = to_entity(state)
        blobs = offload_properties(
            entity,
            lambda column: instance_blob_name(state.instance_id, column),
            keep=NEVER_OFFLOADED,
        )
        gate = asyncio.Semaphore(_CONCURRENCY)

        async def put(name: str, text: str) -> None:
            async with gate:
                await self._payloads.put(name, text)

        await asyncio.gather(*(put(b.name, b.text) for b in blobs))
        return entity, frozenset(b.name for b in blobs)

    async def _resolve(self, row: dict[str, Any], with_payloads: bool) -> None:
        refs = {
            c: b
            for c, b in blob_references(row).items()
            if with_payloads or c not in PAYLOAD_COLUMNS
        }
        texts = await asyncio.gather(*(self._payloads.get(b) for b in refs.values()))
        row.update(zip(refs, texts, strict=False))
        for c in blob_references(row):
            del row[c + "BlobName"]


__all__ = ["PAYLOAD_COLUMNS", "ROW_KEY", "InstanceStore"]
