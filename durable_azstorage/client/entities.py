"""Client operations on durable entities, and what they return.

Entities are instances with ``@name@key`` ids (``model.entities``): a signal is one queue
message to the entity's control queue; reading an entity is one read of its Instances row,
whose input is the entity's record (state, lock, backlog).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Any, TypeVar, overload

from durable_azstorage.backend.protocol import Backend
from durable_azstorage.model.entities import (
    ENTITY_REQUEST,
    EntityInstanceId,
    EntityRecord,
    EntityRequest,
    RequestKind,
    encode_request,
    is_entity_id,
)
from durable_azstorage.model.history import EventRaised, OrchestrationInstance
from durable_azstorage.model.messages import TaskMessage
from durable_azstorage.model.query import OrchestrationQuery
from durable_azstorage.model.state import InstanceState
from durable_azstorage.serialization.converter import DataConverter, deserialize_as
from durable_azstorage.serialization.entity_codec import decode_record

TState = TypeVar("TState")


@dataclass(frozen=True, slots=True)
class EntityQuery:
    """Filters for ``get_all_entities`` (the portable SDK's fields). ``include_transient``
    also lists entities without state (locked, or with requests waiting)."""

    instance_id_starts_with: str | None = None
    last_modified_from: datetime | None = None
    last_modified_to: datetime | None = None
    include_state: bool = True
    include_transient: bool = False
    page_size: int | None = None


@dataclass(frozen=True, slots=True)
class CleanEntityStorageResult:
    empty_entities_removed: int
    orphaned_locks_released: int


@dataclass(frozen=True, slots=True, kw_only=True)
class EntityMetadata:
    """An entity as stored: ``state`` is the serialized state (None without state, or when
    not requested); ``locked_by`` the orchestration holding its lock; ``backlog_queue_size``
    the requests waiting for that lock."""

    id: EntityInstanceId
    last_modified: datetime
    backlog_queue_size: int
    locked_by: str | None
    includes_state: bool
    state: str | None
    converter: DataConverter

    @overload
    def get_state(self, intended_type: type[TState]) -> TState | None: ...

    @overload
    def get_state(self, intended_type: None = None) -> Any: ...

    def get_state(self, intended_type: Any = None) -> Any:
        """The state, deserialized (rebuilt as ``intended_type`` when given)."""
        if self.state is None:
            return None
        return deserialize_as(self.converter, self.state, intended_type)


def signal_message(
    entity_id: EntityInstanceId,
    operation_name: str,
    input: str | None,
    signal_time: datetime | None,
) -> TaskMessage:
    """The queue message of a client signal (``input`` serialized)."""
    if not isinstance(entity_id, EntityInstanceId):
        raise TypeError(f"entity_id must be an EntityInstanceId, got {type(entity_id).__name__}")
    if not isinstance(operation_name, str) or not operation_name:
        raise ValueError("operation_name must be a non-empty string")
    if signal_time is not None and signal_time.tzinfo is None:
        signal_time = signal_time.replace(tzinfo=timezone.utc)
    request = EntityRequest(
        kind=RequestKind.SIGNAL, id=uuid.uuid4().hex, operation=operation_name, input=input
    )
    event = EventRaised(
        timestamp=datetime.now(timezone.utc),
        name=ENTITY_REQUEST,
        input=encode_request(request),
        scheduled_time=signal_time,
    )
    return TaskMessage(instance=OrchestrationInstance(instance_id=str(entity_id)), event=event)


def metadata(
    state: InstanceState, converter: DataConverter, *, include_state: bool
) -> tuple[EntityMetadata, EntityRecord]:
    record = decode_record(state.input)
    return EntityMetadata(
        id=EntityInstanceId.parse(state.instance_id),
        last_modified=record.last_modified or state.last_updated_at,
        backlog_queue_size=len(record.backlog) + len(record.held),
        locked_by=record.locked_by,
        includes_state=include_state,
        state=record.state if include_state else None,
        converter=converter,
    ), record


async def get_entity(
    backend: Backend, converter: DataConverter, entity_id: EntityInstanceId, *, include_state: bool
) -> EntityMetadata | None:
    """The entity, or None when it does not exist or has no state."""
    state = await backend.get_instance(str(entity_id), fetch_payloads=True)
    if state is None:
        return None
    found, record = metadata(state, converter, include_state=include_state)
    return found if record.state is not None else None


async def query_entities(
    backend: Backend, converter: DataConverter, query: EntityQuery
) -> list[tuple[EntityMetadata, EntityRecord]]:
    """Every entity matching ``query`` (pages followed), with its record."""
    prefix = query.instance_id_starts_with or "@"
    if not prefix.startswith("@"):
        prefix = "@" + prefix
    page_query = OrchestrationQuery(
        instance_id_prefix=prefix, fetch_inputs_and_outputs=True, page_size=query.page_size or 100
    )
    found: list[tuple[EntityMetadata, EntityRecord]] = []
    while True:
        page = await backend.query_instances(page_query)
        for state in page.items:
            if not is_entity_id(state.instance_id):
                continue
            entry, record = metadata(state, converter, include_state=query.include_state)
            if record.state is None and not query.include_transient:
                continue
            if query.last_modified_from is not None and entry.last_modified < _utc(
                query.last_modified_from
            ):
                continue
            if query.last_modified_to is not None and entry.last_modified > _utc(
                query.last_modified_to
            ):
                continue
            found.append((entry, record))
        if page.continuation_token is None:
            return found
        page_query = replace(page_query, continuation_token=page.continuation_token)


async def clean_entity_storage(
    backend: Backend,
    converter: DataConverter,
    *,
    remove_empty_entities: bool,
    release_orphaned_locks: bool,
) -> CleanEntityStorageResult:
    """Release locks whose owner no longer runs; remove entities with nothing stored."""
    entities = await query_entities(backend, converter, EntityQuery(include_transient=True))
    removed = released = 0
    for entry, record in entities:
        owner = record.locked_by
        if release_orphaned_locks and owner is not None and not await _running(backend, owner):
            release = EntityRequest(kind=RequestKind.RELEASE, id=uuid.uuid4().hex, parent=owner)
            event = EventRaised(
                timestamp=datetime.now(timezone.utc),
                name=ENTITY_REQUEST,
                input=encode_request(release),
            )
            await backend.send_message(
                TaskMessage(instance=OrchestrationInstance(instance_id=str(entry.id)), event=event)
            )
            released += 1
        elif remove_empty_entities and record.is_empty:
            if await backend.purge_instance(str(entry.id)):
                removed += 1
    return CleanEntityStorageResult(
        empty_entities_removed=removed, orphaned_locks_released=released
    )


async def _running(backend: Backend, instance_id: str) -> bool:
    state = await backend.get_instance(instance_id, fetch_payloads=False)
    return state is not None and not state.runtime_status.is_terminal


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value
