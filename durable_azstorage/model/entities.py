"""Durable entities as stored: ids, the requests sent to them, and their durable record.

An entity lives in the task hub as an instance whose id is ``@name@key`` (as in DTFx), so it
shares the History/Instances tables, the control queues and the checkpoint protocol with
orchestrations. Every message to an entity is an ``EventRaised`` named ``ENTITY_REQUEST``
whose input is an ``EntityRequest``; answers to orchestrations are ``EventRaised`` events named
``response_event_name(request_id)``. An entity's durable ``EntityRecord`` (its user state,
its lock, the requests waiting for the lock, per-sender sequence numbers) is the input of
the ``ExecutionStarted`` each entity episode records (see ``replay.entity_episode``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any

from durable_azstorage.model.errors import InvalidIdentifierError
from durable_azstorage.model.failure import FailureDetails
from durable_azstorage.model.history import EventSent, HistoryEvent

ENTITY_FORMAT_VERSION = 1
"""Version written into every entity document (requests, responses, records)."""

ENTITY_REQUEST = "@entity-request"
"""``EventRaised.name`` of every message to an entity."""

_RESPONSE_PREFIX = "@entity-response@"


def response_event_name(request_id: str) -> str:
    """The event name under which an entity answers the call or lock request ``request_id``."""
    return f"{_RESPONSE_PREFIX}{request_id}"


def request_id_of_response(event_name: str) -> str | None:
    """The request id an entity's answer event names, or None for other events."""
    if event_name.startswith(_RESPONSE_PREFIX):
        return event_name[len(_RESPONSE_PREFIX) :]
    return None


def is_entity_id(instance_id: str) -> bool:
    """True for instance ids of entities (``@name@key``)."""
    return instance_id.startswith("@")


@dataclass(frozen=True, slots=True, order=True)
class EntityInstanceId:
    """Identifies one entity: its (lower-cased) name and its key. ``str()`` is ``@name@key``.

    Neither part may be empty or contain ``@`` (the separator): the id would not parse back.
    """

    entity: str
    key: str

    def __init__(self, entity: str, key: str) -> None:
        _validate_part(entity, "entity name")
        _validate_part(key, "entity key")
        object.__setattr__(self, "entity", entity.lower())
        object.__setattr__(self, "key", key)

    def __str__(self) -> str:
        return f"@{self.entity}@{self.key}"

    @staticmethod
    def parse(entity_id: str) -> EntityInstanceId:
        """The id whose ``str()`` is ``entity_id``; ``ValueError`` naming the problem otherwise."""
        if not isinstance(entity_id, str) or not entity_id.startswith("@"):
            raise InvalidIdentifierError(
                f"entity id {entity_id!r} must have the form '@name@key' (it starts with '@')"
            )
        parts = entity_id[1:].split("@", 1)
        if len(parts) != 2:
            raise InvalidIdentifierError(f"entity id {entity_id!r} must have the form '@name@key'")
        return EntityInstanceId(parts[0], parts[1])


def _validate_part(value: object, what: str) -> None:
    if not isinstance(value, str):
        raise InvalidIdentifierError(f"{what} must be a string, got {type(value).__name__}")
    if not value:
        raise InvalidIdentifierError(f"{what} must not be empty")
    if "@" in value:
        raise InvalidIdentifierError(f"{what} {value!r} must not contain '@' (the id separator)")


class RequestKind(Enum):
    SIGNAL = "signal"
    CALL = "call"
    LOCK = "lock"
    RELEASE = "release"


@dataclass(frozen=True, slots=True, kw_only=True)
class EntityRequest:
    """One message to an entity.

    ``parent`` is the orchestration that waits for the answer (call, lock) or owns the lock
    (release, and every request sent from inside its critical section). ``lock_set`` is the
    sorted set of entities a lock request acquires, ``position`` this entity's place in it
    (the request is forwarded along the set, so locks are always taken in the same global
    order). ``sender``/``sequence`` order the messages of one sender (an orchestration
    execution or an entity); None for clients and lock releases, which need no order.
    """

    kind: RequestKind
    id: str
    operation: str | None = None
    input: str | None = None
    parent: str | None = None
    lock_set: tuple[str, ...] = ()
    position: int = 0
    sender: str | None = None
    sequence: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class SenderProgress:
    """The next sequence number expected from one sender, and when it was last heard from."""

    next: int
    seen_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class EntityRecord:
    """An entity's durable record, committed with every batch of operations.

    ``state`` is the user state (serialized; None when the entity has none). ``locked_by``
    is the orchestration holding the entity's lock. ``backlog`` are admitted requests waiting
    for the lock to be released; ``held`` are requests that arrived ahead of an earlier one
    from the same sender. ``outgoing`` counts the sequenced messages this entity sent, per
    target.
    """

    state: str | None = None
    locked_by: str | None = None
    backlog: tuple[EntityRequest, ...] = ()
    held: tuple[EntityRequest, ...] = ()
    senders: dict[str, SenderProgress] = field(default_factory=dict)
    outgoing: dict[str, int] = field(default_factory=dict)
    last_modified: datetime | None = None

    @property
    def is_empty(self) -> bool:
        """No state, no lock and nothing waiting: the entity may be removed from storage."""
        return self.state is None and self.locked_by is None and not self.backlog and not self.held


@dataclass(frozen=True, slots=True, kw_only=True)
class EntityResponse:
    """An entity's answer to a call (``result`` or ``failure``) or to a lock request
    (``locked``)."""

    result: str | None = None
    failure: FailureDetails | None = None
    locked: bool = False


def encode_request(request: EntityRequest) -> str:
    return json.dumps(
        {"v": ENTITY_FORMAT_VERSION, **request_fields(request)}, separators=(",", ":")
    )


def decode_request(text: str | None) -> EntityRequest:
    """Inverse of ``encode_request``; ``ValueError`` naming what is wrong."""
    return request_from(document(text, "entity request"), "entity request")


def request_fields(request: EntityRequest) -> dict[str, Any]:
    doc: dict[str, Any] = {"kind": request.kind.value, "id": request.id}
    for name in ("operation", "input", "parent", "sender", "sequence"):
        value = getattr(request, name)
        if value is not None:
            doc[name] = value
    if request.lock_set:
        doc["lock_set"] = list(request.lock_set)
        doc["position"] = request.position
    return doc


def request_from(doc: Mapping[str, Any], path: str) -> EntityRequest:
    kind = doc.get("kind")
    try:
        parsed = RequestKind(kind)
    except ValueError:
        allowed = ", ".join(k.value for k in RequestKind)
        raise ValueError(
            f"{path}.kind: unknown request kind {kind!r}; expected one of: {allowed}"
        ) from None
    request_id = doc.get("id")
    if not isinstance(request_id, str):
        raise ValueError(f"{path}.id: missing or not a string")
    lock_set = doc.get("lock_set", [])
    if not isinstance(lock_set, list) or not all(isinstance(e, str) for e in lock_set):
        raise ValueError(f"{path}.lock_set: expected a list of entity ids")
    sequence = doc.get("sequence")
    position = doc.get("position", 0)
    if (sequence is not None and not isinstance(sequence, int)) or not isinstance(position, int):
        raise ValueError(f"{path}: sequence and position must be integers")
    return EntityRequest(
        kind=parsed,
        id=request_id,
        operation=optional_str(doc, "operation", path),
        input=optional_str(doc, "input", path),
        parent=optional_str(doc, "parent", path),
        lock_set=tuple(lock_set),
        position=position,
        sender=optional_str(doc, "sender", path),
        sequence=sequence,
    )


def document(text: str | None, path: str) -> dict[str, Any]:
    if text is None:
        raise ValueError(f"{path}: missing")
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise ValueError(f"{path}: expected a JSON object")
    if doc.get("v") != ENTITY_FORMAT_VERSION:
        raise ValueError(f"{path}.v: unsupported format version {doc.get('v')!r}")
    return doc


def optional_str(doc: Mapping[str, Any], name: str, path: str) -> str | None:
    value = doc.get(name)
    if value is not None and not isinstance(value, str):
        raise ValueError(f"{path}.{name}: expected a string")
    return value


def held_entity_locks(history: Sequence[HistoryEvent]) -> list[str]:
    """Entities an orchestration asked to lock and did not release (released when it ends)."""
    held: dict[str, None] = {}
    for event in history:
        if not (isinstance(event, EventSent) and event.name == ENTITY_REQUEST):
            continue
        try:
            request = decode_request(event.input)
        except ValueError:
            continue
        if request.kind is RequestKind.LOCK:
            held.update(dict.fromkeys(request.lock_set))
        elif request.kind is RequestKind.RELEASE:
            held.pop(event.instance_id, None)
    return list(held)
