"""Lease rows of the control-queue partitions in the ``{hub}Partitions`` table.

One row per control queue: PartitionKey ``""``, RowKey = the queue name (DTFx
``TablePartitionLease``), columns ``CurrentOwner``, ``NextOwner``, ``OwnedSince``,
``LastRenewal``, ``ExpiresAt``, ``IsDraining``. The hub-info row (PartitionKey ``"taskhub"``)
shares the table; every query here filters on PartitionKey ``""`` so it is never read or
written.

``describe_partitions`` (for ``durable-azstorage hub partitions``) joins the rows with each
control queue's backlog.

Every write is a ``ReplaceEntity`` conditional on the ETag the writer last read
(``If-Match``): two workers deciding on the same stale row cannot both win; the loser gets
``LeaseConflict`` and must re-read. A transient failure is retried (``TransientRetry``); a
retried write whose first attempt *did* land answers 412 as well, which the re-read resolves.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import unquote

from azure.core import MatchConditions
from azure.core.exceptions import (
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.data.tables import UpdateMode
from azure.data.tables.aio import TableClient

from durable_azstorage.azure.storage.clients import StorageClients
from durable_azstorage.azure.storage.naming import TaskHubNames
from durable_azstorage.azure.storage.retry import TransientRetry
from durable_azstorage.model.errors import TaskHubNotFoundError

LEASE_PARTITION_KEY = ""


class LeaseConflict(Exception):
    """A conditional lease write lost a race (412, or the row vanished): re-read and decide."""

    def __init__(self, queue: str, reason: str) -> None:
        super().__init__(f"lease row {queue!r}: {reason}")
        self.queue = queue


@dataclass(frozen=True, slots=True)
class LeaseRow:
    """One partition's lease as stored; ``etag`` is what a conditional write must match.

    Times are UTC and written by the clock of the worker that wrote the row.
    """

    partition: int
    queue: str
    current_owner: str | None = None
    next_owner: str | None = None
    owned_since: datetime | None = None
    last_renewal: datetime | None = None
    expires_at: datetime | None = None
    is_draining: bool = False
    etag: str | None = None

    def but(self, **changes: Any) -> LeaseRow:
        """A copy with ``changes`` applied (the ETag is kept: it is the write's condition)."""
        return dataclasses.replace(self, **changes)


class LeaseTable:
    """Reads and conditionally writes the lease rows of one task hub."""

    def __init__(self, table: TableClient, names: TaskHubNames, retry: TransientRetry) -> None:
        self._table = table
        self._names = names
        self._retry = retry
        self._index = {queue: p for p, queue in enumerate(names.control_queues)}
        self.server_time: datetime | None = None  # storage's clock at the last write

    @property
    def names(self) -> TaskHubNames:
        return self._names

    async def read_all(self) -> dict[int, LeaseRow]:
        """Every lease row that exists, by partition (one query; other rows are ignored)."""

        async def query() -> list[dict[str, Any]]:
            found = self._table.query_entities(
                "PartitionKey eq @pk", parameters={"pk": LEASE_PARTITION_KEY}
            )
            return [dict(e, __etag=e.metadata["etag"]) async for e in found]

        try:
            entities = await self._retry.call(query)
        except ResourceNotFoundError:
            raise TaskHubNotFoundError(self._names.task_hub) from None
        rows: dict[int, LeaseRow] = {}
        for entity in entities:
            partition = self._index.get(str(entity["RowKey"]))
            if partition is not None:
                rows[partition] = _from_entity(partition, entity)
        return rows

    async def read(self, partition: int) -> LeaseRow | None:
        """One lease row, or None if it does not exist."""
        queue = self._names.control_queues[partition]
        try:
            entity = await self._retry.call(
                lambda: self._table.get_entity(LEASE_PARTITION_KEY, queue)
            )
        except ResourceNotFoundError:
            return None
        return _from_entity(partition, dict(entity, __etag=entity.metadata["etag"]))

    async def ensure_rows(self) -> dict[int, LeaseRow]:
        """Create the missing lease rows (empty, unowned) and return all rows.

        Idempotent and race-safe: a concurrent creator's insert wins and ours answers 409,
        which is ignored. Existing rows are never touched.
        """
        rows = await self.read_all()
        missing = [p for p in range(self._names.partition_count) if p not in rows]
        if missing:
            await asyncio.gather(*(self._insert_empty(p) for p in missing))
            rows = await self.read_all()
        return rows

    async def write(self, row: LeaseRow) -> LeaseRow:
        """Replace the stored row with ``row`` if its ETag still matches ``row.etag``.

        Returns the row as stored, with its new ETag. Raises ``LeaseConflict`` on 412 or when
        the row does not exist (it is created only by ``ensure_rows``).
        """
        if row.etag is None:
            raise LeaseConflict(row.queue, "has no ETag to write against; read it first")
        entity = _to_entity(row)
        etag = row.etag

        async def replace() -> Mapping[str, Any]:
            return await self._table.update_entity(
                entity,
                mode=UpdateMode.REPLACE,
                etag=etag,
                match_condition=MatchConditions.IfNotModified,
            )

        try:
            metadata = await self._retry.call(replace)
        except ResourceModifiedError:
            raise LeaseConflict(row.queue, "changed since it was read (412)") from None
        except ResourceNotFoundError:
            raise LeaseConflict(row.queue, "does not exist (404)") from None
        except HttpResponseError as exc:
            if exc.status_code == 412:
                raise LeaseConflict(row.queue, "changed since it was read (412)") from None
            raise
        self.server_time = _server_time(metadata)
        return row.but(etag=str(metadata["etag"]))

    async def _insert_empty(self, partition: int) -> None:
        entity = {
            "PartitionKey": LEASE_PARTITION_KEY,
            "RowKey": self._names.control_queues[partition],
            "IsDraining": False,
        }
        try:
            await self._retry.call(lambda: self._table.create_entity(entity))
        except ResourceExistsError:
            pass  # another worker created it (or our own first attempt did)
        except ResourceNotFoundError:
            raise TaskHubNotFoundError(self._names.task_hub) from None


@dataclass(frozen=True, slots=True)
class PartitionInfo:
    """One partition as ``durable-azstorage hub partitions`` shows it.

    ``oldest_message_age`` is the age of the first *visible* message (peek cannot see
    messages being processed or delayed timers); None when none is visible.
    """

    partition: int
    queue: str
    owner: str | None
    next_owner: str | None
    owned_since: datetime | None
    expires_at: datetime | None
    is_draining: bool
    approximate_messages: int
    oldest_message_age: timedelta | None


async def queue_backlog(
    clients: StorageClients, queue: str, now: datetime | None = None
) -> tuple[int, timedelta | None]:
    """A queue's approximate length and its first visible message's age (None: none visible)."""
    client = clients.queue(queue)
    props = await clients.retry.call(client.get_queue_properties)
    peeked = await clients.retry.call(lambda: client.peek_messages(max_messages=1))
    age = None
    if peeked and peeked[0].inserted_on is not None:
        age = max(timedelta(0), (now or datetime.now(timezone.utc)) - peeked[0].inserted_on)
    return int(props.approximate_message_count or 0), age


async def describe_partitions(
    clients: StorageClients, names: TaskHubNames, *, now: datetime | None = None
) -> list[PartitionInfo]:
    """Owner, lease expiry, backlog and oldest visible message age of every partition.

    Costs one table query plus two queue requests per partition, run concurrently.
    """
    table = LeaseTable(clients.table(names.partitions_table), names, clients.retry)
    rows = await table.read_all()
    stats = await asyncio.gather(*(queue_backlog(clients, q, now) for q in names.control_queues))
    infos = []
    for p, (queue, (count, age)) in enumerate(zip(names.control_queues, stats, strict=False)):
        row = rows.get(p, LeaseRow(partition=p, queue=queue))
        infos.append(
            PartitionInfo(
                partition=p,
                queue=queue,
                owner=row.current_owner,
                next_owner=row.next_owner,
                owned_since=row.owned_since,
                expires_at=row.expires_at,
                is_draining=row.is_draining,
                approximate_messages=count,
                oldest_message_age=age,
            )
        )
    return infos


def _to_entity(row: LeaseRow) -> dict[str, Any]:
    entity: dict[str, Any] = {
        "PartitionKey": LEASE_PARTITION_KEY,
        "RowKey": row.queue,
        "IsDraining": row.is_draining,
    }
    optional: Iterable[tuple[str, object]] = (
        ("CurrentOwner", row.current_owner),
        ("NextOwner", row.next_owner),
        ("OwnedSince", row.owned_since),
        ("LastRenewal", row.last_renewal),
        ("ExpiresAt", row.expires_at),
    )
    for name, value in optional:
        if value is not None:  # REPLACE drops absent columns: None is "no value"
            entity[name] = value
    return entity


def _from_entity(partition: int, entity: dict[str, Any]) -> LeaseRow:
    return LeaseRow(
        partition=partition,
        queue=str(entity["RowKey"]),
        current_owner=_text(entity.get("CurrentOwner")),
        next_owner=_text(entity.get("NextOwner")),
        owned_since=_utc(entity.get("OwnedSince")),
        last_renewal=_utc(entity.get("LastRenewal")),
        expires_at=_utc(entity.get("ExpiresAt")),
        is_draining=bool(entity.get("IsDraining", False)),
        etag=str(entity["__etag"]),
    )


_ETAG_TIME = re.compile(r"datetime'([^']+)'")


def _server_time(metadata: Mapping[str, Any]) -> datetime | None:
    """When the service committed the write: the timestamp inside a table ETag
    (``W/"datetime'2026-11-23T19%3A47%3A29.4419687Z'"``, 100 ns, Azure and Azurite), else the
    response's ``Date`` header (whole seconds, so + 0.5 s)."""
    match = _ETAG_TIME.search(str(metadata.get("etag", "")))
    if match:
        text = unquote(match.group(1)).rstrip("Z")
        head, _, fraction = text.partition(".")
        try:
            stamp = datetime.strptime(head, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc)
        except ValueError:
            stamp = None
        if stamp is not None:
            return stamp + timedelta(microseconds=int((fraction + "000000")[:6]))
    date = _utc(metadata.get("date"))
    return date + timedelta(milliseconds=500) if date is not None else None


def _text(value: object) -> str | None:
    return str(value) if value else None


def _utc(value: object) -> datetime | None:
    if not isinstance(value, datetime):
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return datetime.fromtimestamp(value.timestamp(), tz=timezone.utc)  # a plain datetime


__all__ = [
    "LEASE_PARTITION_KEY",
    "LeaseConflict",
    "LeaseRow",
    "LeaseTable",
    "PartitionInfo",
    "describe_partitions",
]
