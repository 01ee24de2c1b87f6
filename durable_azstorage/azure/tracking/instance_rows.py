"""Instances rows <-> ``InstanceState``, and the OData filter and page tokens of queries.

Column names are DTFx's (DTFX_REFERENCE.md §1.2); see ``instance_store`` for the layout.
Pure functions (no I/O), so the row format can be read and tested in one place.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from durable_azstorage.azure.storage.naming import escape_key
from durable_azstorage.model.query import OrchestrationQuery
from durable_azstorage.model.state import InstanceState
from durable_azstorage.model.status import OrchestrationStatus
from durable_azstorage.serialization.codec import decode_failure, encode_failure

ROW_KEY = ""
PAYLOAD_COLUMNS = ("Input", "Output")  # left out by fetch_payloads=False / $select
OFFLOADABLE = ("Input", "Output", "CustomStatus", "Tags", "FailureDetails")
NEVER_OFFLOADED = frozenset({"Name", "Version", "RuntimeStatus", "ExecutionId", "ParentInstanceId"})
LEAN_SELECT = [
    "PartitionKey",
    "Name",
    "Version",
    "RuntimeStatus",
    "CreatedTime",
    "LastUpdatedTime",
    "CompletedTime",
    "ExecutionId",
    "Generation",
    "ScheduledStartTime",
    "ParentInstanceId",
    *(c for c in OFFLOADABLE if c not in PAYLOAD_COLUMNS),
    *(c + "BlobName" for c in OFFLOADABLE),  # names only: they tell which blobs the row owns
]
_TOKEN_VERSION = 1


# ---------------------------------------------------------------------- rows <-> states


def to_entity(state: InstanceState) -> dict[str, Any]:
    """The row of ``state`` (``None`` fields omitted, so a replace removes stale columns)."""
    columns: dict[str, Any] = {
        "PartitionKey": escape_key(state.instance_id),
        "RowKey": ROW_KEY,
        "Name": state.name,
        "Version": state.version,
        "RuntimeStatus": state.runtime_status.value,
        "Input": state.input,
        "Output": state.output,
        "CustomStatus": state.custom_status,
        "CreatedTime": _utc(state.created_at),
        "LastUpdatedTime": _utc(state.last_updated_at),
        "CompletedTime": _utc(state.completed_at),
        "ExecutionId": state.execution_id,
        "Generation": state.generation,
        "Tags": _json(state.tags) if state.tags is not None else None,
        "ScheduledStartTime": _utc(state.scheduled_start_time),
        "FailureDetails": (
            _json(encode_failure(state.failure_details))
            if state.failure_details is not None
            else None
        ),
        "ParentInstanceId": state.parent_instance_id,
    }
    return {k: v for k, v in columns.items() if v is not None}


def to_state(row: Mapping[str, Any], instance_id: str) -> InstanceState:
    """The state in ``row`` (blob references resolved); ``ValueError`` names a bad column."""
    where = f"Instances row of {instance_id!r}"

    def required(column: str) -> Any:
        value = row.get(column)
        if value is None:
            raise ValueError(f"{where}: column {column} is missing")
        return value

    try:
        failure = row.get("FailureDetails")
        tags = row.get("Tags")
        return InstanceState(
            instance_id=instance_id,
            name=str(required("Name")),
            runtime_status=OrchestrationStatus.parse(str(required("RuntimeStatus"))),
            created_at=_datetime(required("CreatedTime"), "CreatedTime"),
            last_updated_at=_datetime(required("LastUpdatedTime"), "LastUpdatedTime"),
            execution_id=row.get("ExecutionId"),
            completed_at=_optional_datetime(row.get("CompletedTime"), "CompletedTime"),
            input=row.get("Input"),
            output=row.get("Output"),
            custom_status=row.get("CustomStatus"),
            failure_details=decode_failure(json.loads(failure)) if failure else None,
            version=row.get("Version"),
            tags=_tags(json.loads(tags)) if tags else None,
            parent_instance_id=row.get("ParentInstanceId"),
            scheduled_start_time=_optional_datetime(
                row.get("ScheduledStartTime"), "ScheduledStartTime"
            ),
            generation=int(row.get("Generation") or 0),
        )
    except ValueError as exc:
        if str(exc).startswith(where):
            raise
        raise ValueError(f"{where}: {exc}") from exc


def _datetime(value: Any, column: str) -> datetime:
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise ValueError(f"column {column} is not a UTC datetime: {value!r}")
    return value.astimezone(timezone.utc)


def _optional_datetime(value: Any, column: str) -> datetime | None:
    return None if value is None else _datetime(value, column)


def _tags(value: Any) -> dict[str, str]:
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise ValueError("column Tags is not a JSON object of strings")
    return value


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError(f"naive datetime {value.isoformat()}; use a timezone-aware UTC one")
    return value.astimezone(timezone.utc)


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


# ---------------------------------------------------------------------- query filter, tokens


def query_filter(query: OrchestrationQuery) -> tuple[str, dict[str, Any]]:
    """An OData filter with parameters (the SDK quotes and escapes them: no injection)."""
    parts: list[str] = []
    params: dict[str, Any] = {}
    if query.runtime_status:
        names = []
        for i, status in enumerate(query.runtime_status):
            params[f"s{i}"] = status.value
            names.append(f"RuntimeStatus eq @s{i}")
        parts.append("( " + " or ".join(names) + " )")  # the SDK finds @names by spaces
    if query.created_time_from is not None:
        params["created_from"] = _utc(query.created_time_from)
        parts.append("CreatedTime ge @created_from")
    if query.created_time_to is not None:
        params["created_to"] = _utc(query.created_time_to)
        parts.append("CreatedTime le @created_to")
    if query.instance_id_prefix:
        low = escape_key(query.instance_id_prefix)
        params["pk_low"] = low
        parts.append("PartitionKey ge @pk_low")
        last = ord(low[-1])
        if last < 0xD7FF:  # else: no upper bound, the prefix is checked on the results
            params["pk_high"] = low[:-1] + chr(last + 1)
            parts.append("PartitionKey lt @pk_high")
    return " and ".join(parts), params


def exact_match(state: InstanceState, query: OrchestrationQuery) -> bool:
    """The filter again, client-side: Azurite compares datetimes at millisecond precision
    only, and a prefix ending in a character near the surrogate range has no upper bound."""
    prefix = query.instance_id_prefix
    if prefix and not state.instance_id.startswith(prefix):
        return False
    if query.created_time_from is not None and state.created_at < query.created_time_from:
        return False
    return query.created_time_to is None or state.created_at <= query.created_time_to


def encode_token(token: dict[str, str | None]) -> str:
    raw = json.dumps({"v": _TOKEN_VERSION, "next": token}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode("utf-8")).decode("ascii")


def decode_token(token: str) -> dict[str, str | None]:
    try:
        doc = json.loads(base64.urlsafe_b64decode(token.encode("ascii")))
    except (ValueError, UnicodeError, binascii.Error) as exc:
        raise ValueError(f"invalid continuation token {token[:40]!r}: {exc}") from exc
    if not isinstance(doc, dict) or doc.get("v") != _TOKEN_VERSION:
        raise ValueError(f"invalid continuation token {token[:40]!r}: unknown format")
    position = doc.get("next")
    if (
        not isinstance(position, dict)
        or not position
        or not all(
            isinstance(k, str) and (v is None or isinstance(v, str)) for k, v in position.items()
        )
    ):
        raise ValueError(f"invalid continuation token {token[:40]!r}: no position")
    return position


__all__ = [
    "LEAN_SELECT",
    "NEVER_OFFLOADED",
    "PAYLOAD_COLUMNS",
    "ROW_KEY",
    "decode_token",
    "encode_token",
    "exact_match",
    "query_filter",
    "to_entity",
    "to_state",
]
