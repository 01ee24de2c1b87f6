"""History events <-> table entities, with DTFx-like column names.

A History row holds ``EventType``, ``EventId``, ``ExecutionId``, ``_Timestamp`` (``Timestamp``
is reserved by the table service) and the event's own fields as PascalCase columns (``Name``,
``Input``, ``Result``, ``FireAt``, ``TimerId``, ``TaskScheduledId`` ...), so rows written here
read like the .NET provider's in Storage Explorer (DTFX_REFERENCE.md §1.1). Strings, ints,
bools and datetimes are stored natively (datetimes keep their microseconds); enums as their
stored value; nested values (``FailureDetails``, ``OrchestrationInstance``, ``ParentInstance``,
``Tags``) as JSON text in the codec's format.

The conversion goes through ``serialization.codec`` (encode, then reshape; reshape, then
decode), so a row is validated exactly as strictly as any other stored document: a missing,
unknown or mistyped column raises ``ValueError`` naming it.

Also here: the History sentinel's columns, and, for both tables, moving oversized string properties to payload blobs
(``offload_properties``) and the ``{Property}BlobName`` convention.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from azure.data.tables import EdmType, EntityProperty, TableEntity

from durable_azstorage.azure.storage.payloads import needs_property_offload
from durable_azstorage.azure.tracking.local_tasks import EMPTY as EMPTY_LOCAL_TASKS
from durable_azstorage.azure.tracking.local_tasks import LocalTasks
from durable_azstorage.model.history import EVENT_TYPES, HistoryEvent, event_type_name
from durable_azstorage.model.status import OrchestrationStatus
from durable_azstorage.serialization.codec import decode_event, encode_datetime, encode_event

BLOB_SUFFIX = "BlobName"
KEY_COLUMNS = frozenset({"PartitionKey", "RowKey", "Timestamp"})

_INT32 = range(-(2**31), 2**31)
_OVERRIDES = {
    "timestamp": "_Timestamp",
    "instance": "OrchestrationInstance",
    "parent": "ParentInstance",
    "status": "OrchestrationStatus",
}


class _Kind(enum.Enum):
    TEXT = "text"
    INT = "int"
    BOOL = "bool"
    DATETIME = "datetime"
    JSON = "json"


@dataclass(frozen=True, slots=True)
class _Column:
    field: str
    column: str
    kind: _Kind


@dataclass(frozen=True, slots=True)
class PendingBlob:
    """A payload that must be uploaded before the row referencing it is written."""

    name: str
    text: str


def _pascal(field: str) -> str:
    return _OVERRIDES.get(field) or "".join(p[:1].upper() + p[1:] for p in field.split("_"))


def _kind(hint: Any) -> _Kind:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        hint = args[0] if len(args) == 1 else hint
    if hint is datetime:
        return _Kind.DATETIME
    if hint is bool:
        return _Kind.BOOL
    if hint is int:
        return _Kind.INT
    if hint is str or (isinstance(hint, type) and issubclass(hint, enum.Enum)):
        return _Kind.TEXT
    return _Kind.JSON


def _columns_of(cls: type[HistoryEvent]) -> tuple[_Column, ...]:
    hints = typing.get_type_hints(cls)
    return tuple(
        _Column(f.name, _pascal(f.name), _kind(hints[f.name])) for f in dataclasses.fields(cls)
    )


_COLUMNS: dict[str, tuple[_Column, ...]] = {event_type_name(t): _columns_of(t) for t in EVENT_TYPES}


@dataclass(frozen=True, slots=True, kw_only=True)
class Sentinel:
    """The commit record of an instance's history (RowKey ``sentinel``); see the module doc."""

    etag: str | None  # None: the instance has no sentinel row yet
    execution_id: str | None
    event_count: int
    episode: int
    consumed_message_ids: tuple[str, ...]
    runtime_status: OrchestrationStatus | None
    completed_at: datetime | None
    first_row: int = 0  # index of the current execution's first row
    outbox: str = ""  # messages the history cannot re-derive (``outbox.Outbox``, JSON)
    archived_executions: tuple[str, ...] = ()  # earlier executions kept as blobs, newest first
    custom_status: RecordedCustomStatus | None = None
    """The custom status the last episode committed (it is not an event, so repair after a
    crash before step 3 needs it from here); None when not recorded (too large for the row)."""
    local_tasks: LocalTasks = EMPTY_LOCAL_TASKS  # activities dispatched in process, by carrier


@dataclass(frozen=True, slots=True)
class RecordedCustomStatus:
    """A custom status as step 1 recorded it; ``value`` None: the episode had none."""

    value: str | None

    @classmethod
    def of(cls, value: str | None) -> RecordedCustomStatus | None:
        """Recorded, unless too large for a table property (repair then keeps the row's)."""
        if value is not None and needs_property_offload(value):
            return None
        return cls(value)


EMPTY_SENTINEL = Sentinel(
    etag=None,
    execution_id=None,
    event_count=0,
    episode=0,
    consumed_message_ids=(),
    runtime_status=None,
    completed_at=None,
)


def event_columns(event: HistoryEvent) -> dict[str, Any]:
    """The table columns of ``event`` (``EventType`` + its fields), without keys.

    Raises ``ValueError`` (from the codec) if the event cannot be stored.
    """
    encoded = encode_event(event)
    kind = encoded.pop("type")
    out: dict[str, Any] = {"EventType": kind}
    for col in _COLUMNS[kind]:
        value = encoded.get(col.field)
        if value is None:
            continue
        if col.kind is _Kind.DATETIME:
            out[col.column] = getattr(event, col.field).astimezone(timezone.utc)
        elif col.kind is _Kind.INT:
            out[col.column] = value if value in _INT32 else EntityProperty(value, EdmType.INT64)
        elif col.kind is _Kind.JSON:
            out[col.column] = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
        else:
            out[col.column] = value
    return out


def entity_to_event(entity: Mapping[str, Any]) -> HistoryEvent:
    """Decode a History row whose blob references have been resolved (``resolve`` first)."""
    kind = entity.get("EventType")
    if not isinstance(kind, str) or kind not in _COLUMNS:
        known = ", ".join(sorted(_COLUMNS))
        raise ValueError(
            f"history row {entity.get('RowKey')!r}: EventType {kind!r} is not one of: {known}"
        )
    data: dict[str, Any] = {"type": kind}
    for col in _COLUMNS[kind]:
        value = entity.get(col.column)
        if value is None:
            continue
        if isinstance(value, EntityProperty):
            value = value.value
        if col.kind is _Kind.DATETIME and isinstance(value, datetime):
            value = encode_datetime(value)
        elif col.kind is _Kind.JSON and isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError as exc:
                raise ValueError(
                    f"history row {entity.get('RowKey')!r}: column {col.column} is not JSON: {exc}"
                ) from exc
        data[col.field] = value
    return decode_event(data, path=f"history row {entity.get('RowKey')!r}")


def estimated_size(columns: Mapping[str, Any]) -> int:
    """Bytes ``columns`` take in a request body (JSON, ASCII-escaped), counting offloads."""
    total = 64
    for name, value in columns.items():
        total += len(name) + 48  # quotes, colon, and a possible @odata.type annotation
        if isinstance(value, str):
            if needs_property_offload(value):
                total += 160  # "" plus the {Property}BlobName column
            elif value.isascii() and value.isprintable():  # only " and \\ get escaped
                total += len(value) + value.count('"') + value.count("\\") + 2
            else:
                total += len(json.dumps(value))  # the SDK's body is ASCII-escaped JSON
        else:
            total += 40
    return total


def offload_properties(
    entity: dict[str, Any], name_for: Callable[[str], str], *, keep: frozenset[str] = frozenset()
) -> list[PendingBlob]:
    """Move every oversized string property of ``entity`` to a blob (in place).

    The property keeps ``""`` and ``{Property}BlobName`` names the blob (DTFx convention).
    Columns in ``keep`` (keys, filter columns) are never moved.
    """
    pending: list[PendingBlob] = []
    for name, value in list(entity.items()):
        if name in KEY_COLUMNS or name in keep or not isinstance(value, str):
            continue
        if needs_property_offload(value):
            blob = name_for(name)
            entity[name] = ""
            entity[name + BLOB_SUFFIX] = blob
            pending.append(PendingBlob(blob, value))
    return pending


def blob_references(entity: Mapping[str, Any]) -> dict[str, str]:
    """``{property: blob name}`` for every offloaded property of ``entity``."""
    return {
        name[: -len(BLOB_SUFFIX)]: value
        for name, value in entity.items()
        if name.endswith(BLOB_SUFFIX) and isinstance(value, str) and value
    }


def sentinel_columns(s: Sentinel) -> dict[str, Any]:
    """The sentinel's columns (without keys and checkpoint markers)."""
    out: dict[str, Any] = {
        "EventCount": s.event_count,
        "FirstRow": s.first_row,
        "Episode": s.episode,
        "ConsumedMessageIds": json.dumps(list(s.consumed_message_ids), separators=(",", ":")),
    }
    if s.execution_id is not None:
        out["ExecutionId"] = s.execution_id
    if s.runtime_status is not None:
        out["RuntimeStatus"] = s.runtime_status.value
    if s.completed_at is not None:
        out["CompletedTime"] = s.completed_at.astimezone(timezone.utc)
    if s.outbox:
        out["Outbox"] = s.outbox
    if s.archived_executions:
        out["ArchivedExecutions"] = json.dumps(list(s.archived_executions), separators=(",", ":"))
    if s.local_tasks.by_carrier:
        out["LocalTasks"] = s.local_tasks.encode()
    if s.custom_status is not None:  # JSON, so that "no custom status" (null) is recorded too
        out["CustomStatus"] = json.dumps(s.custom_status.value)
    return out


def parse_sentinel(row: TableEntity, instance_id: str) -> Sentinel:
    """The sentinel stored in ``row``; ``ValueError`` naming the instance if malformed."""
    where = f"history sentinel of instance {instance_id!r}"
    try:
        ids = json.loads(row.get("ConsumedMessageIds") or "[]")
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise ValueError("ConsumedMessageIds is not a list of strings")
        archived = json.loads(row.get("ArchivedExecutions") or "[]")
        if not isinstance(archived, list) or not all(isinstance(i, str) for i in archived):
            raise ValueError("ArchivedExecutions is not a list of strings")
        status = row.get("RuntimeStatus")
        completed = row.get("CompletedTime")
        custom: RecordedCustomStatus | None = None
        if row.get("CustomStatus") is not None:
            value = json.loads(row["CustomStatus"])
            if value is not None and not isinstance(value, str):
                raise ValueError("CustomStatus is not a JSON string or null")
            custom = RecordedCustomStatus(value)
        return Sentinel(
            etag=str(row.metadata["etag"]),
            execution_id=row.get("ExecutionId") or None,
            event_count=int(row.get("EventCount") or 0),
            episode=int(row.get("Episode") or 0),
            consumed_message_ids=tuple(ids),
            runtime_status=OrchestrationStatus(status) if status else None,
            completed_at=completed if isinstance(completed, datetime) else None,
            first_row=int(row.get("FirstRow") or 0),
            outbox=str(row.get("Outbox") or ""),
            archived_executions=tuple(archived),
            custom_status=custom,
            local_tasks=LocalTasks.parse(str(row.get("LocalTasks") or "")),
        )
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where}: {exc}") from exc


__all__ = [
    "EMPTY_SENTINEL",
    "RecordedCustomStatus",
    "Sentinel",
    "parse_sentinel",
    "sentinel_columns",
    "BLOB_SUFFIX",
    "PendingBlob",
    "blob_references",
    "entity_to_event",
    "estimated_size",
    "event_columns",
    "offload_properties",
]
