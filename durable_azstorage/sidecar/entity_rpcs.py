"""The portable SDK's entity client RPCs, on our ``AsyncTaskHubClient``.

``SignalEntity`` is one queue message; ``GetEntity`` one Instances read; ``QueryEntities``
answers every match in one response (no continuation token); ``CleanEntityStorage`` does
all its work in one call. Payloads pass through as the SDK serialized them.
"""

from __future__ import annotations

from datetime import timezone
from typing import Any

from durabletask.internal import orchestrator_service_pb2 as pb

from durable_azstorage.client.async_client import AsyncTaskHubClient
from durable_azstorage.client.entities import EntityMetadata, EntityQuery
from durable_azstorage.model.entities import EntityInstanceId
from durable_azstorage.sidecar.errors import InvalidRequestError


class EntityRpcs:
    def __init__(self, client: AsyncTaskHubClient) -> None:
        self._client = client

    async def signal(self, request: pb.SignalEntityRequest) -> pb.SignalEntityResponse:
        entity = _entity_id(request.instanceId)
        if not request.name:
            raise InvalidRequestError("name", "the operation name is required")
        when = (
            request.scheduledTime.ToDatetime(tzinfo=timezone.utc)
            if request.HasField("scheduledTime")
            else None
        )
        await self._client.signal_entity(entity, request.name, _text(request, "input"), when)
        return pb.SignalEntityResponse()

    async def get(self, request: pb.GetEntityRequest) -> pb.GetEntityResponse:
        found = await self._client.get_entity(_entity_id(request.instanceId), request.includeState)
        if found is None:
            return pb.GetEntityResponse(exists=False)
        return pb.GetEntityResponse(exists=True, entity=_metadata(found))

    async def query(self, request: pb.QueryEntitiesRequest) -> pb.QueryEntitiesResponse:
        q = request.query
        query = EntityQuery(
            instance_id_starts_with=_text(q, "instanceIdStartsWith"),
            last_modified_from=q.lastModifiedFrom.ToDatetime(tzinfo=timezone.utc)
            if q.HasField("lastModifiedFrom")
            else None,
            last_modified_to=q.lastModifiedTo.ToDatetime(tzinfo=timezone.utc)
            if q.HasField("lastModifiedTo")
            else None,
            include_state=q.includeState,
            include_transient=q.includeTransient,
        )
        found = await self._client.get_all_entities(query)
        return pb.QueryEntitiesResponse(entities=[_metadata(e) for e in found])

    async def clean(self, request: pb.CleanEntityStorageRequest) -> pb.CleanEntityStorageResponse:
        result = await self._client.clean_entity_storage(
            request.removeEmptyEntities, request.releaseOrphanedLocks
        )
        return pb.CleanEntityStorageResponse(
            emptyEntitiesRemoved=result.empty_entities_removed,
            orphanedLocksReleased=result.orphaned_locks_released,
        )


def _entity_id(instance_id: str) -> EntityInstanceId:
    try:
        return EntityInstanceId.parse(instance_id)
    except ValueError as exc:
        raise InvalidRequestError("instanceId", str(exc)) from None


def _metadata(entity: EntityMetadata) -> Any:
    message = pb.EntityMetadata(
        instanceId=str(entity.id), backlogQueueSize=entity.backlog_queue_size
    )
    message.lastModifiedTime.FromDatetime(entity.last_modified)
    if entity.locked_by is not None:
        message.lockedBy.value = entity.locked_by
    if entity.state is not None:
        message.serializedState.value = entity.state
    return message


def _text(message: Any, field: str) -> str | None:
    return getattr(message, field).value if message.HasField(field) else None
