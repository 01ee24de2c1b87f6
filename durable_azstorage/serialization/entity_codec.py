"""JSON for the entity documents of ``model.entities`` (requests, responses, records).

They travel as the text of ``EventRaised.input`` and ``ExecutionStarted.input``, so they are
part of the storage format like ``codec``'s documents: versioned, strictly decoded, and a
malformed document raises ``ValueError`` naming what is wrong.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from durable_azstorage.model.entities import (
    ENTITY_FORMAT_VERSION,
    EntityRecord,
    EntityRequest,
    EntityResponse,
    SenderProgress,
    document,
    optional_str,
    request_fields,
    request_from,
)
from durable_azstorage.serialization.codec import (
    decode_datetime,
    decode_failure,
    encode_datetime,
    encode_failure,
)


def encode_response(response: EntityResponse) -> str:
    doc: dict[str, Any] = {"v": ENTITY_FORMAT_VERSION}
    if response.result is not None:
        doc["result"] = response.result
    if response.failure is not None:
        doc["failure"] = encode_failure(response.failure)
    if response.locked:
        doc["locked"] = True
    return json.dumps(doc, separators=(",", ":"))


def decode_response(text: str | None) -> EntityResponse:
    doc = document(text, "entity response")
    failure = doc.get("failure")
    return EntityResponse(
        result=optional_str(doc, "result", "entity response"),
        failure=decode_failure(failure, path="entity response.failure")
        if failure is not None
        else None,
        locked=bool(doc.get("locked", False)),
    )


def encode_record(record: EntityRecord) -> str:
    doc: dict[str, Any] = {"v": ENTITY_FORMAT_VERSION}
    if record.state is not None:
        doc["state"] = record.state
    if record.locked_by is not None:
        doc["locked_by"] = record.locked_by
    if record.backlog:
        doc["backlog"] = [request_fields(r) for r in record.backlog]
    if record.held:
        doc["held"] = [request_fields(r) for r in record.held]
    if record.senders:
        doc["senders"] = {
            k: [p.next, encode_datetime(p.seen_at)] for k, p in record.senders.items()
        }
    if record.outgoing:
        doc["outgoing"] = dict(record.outgoing)
    if record.last_modified is not None:
        doc["last_modified"] = encode_datetime(record.last_modified)
    return json.dumps(doc, separators=(",", ":"))


def decode_record(text: str | None) -> EntityRecord:
    """The record stored as ``text``; None or empty text is a new entity's empty record."""
    if not text:
        return EntityRecord()
    path = "entity record"
    doc = document(text, path)
    senders: dict[str, SenderProgress] = {}
    for key, value in _mapping(doc.get("senders", {}), f"{path}.senders").items():
        if not (isinstance(value, list) and len(value) == 2 and isinstance(value[0], int)):
            raise ValueError(f"{path}.senders.{key}: expected [next, seen_at]")
        senders[key] = SenderProgress(
            next=value[0], seen_at=decode_datetime(value[1], path=f"{path}.senders.{key}")
        )
    outgoing = _mapping(doc.get("outgoing", {}), f"{path}.outgoing")
    if not all(isinstance(v, int) for v in outgoing.values()):
        raise ValueError(f"{path}.outgoing: expected an object of integers")
    modified = doc.get("last_modified")
    return EntityRecord(
        state=optional_str(doc, "state", path),
        locked_by=optional_str(doc, "locked_by", path),
        backlog=tuple(_request_list(doc.get("backlog", []), f"{path}.backlog")),
        held=tuple(_request_list(doc.get("held", []), f"{path}.held")),
        senders=senders,
        outgoing=dict(outgoing),
        last_modified=decode_datetime(modified, path=f"{path}.last_modified") if modified else None,
    )


def _request_list(raw: Any, path: str) -> list[EntityRequest]:
    if not isinstance(raw, list):
        raise ValueError(f"{path}: expected a list")
    return [
        request_from(_mapping(item, f"{path}[{i}]"), f"{path}[{i}]") for i, item in enumerate(raw)
    ]


def _mapping(raw: Any, path: str) -> Mapping[str, Any]:
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected an object")
    return raw
