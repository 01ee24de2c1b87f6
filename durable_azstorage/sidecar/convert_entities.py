"""Entities between our model and the portable SDK's protobufs.

Orchestration side: the SDK's ``sendEntityMessage`` actions become ``SendEvent`` actions of
``ENTITY_REQUEST`` events (``EntitySequencer`` numbers them per target, as our own context
does), and our recorded ``EventSent``/``EventRaised`` entity events are shown to the SDK as
its ``entityOperationCalled``/``entityLockGranted``/... history events, so its replay matches.
Entity side: a batch of operations becomes an ``EntityBatchRequest`` and its
``EntityBatchResult`` a ``BatchOutcome``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timezone
from typing import Any

from durabletask.internal import orchestrator_service_pb2 as pb

from durable_azstorage.authoring.entities import SignalAction, StartAction
from durable_azstorage.model.actions import SendEvent
from durable_azstorage.model.entities import (
    ENTITY_REQUEST,
    EntityInstanceId,
    EntityRequest,
    RequestKind,
    decode_request,
    encode_request,
    request_id_of_response,
)
from durable_azstorage.model.history import EventRaised, EventSent, ExecutionStarted, HistoryEvent
from durable_azstorage.replay.entity_operations import BatchOutcome, OperationOutcome
from durable_azstorage.serialization.entity_codec import decode_response
from durable_azstorage.sidecar.convert_failure import failure_from_pb, failure_to_pb


class EntitySequencer:
    """Numbers one execution's entity requests per target, continuing its recorded ones."""

    def __init__(self, history: Sequence[HistoryEvent]) -> None:
        started = next((e for e in history if isinstance(e, ExecutionStarted)), None)
        self.instance_id = started.instance.instance_id if started is not None else ""
        self.sender = (
            f"{self.instance_id}:{started.instance.execution_id}" if started is not None else ""
        )
        self._next: dict[str, int] = {}
        for event in history:
            if isinstance(event, EventSent) and event.name == ENTITY_REQUEST:
                request = decode_request(event.input)
                if request.sender == self.sender and request.sequence is not None:
                    self._next[event.instance_id] = max(
                        self._next.get(event.instance_id, 0), request.sequence + 1
                    )

    def number(self, target: str) -> int:
        sequence = self._next.get(target, 0)
        self._next[target] = sequence + 1
        return sequence


def entity_action_from_pb(aid: int, message: Any, sequencer: EntitySequencer) -> SendEvent:
    """One ``SendEntityMessageAction`` as the ``SendEvent`` of an entity request."""
    kind = message.WhichOneof("EntityMessageType")
    scheduled = None
    if kind == "entityOperationSignaled":
        x = message.entityOperationSignaled
        target = x.targetInstanceId.value
        request = EntityRequest(
            kind=RequestKind.SIGNAL,
            id=x.requestId,
            operation=x.operation,
            input=_str(x, "input"),
            parent=sequencer.instance_id,
        )
        scheduled = _time(x.scheduledTime) if x.HasField("scheduledTime") else None
    elif kind == "entityOperationCalled":
        x = message.entityOperationCalled
        target = x.targetInstanceId.value
        request = EntityRequest(
            kind=RequestKind.CALL,
            id=x.requestId,
            operation=x.operation,
            input=_str(x, "input"),
            parent=x.parentInstanceId.value or sequencer.instance_id,
        )
    elif kind == "entityLockRequested":
        x = message.entityLockRequested
        target = x.lockSet[x.position]
        request = EntityRequest(
            kind=RequestKind.LOCK,
            id=x.criticalSectionId,
            lock_set=tuple(x.lockSet),
            position=x.position,
            parent=x.parentInstanceId.value or sequencer.instance_id,
        )
    elif kind == "entityUnlockSent":
        x = message.entityUnlockSent
        target = x.targetInstanceId.value
        release = EntityRequest(
            kind=RequestKind.RELEASE,
            id=x.criticalSectionId,
            parent=x.parentInstanceId.value or sequencer.instance_id,
        )
        return SendEvent(
            id=aid, instance_id=target, name=ENTITY_REQUEST, data=encode_request(release)
        )
    else:
        raise ValueError(f"sendEntityMessage action {aid} has no known message type ({kind!r})")
    EntityInstanceId.parse(target)  # a bad target id is refused here, naming it
    if scheduled is None:
        request = replace(request, sender=sequencer.sender, sequence=sequencer.number(target))
    return SendEvent(
        id=aid,
        instance_id=target,
        name=ENTITY_REQUEST,
        data=encode_request(request),
        scheduled_time=scheduled,
    )


def entity_event_to_pb(message: Any, event: EventSent | EventRaised) -> bool:
    """Write ``event`` as the SDK's entity history event; False if it is no entity event."""
    if isinstance(event, EventSent):
        if event.name != ENTITY_REQUEST:
            return False
        request = decode_request(event.input)
        if request.kind is RequestKind.SIGNAL:
            x = message.entityOperationSignaled
            x.requestId, x.operation = request.id, request.operation or ""
            x.targetInstanceId.value = event.instance_id
            if event.scheduled_time is not None:
                x.scheduledTime.FromDatetime(event.scheduled_time)
            _set(x, "input", request.input)
        elif request.kind is RequestKind.CALL:
            x = message.entityOperationCalled
            x.requestId, x.operation = request.id, request.operation or ""
            x.targetInstanceId.value = event.instance_id
            _set(x, "parentInstanceId", request.parent)
            _set(x, "input", request.input)
        elif request.kind is RequestKind.LOCK:
            x = message.entityLockRequested
            x.criticalSectionId, x.position = request.id, request.position
            x.lockSet.extend(request.lock_set)
            _set(x, "parentInstanceId", request.parent)
        else:
            x = message.entityUnlockSent
            x.criticalSectionId = request.id
            x.targetInstanceId.value = event.instance_id
            _set(x, "parentInstanceId", request.parent)
        return True
    request_id = request_id_of_response(event.name)
    if request_id is None:
        return False
    response = decode_response(event.input)
    if response.locked:
        message.entityLockGranted.criticalSectionId = request_id
    elif response.failure is not None:
        message.entityOperationFailed.requestId = request_id
        message.entityOperationFailed.failureDetails.CopyFrom(failure_to_pb(response.failure))
    else:
        message.entityOperationCompleted.requestId = request_id
        _set(message.entityOperationCompleted, "output", response.result)
    return True


def batch_request_to_pb(
    instance_id: str, state: str | None, operations: Sequence[EntityRequest]
) -> Any:
    request = pb.EntityBatchRequest(instanceId=instance_id)
    _set(request, "entityState", state)
    for operation in operations:
        x = request.operations.add(operation=operation.operation or "", requestId=operation.id)
        _set(x, "input", operation.input)
    return request


def batch_outcome_from_pb(result: Any, operations: int) -> BatchOutcome:
    """The SDK's ``EntityBatchResult`` for ``operations`` operations; ValueError if malformed."""
    if len(result.results) != operations:
        raise ValueError(
            f"the SDK answered {len(result.results)} results for {operations} operations"
        )
    outcomes = []
    for item in result.results:
        if item.HasField("failure"):
            outcomes.append(OperationOutcome(failure=failure_from_pb(item.failure.failureDetails)))
        else:
            outcomes.append(OperationOutcome(result=_str(item.success, "result")))
    outcome = BatchOutcome(outcomes=outcomes, state=_str(result, "entityState"))
    for action in result.actions:
        if action.HasField("sendSignal"):
            x = action.sendSignal
            when = _time(x.scheduledTime) if x.HasField("scheduledTime") else None
            outcome.signals.append(
                SignalAction(EntityInstanceId.parse(x.instanceId), x.name, _str(x, "input"), when)
            )
        elif action.HasField("startNewOrchestration"):
            x = action.startNewOrchestration
            outcome.starts.append(StartAction(x.name, _str(x, "input"), x.instanceId))
    return outcome


def _time(timestamp: Any) -> datetime:
    value: datetime = timestamp.ToDatetime(tzinfo=timezone.utc)
    return value


def _str(message: Any, field: str) -> str | None:
    return getattr(message, field).value if message.HasField(field) else None


def _set(message: Any, field: str, value: str | None) -> None:
    if value is not None:
        getattr(message, field).value = value
