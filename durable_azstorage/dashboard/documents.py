"""The JSON documents of ``/api/``: instances, history events, partitions, poison messages.

Times are ISO 8601 UTC strings; status names are the stored ones (``Running``); payloads
are decoded from their stored JSON text (kept as text when they are not JSON), so a script
reads values, not strings holding JSON. Pages render from the same documents.
"""

from __future__ import annotations

import dataclasses
import enum
import json
from datetime import datetime, timedelta
from typing import Any

from durable_azstorage.client.state import OrchestrationState
from durable_azstorage.dashboard.capabilities import PartitionLease, PoisonMessage
from durable_azstorage.model.failure import FailureDetails
from durable_azstorage.model.history import HistoryEvent

PAYLOAD_FIELDS = frozenset({"input", "result", "data"})


def payload(text: str | None) -> Any:
    """A stored payload as a JSON value (the raw text if it is not JSON)."""
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


def when(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def failure(details: FailureDetails | None) -> dict[str, Any] | None:
    """A failure with its chain of inner failures (outermost first)."""
    if details is None:
        return None
    return {
        "error_type": details.error_type,
        "message": details.message,
        "stack_trace": details.stack_trace,
        "is_non_retriable": details.is_non_retriable,
        "inner_failure": failure(details.inner_failure),
    }


def instance(state: OrchestrationState, *, payloads: bool) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "instance_id": state.instance_id,
        "name": state.name,
        "runtime_status": state.runtime_status.value,
        "created_at": when(state.created_at),
        "last_updated_at": when(state.last_updated_at),
        "completed_at": when(state.completed_at),
        "version": state.version,
        "tags": state.tags,
        "parent_instance_id": state.parent_instance_id,
        "failure_details": failure(state.failure_details),
        "custom_status": payload(state.serialized_custom_status),
    }
    if payloads:
        doc["input"] = payload(state.serialized_input)
        doc["output"] = payload(state.serialized_output)
    return doc


def _value(name: str, value: Any) -> Any:
    if name in PAYLOAD_FIELDS and (value is None or isinstance(value, str)):
        return payload(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, FailureDetails):
        return failure(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _value(f.name, getattr(value, f.name)) for f in dataclasses.fields(value)}
    return value


def event(index: int, item: HistoryEvent) -> dict[str, Any]:
    """A history event: its position, ``type`` and every field (payloads decoded)."""
    doc: dict[str, Any] = {"index": index, "type": type(item).__name__}
    for f in dataclasses.fields(item):
        doc[f.name] = _value(f.name, getattr(item, f.name))
    return doc


def _seconds(value: timedelta | None) -> float | None:
    return None if value is None else round(value.total_seconds(), 3)


def partition(lease: PartitionLease) -> dict[str, Any]:
    return {
        "partition": lease.partition,
        "queue": lease.queue,
        "owner": lease.owner,
        "next_owner": lease.next_owner,
        "expires_at": when(lease.expires_at),
        "is_draining": lease.is_draining,
        "backlog": lease.approximate_messages,
        "oldest_message_age_seconds": _seconds(lease.oldest_message_age),
    }


def poison_key(message: PoisonMessage) -> str:
    """The short key ``<queue>/<message id>`` used in URLs (as ``poison list`` prints it)."""
    return f"{message.queue_name}/{message.message_id}"


def poison(message: PoisonMessage, *, body: bool) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "key": poison_key(message),
        "queue": message.queue_name,
        "message_id": message.message_id,
        "instance_id": message.instance_id,
        "dequeue_count": message.dequeue_count,
        "reason": message.reason,
        "quarantined_at": when(message.quarantined_at),
    }
    if body:
        doc["body"] = payload(message.body)
    return doc
