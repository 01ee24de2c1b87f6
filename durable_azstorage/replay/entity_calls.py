"""The orchestration side of entities: signals, calls and critical sections.

Every message to an entity is recorded as an ``EventSent`` (a ``SendEvent`` action), so
replay matches it like any ``send_event`` and the checkpoint re-derives it after a crash.
Requests carry the sending execution as ``sender`` and a per-target sequence number, so the
entity runs them in the order sent and drops re-sent copies. Answers come back as events
named ``response_event_name(request_id)``, completing an ``EntityResponseTask``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from durable_azstorage.authoring.entities import EntityLock, EntityOperationFailedException
from durable_azstorage.authoring.tasks import CancellableTask, Task
from durable_azstorage.model.entities import (
    ENTITY_REQUEST,
    EntityInstanceId,
    EntityRequest,
    RequestKind,
    encode_request,
    response_event_name,
)
from durable_azstorage.serialization.converter import DataConverter, deserialize_as
from durable_azstorage.serialization.entity_codec import decode_response

if TYPE_CHECKING:
    from durable_azstorage.replay.context import RuntimeOrchestrationContext


class EntityResponseTask(CancellableTask[Any]):
    """Waits for an entity's answer: a call's result (or failure), or a granted lock."""

    __slots__ = ("_entity", "_operation", "_return_type", "_lock")

    def __init__(
        self, entity: EntityInstanceId, operation: str, return_type: Any, lock: EntityLock | None
    ) -> None:
        super().__init__()
        self._entity = entity
        self._operation = operation
        self._return_type = return_type
        self._lock = lock

    def accept(self, data: str | None, converter: DataConverter) -> None:
        try:
            response = decode_response(data)
            if response.failure is not None:
                self.fail(
                    EntityOperationFailedException(self._entity, self._operation, response.failure)
                )
            elif self._lock is not None:
                self.complete(self._lock)
            else:
                self.complete(deserialize_as(converter, response.result, self._return_type))
        except Exception as exc:  # noqa: BLE001 - surfaced to the orchestrator code
            self.fail(exc)


class OrchestrationEntities:
    """One replay's entity bookkeeping: sequence numbers per target and the critical section."""

    def __init__(self, ctx: RuntimeOrchestrationContext) -> None:
        self._ctx = ctx
        self._sent: dict[str, int] = {}
        self.critical_section: tuple[str, ...] | None = None

    def signal(
        self, entity: EntityInstanceId, operation: str, input: Any, signal_time: datetime | None
    ) -> None:
        target = _entity_id(entity)
        if self.critical_section is not None and str(target) in self.critical_section:
            raise RuntimeError(
                f"cannot signal entity '{target}' inside a critical section that locks it; call it instead"
            )
        request = EntityRequest(
            kind=RequestKind.SIGNAL,
            id=self._ctx.new_uuid(),
            operation=operation,
            input=self._ctx.converter.serialize(input),
            parent=self._ctx.instance_id,
        )
        self._send(str(target), request, sequenced=signal_time is None, scheduled_time=signal_time)

    def call(
        self, entity: EntityInstanceId, operation: str, input: Any, return_type: Any
    ) -> Task[Any]:
        target = _entity_id(entity)
        if self.critical_section is not None and str(target) not in self.critical_section:
            raise RuntimeError(
                f"cannot call entity '{target}' inside a critical section that does not lock it "
                f"(locked: {', '.join(self.critical_section)})"
            )
        request = EntityRequest(
            kind=RequestKind.CALL,
            id=self._ctx.new_uuid(),
            operation=operation,
            input=self._ctx.converter.serialize(input),
            parent=self._ctx.instance_id,
        )
        task = EntityResponseTask(target, operation, return_type, None)
        self._ctx.await_event(response_event_name(request.id), task)
        self._send(str(target), request, sequenced=True, scheduled_time=None)
        return task

    def lock(self, entities: Sequence[EntityInstanceId]) -> Task[EntityLock]:
        if self.critical_section is not None:
            raise RuntimeError("cannot lock entities inside a critical section (locks do not nest)")
        ids = sorted({str(_entity_id(e)) for e in entities})
        if not ids:
            raise ValueError("lock_entities needs at least one entity id")
        request = EntityRequest(
            kind=RequestKind.LOCK,
            id=self._ctx.new_uuid(),
            parent=self._ctx.instance_id,
            lock_set=tuple(ids),
            position=0,
        )
        task = EntityResponseTask(
            EntityInstanceId.parse(ids[0]), "lock", None, EntityLock(self._ctx)
        )
        self._ctx.await_event(response_event_name(request.id), task)
        self._send(ids[0], request, sequenced=True, scheduled_time=None)
        self.critical_section = tuple(ids)
        return task

    def exit_critical_section(self) -> None:
        """Release every lock of the current critical section (leaving the ``with`` block)."""
        if self.critical_section is None:
            return
        for target in self.critical_section:
            release = EntityRequest(
                kind=RequestKind.RELEASE, id=self._ctx.new_uuid(), parent=self._ctx.instance_id
            )
            self._send(target, release, sequenced=False, scheduled_time=None)
        self.critical_section = None

    def _send(
        self,
        target: str,
        request: EntityRequest,
        *,
        sequenced: bool,
        scheduled_time: datetime | None,
    ) -> None:
        if sequenced:
            sequence = self._sent.get(target, 0)
            self._sent[target] = sequence + 1
            request = replace(request, sender=self._ctx.sender_key, sequence=sequence)
        self._ctx.send_raw(target, ENTITY_REQUEST, encode_request(request), scheduled_time)


def _entity_id(entity: EntityInstanceId | str) -> EntityInstanceId:
    if isinstance(entity, EntityInstanceId):
        return entity
    if isinstance(entity, str):
        return EntityInstanceId.parse(entity)
    raise TypeError(f"expected an EntityInstanceId, got {type(entity).__name__}")
