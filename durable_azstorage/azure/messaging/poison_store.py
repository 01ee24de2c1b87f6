"""``PoisonStore``: messages set aside because they were delivered too often or cannot be read.

DTFx keeps re-delivering a poison message every 10 minutes forever (infinite TTL). Here it is
copied to a JSON blob under ``$poison/`` in the hub's large-message container (so deleting
the hub deletes it too, and purging an instance never touches it), with the reason, the
source queue and the original body; then the queue copy is deleted or consumed by the
failing commit. ``list``/``get`` inspect the store; ``AzureStorageBackend.replay_poison(key)``
puts a body back on its queue.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from azure.core.exceptions import ResourceNotFoundError
from azure.storage.blob.aio import ContainerClient

from durable_azstorage.azure.messaging.queues import ReceivedMessage
from durable_azstorage.azure.storage.payloads import instance_of_blob
from durable_azstorage.azure.storage.retry import TransientRetry
from durable_azstorage.serialization.codec import encode_message

PREFIX = "$poison/"


@dataclass(frozen=True, slots=True, kw_only=True)
class PoisonRecord:
    """One quarantined message. ``key`` identifies it in the store."""

    key: str
    queue_name: str
    message_id: str
    dequeue_count: int
    reason: str
    body: str
    instance_id: str | None
    quarantined_at: datetime


class PoisonStore:
    """Blob-backed quarantine of poison messages (inspectable, replayable)."""

    def __init__(self, container: ContainerClient, retry: TransientRetry) -> None:
        self._container = container
        self._retry = retry

    async def put(self, received: ReceivedMessage, reason: str) -> PoisonRecord:
        """Copy ``received`` into the store (idempotent per queue message id). The instance
        of an undecodable message is known when its payload blob was named (its folder)."""
        if received.message is not None:
            instance_id: str | None = received.message.instance.instance_id
        else:
            instance_id = instance_of_blob(received.payload_blob) if received.payload_blob else None
        record = PoisonRecord(  # a result carried by its request belongs to its control queue
            key=f"{PREFIX}{received.home}/{received.message_id}.json",
            queue_name=received.home,
            message_id=received.message_id,
            dequeue_count=received.dequeue_count,
            reason=reason,
            body=_self_contained_body(received),
            instance_id=instance_id,
            quarantined_at=datetime.now(timezone.utc),
        )
        doc = {
            "queue": record.queue_name,
            "message_id": record.message_id,
            "dequeue_count": record.dequeue_count,
            "reason": record.reason,
            "body": record.body,
            "instance_id": record.instance_id,
            "quarantined_at": record.quarantined_at.isoformat(),
        }
        data = json.dumps(doc).encode("utf-8")
        await self._retry.call(
            lambda: self._container.upload_blob(record.key, data, overwrite=True)
        )
        return record

    async def list(self) -> list[PoisonRecord]:
        """Every quarantined message, oldest key first."""
        keys = [b.name async for b in self._container.list_blobs(name_starts_with=PREFIX)]
        records = [await self.get(k) for k in sorted(keys)]
        return [r for r in records if r is not None]

    async def get(self, key: str) -> PoisonRecord | None:
        try:
            stream = await self._retry.call(lambda: self._container.download_blob(key))
            raw = await stream.readall()
        except ResourceNotFoundError:
            return None
        doc: dict[str, Any] = json.loads(raw)
        return PoisonRecord(
            key=key,
            queue_name=doc["queue"],
            message_id=doc["message_id"],
            dequeue_count=doc["dequeue_count"],
            reason=doc["reason"],
            body=doc["body"],
            instance_id=doc.get("instance_id"),
            quarantined_at=datetime.fromisoformat(doc["quarantined_at"]),
        )

    async def delete(self, key: str) -> bool:
        try:
            await self._retry.call(lambda: self._container.delete_blob(key))
        except ResourceNotFoundError:
            return False
        return True


def _self_contained_body(received: ReceivedMessage) -> str:
    """The message as the record keeps it: a decoded message whose body was in a payload
    blob is stored whole, since that blob goes when the queue message is consumed."""
    if received.message is not None and received.payload_blob is not None:
        return encode_message(
            received.message, sequence_number=received.sequence_number, answers=received.answers
        )
    return received.raw
