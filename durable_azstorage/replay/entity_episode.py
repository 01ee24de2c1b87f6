"""One entity episode: (the entity's record, queued requests) -> what to commit.

An entity is stored like an orchestration (DTFx does the same): its instance id is
``@name@key`` and each episode commits a *new generation* of its history, as continue-as-new
does: ``OrchestratorStarted, ExecutionStarted(input=EntityRecord), EventSent*,
OrchestratorCompleted``. So a batch of operations commits atomically with the state through
the unchanged orchestration checkpoint (one history write per batch, not per operation), the
messages the batch sends are ``EventSent`` events the checkpoint's recovery can re-derive,
and the history never grows.

Order and duplicates: requests from one sender (an orchestration execution, or an entity)
carry consecutive sequence numbers; one that arrives early is held until its predecessors
came, one already seen (re-sent by the sender's crash recovery) is dropped. While the entity
is locked, only its lock owner's requests run; the others wait in the record's backlog.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Protocol

from durable_azstorage.authoring.registry import Registry
from durable_azstorage.model.entities import (
    ENTITY_REQUEST,
    EntityInstanceId,
    EntityRecord,
    EntityRequest,
    EntityResponse,
    RequestKind,
    SenderProgress,
    decode_request,
    encode_request,
    response_event_name,
)
from durable_azstorage.model.history import (
    EventRaised,
    EventSent,
    ExecutionCompleted,
    ExecutionStarted,
    HistoryEvent,
    OrchestrationInstance,
    OrchestratorCompleted,
    OrchestratorStarted,
    SubOrchestrationInstanceCreated,
)
from durable_azstorage.model.messages import TaskMessage
from durable_azstorage.model.outbound import Outbound
from durable_azstorage.model.state import InstanceState
from durable_azstorage.model.status import OrchestrationStatus
from durable_azstorage.replay.context import as_utc
from durable_azstorage.replay.entity_operations import (
    BatchOutcome,
    LocalOperations,
    OperationRunner,
)
from durable_azstorage.replay.episode import Episode
from durable_azstorage.serialization.converter import DataConverter
from durable_azstorage.serialization.entity_codec import (
    decode_record,
    encode_record,
    encode_response,
)

SENDER_RETENTION = timedelta(days=1)
"""A sender not heard from for this long is forgotten (its sequence numbers restart)."""
MAX_SENDERS = 1000
"""At most this many senders are remembered per entity (the least recent are forgotten)."""

_log = logging.getLogger(__name__)


class EntityExecutor(Protocol):
    """Runs entity episodes for the worker (in process here; the sidecar may hand them out)."""

    def run(
        self,
        instance_id: str,
        history: Sequence[HistoryEvent],
        messages: Sequence[TaskMessage],
        *,
        now: datetime,
        logger: logging.Logger,
    ) -> Episode: ...


@dataclass(frozen=True, slots=True)
class LocalEntityExecutor:
    """The in-process entity executor: runs the entities registered in ``registry``."""

    registry: Registry
    converter: DataConverter | None = None

    def run(
        self,
        instance_id: str,
        history: Sequence[HistoryEvent],
        messages: Sequence[TaskMessage],
        *,
        now: datetime,
        logger: logging.Logger,
    ) -> Episode:
        runner = LocalOperations(self.registry, self.converter, logger)
        return run_entity_episode(runner, instance_id, history, messages, now=now, logger=logger)


def run_entity_episode(
    runner: OperationRunner | Registry,
    instance_id: str,
    history: Sequence[HistoryEvent],
    messages: Sequence[TaskMessage],
    *,
    now: datetime,
    new_execution_id: Callable[[], str] = lambda: uuid.uuid4().hex,
    logger: logging.Logger | None = None,
) -> Episode:
    """Run the operations ``messages`` carry against the entity whose history is ``history``
    (``runner`` runs them; a ``Registry`` means in process, with the JSON converter)."""
    now = as_utc(now)
    log = logger or _log
    if isinstance(runner, Registry):
        runner = LocalOperations(runner, None, log)
    previous = next((e for e in history if isinstance(e, ExecutionStarted)), None)
    record = decode_record(previous.input if previous is not None else None)
    entity_id = EntityInstanceId.parse(instance_id)
    requests: list[EntityRequest] = []
    early: list[TaskMessage] = []
    discarded: list[tuple[TaskMessage, str]] = []
    ended = next((e for e in history if isinstance(e, ExecutionCompleted)), None)
    for message in messages:
        event = message.event
        if ended is not None:  # failed as poison: as the Azure backend's filter, take nothing
            discarded.append(
                (message, f"the entity ended ({ended.status.value}); purge it to start over")
            )
            continue
        if not (isinstance(event, EventRaised) and event.name == ENTITY_REQUEST):
            discarded.append(
                (message, f"entities take only entity requests, not {type(event).__name__}")
            )
            continue
        if event.scheduled_time is not None and as_utc(event.scheduled_time) > now:
            early.append(message)  # delivered before its time (queues cap delays): re-arm
            continue
        try:
            requests.append(decode_request(event.input))
        except ValueError as exc:
            discarded.append((message, f"malformed entity request: {exc}"))
    for _message, reason in discarded:
        log.warning("entity %s: discarding a message: %s", instance_id, reason)
    if not requests and previous is not None:
        return Episode(
            new_events=(),
            new_execution=False,
            activity_messages=(),
            orchestrator_messages=(),
            timer_messages=tuple(early),
            state=_state(instance_id, entity_id, previous, record, now) if early else None,
            discarded=tuple(discarded),
        )
    batch = _Batch(entity_id, record, runner, now, log)
    batch.run(batch.admit(requests))
    me = OrchestrationInstance(instance_id=instance_id, execution_id=new_execution_id())
    started = ExecutionStarted(
        timestamp=now,
        name=entity_id.entity,
        instance=me,
        input=encode_record(batch.record()),
        generation=previous.generation + 1 if previous is not None else 0,
    )
    events: list[HistoryEvent] = [
        OrchestratorStarted(timestamp=now),
        started,
        *batch.sent,
        OrchestratorCompleted(timestamp=now),
    ]
    outbox = Outbound()
    for event in batch.sent:
        outbox.add_for(event, started=started, history=events)
    outbox.timer.extend(early)
    return Episode(
        new_events=tuple(events),
        new_execution=True,
        activity_messages=(),
        orchestrator_messages=tuple(outbox.orchestrator),
        timer_messages=tuple(outbox.timer),
        state=_state(instance_id, entity_id, started, batch.record(), now),
        discarded=tuple(discarded),
    )


def _state(
    instance_id: str,
    entity_id: EntityInstanceId,
    started: ExecutionStarted,
    record: EntityRecord,
    now: datetime,
) -> InstanceState:
    return InstanceState(
        instance_id=instance_id,
        name=entity_id.entity,
        runtime_status=OrchestrationStatus.RUNNING,
        created_at=started.timestamp,
        last_updated_at=now,
        execution_id=started.instance.execution_id,
        input=encode_record(record),
        generation=started.generation,
    )


class _Batch:
    """Applies one episode's requests to the entity's record, collecting what it sends."""

    def __init__(
        self,
        entity_id: EntityInstanceId,
        record: EntityRecord,
        runner: OperationRunner,
        now: datetime,
        log: logging.Logger,
    ) -> None:
        self._id = entity_id
        self._runner = runner
        self._operations: list[EntityRequest] = []
        self._now = now
        self._log = log
        self._state = record.state
        self._locked_by = record.locked_by
        self._backlog = list(record.backlog)
        self._held = list(record.held)
        self._senders = dict(record.senders)
        self._outgoing = dict(record.outgoing)
        self._modified = record.last_modified
        self.sent: list[HistoryEvent] = []

    def record(self) -> EntityRecord:
        return EntityRecord(
            state=self._state,
            locked_by=self._locked_by,
            backlog=tuple(self._backlog),
            held=tuple(self._held),
            senders=self._senders,
            outgoing=self._outgoing,
            last_modified=self._modified,
        )

    # --- order and duplicates ------------------------------------------------------------
    def admit(self, requests: Sequence[EntityRequest]) -> list[EntityRequest]:
        """The requests that may run now, in order; early ones are held, duplicates dropped."""
        admitted: list[EntityRequest] = []
        for request in requests:
            if request.sender is None or request.sequence is None:
                admitted.append(request)
                continue
            expected = self._expected(request.sender)
            if request.sequence < expected or any(
                h.sender == request.sender and h.sequence == request.sequence for h in self._held
            ):
                self._log.info("entity %s: dropping duplicate request %s", self._id, request.id)
                continue
            self._held.append(request)
            admitted.extend(self._release_held(request.sender))
        self._forget_old_senders()
        return admitted

    def _expected(self, sender: str) -> int:
        progress = self._senders.get(sender)
        return progress.next if progress is not None else 0

    def _release_held(self, sender: str) -> list[EntityRequest]:
        ready: list[EntityRequest] = []
        expected = self._expected(sender)
        while True:
            nxt = next(
                (h for h in self._held if h.sender == sender and h.sequence == expected), None
            )
            if nxt is None:
                break
            self._held.remove(nxt)
            ready.append(nxt)
            expected += 1
        self._senders[sender] = SenderProgress(next=expected, seen_at=self._now)
        return ready

    def _forget_old_senders(self) -> None:
        cutoff = self._now - SENDER_RETENTION
        recent = sorted(
            ((k, p) for k, p in self._senders.items() if p.seen_at >= cutoff),
            key=lambda item: item[1].seen_at,
            reverse=True,
        )[:MAX_SENDERS]
        self._senders = dict(recent)

    # --- running -------------------------------------------------------------------------
    def run(self, admitted: list[EntityRequest]) -> None:
        """Run the backlog and ``admitted`` in order; requests of others wait while locked."""
        queue = [*self._backlog, *admitted]
        index = 0
        while index < len(queue):
            request = queue[index]
            if request.kind is RequestKind.RELEASE:
                queue.pop(index)
                if self._locked_by is not None and self._locked_by == request.parent:
                    self._locked_by = None
                    index = 0  # requests that waited for the lock may run now
                continue
            if self._locked_by is not None and request.parent != self._locked_by:
                index += 1
                continue
            queue.pop(index)
            if request.kind is RequestKind.LOCK:
                if self._locked_by is None:
                    self._locked_by = request.parent
                    self._grant(request)
            else:
                self._operations.append(request)
        self._backlog = queue
        if self._operations:
            self._operate(self._runner.run(self._id, self._state, self._operations))

    def _grant(self, request: EntityRequest) -> None:
        """Pass the lock request on to the next entity of its set, or tell the owner."""
        following = request.position + 1
        if following < len(request.lock_set):
            target = request.lock_set[following]
            forwarded = EntityRequest(
                kind=RequestKind.LOCK,
                id=request.id,
                parent=request.parent,
                lock_set=request.lock_set,
                position=following,
            )
            self._send_request(target, forwarded, scheduled_time=None)
        elif request.parent is not None:
            self._respond(request, EntityResponse(locked=True))

    def _operate(self, outcome: BatchOutcome) -> None:
        """Apply the operations' outcomes: state, answers to callers, messages sent."""
        for request, result in zip(self._operations, outcome.outcomes, strict=False):
            if result.failure is None:
                self._modified = self._now
            if request.kind is RequestKind.CALL:
                self._respond(request, EntityResponse(result=result.result, failure=result.failure))
        self._state = outcome.state
        for signal in outcome.signals:
            signalled = EntityRequest(
                kind=RequestKind.SIGNAL,
                id=uuid.uuid4().hex,
                operation=signal.operation,
                input=signal.input,
            )
            self._send_request(str(signal.target), signalled, scheduled_time=signal.signal_time)
        for start in outcome.starts:
            self.sent.append(
                SubOrchestrationInstanceCreated(
                    event_id=len(self.sent),
                    timestamp=self._now,
                    name=start.name,
                    instance_id=start.instance_id,
                    input=start.input,
                )
            )

    # --- sending -------------------------------------------------------------------------
    def _send_request(
        self, target: str, request: EntityRequest, *, scheduled_time: datetime | None
    ) -> None:
        if scheduled_time is None:  # delayed signals are not ordered with the others
            sequence = self._outgoing.get(target, 0)
            self._outgoing[target] = sequence + 1
            request = replace(request, sender=str(self._id), sequence=sequence)
        self.sent.append(
            EventSent(
                event_id=len(self.sent),
                timestamp=self._now,
                instance_id=target,
                name=ENTITY_REQUEST,
                input=encode_request(request),
                scheduled_time=as_utc(scheduled_time) if scheduled_time else None,
            )
        )

    def _respond(self, request: EntityRequest, response: EntityResponse) -> None:
        if request.parent is None:
            return
        self.sent.append(
            EventSent(
                event_id=len(self.sent),
                timestamp=self._now,
                instance_id=request.parent,
                name=response_event_name(request.id),
                input=encode_response(response),
            )
        )
