"""One orchestration episode: (history, incoming messages) -> what to commit. The worker's seam.

``run_episode`` decides which messages apply (see ``replay.ledger``), replays the
orchestrator with them, turns its actions into history events and outbound messages, and
handles the lifecycle around the code: continue-as-new (the next generation runs in the
same episode, up to ``MAX_GENERATIONS_PER_EPISODE``), restart of an ended instance by an
``ExecutionStarted`` with a new execution id, termination (also of suspended instances,
recursively to running sub-orchestrations), and parent notices. Pure apart from
``new_execution_id``: no I/O, no clock (``now`` is passed in).

The code runs through an ``OrchestrationExecutor`` (one ``execute`` call per generation):
a ``Registry`` means the in-process executor; the gRPC sidecar passes one that hands the
events to a portable-SDK worker. Everything around the call is the same for both.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from durable_azstorage.authoring.registry import Registry
from durable_azstorage.model.actions import CompleteOrchestration
from durable_azstorage.model.archive import EndedExecution
from durable_azstorage.model.errors import NonDeterminismError
from durable_azstorage.model.failure import FailureDetails
from durable_azstorage.model.history import (
    ExecutionCompleted,
    ExecutionStarted,
    GenericEvent,
    HistoryEvent,
    OrchestrationInstance,
    OrchestratorCompleted,
    OrchestratorStarted,
)
from durable_azstorage.model.messages import TaskMessage
from durable_azstorage.model.outbound import WAKE_UP, Outbound
from durable_azstorage.model.state import InstanceState
from durable_azstorage.model.status import OrchestrationStatus
from durable_azstorage.replay.apply import apply_actions
from durable_azstorage.replay.context import as_utc
from durable_azstorage.replay.executor import (
    ExecutionResult,
    LocalOrchestrationExecutor,
    OrchestrationExecutor,
)
from durable_azstorage.replay.ledger import RE_ARM, Ledger
from durable_azstorage.serialization.converter import DataConverter

MAX_GENERATIONS_PER_EPISODE = 20
"""Continue-as-new generations run back to back in one episode before yielding to the queue."""


_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class Episode:
    """What one episode produced; the worker turns it into an ``OrchestrationCommit``."""

    new_events: tuple[HistoryEvent, ...]
    new_execution: bool
    activity_messages: tuple[TaskMessage, ...]
    orchestrator_messages: tuple[TaskMessage, ...]
    timer_messages: tuple[TaskMessage, ...]
    state: InstanceState | None
    discarded: tuple[tuple[TaskMessage, str], ...]
    ended_executions: tuple[EndedExecution, ...] = ()
    """Executions this episode ended by continue-as-new or replaced by a restart, oldest
    first, with their whole history (``model.archive``: the backend keeps the newest)."""


@dataclass(slots=True)
class _Segment:
    """Events to apply to one generation; ``past`` is empty for a generation started here."""

    past: Sequence[HistoryEvent]
    incoming: list[HistoryEvent] = field(default_factory=list)


def run_episode(
    executor: OrchestrationExecutor | Registry,
    instance_id: str,
    history: Sequence[HistoryEvent],
    messages: Sequence[TaskMessage],
    *,
    now: datetime,
    converter: DataConverter | None = None,
    new_execution_id: Callable[[], str] = lambda: uuid.uuid4().hex,
    logger: logging.Logger | None = None,
) -> Episode:
    """Apply ``messages`` to the instance whose current-execution history is ``history``.

    ``executor`` runs the code (a ``Registry`` runs it in-process with ``converter``).
    Raises on engine bugs and ``ExecutionAbandoned`` (from a remote executor); user-code
    failures and non-determinism end the instance as FAILED with ``FailureDetails``.
    """
    now = as_utc(now)
    log = logger or _log
    if isinstance(executor, Registry):
        executor = LocalOrchestrationExecutor(executor, converter, log)
    segments, discarded, outbox = _admit(history, messages, now)
    for message, reason in discarded:
        log.info("discarding %s for %s: %s", type(message.event).__name__, instance_id, reason)

    runs = [s for s in segments if s.incoming]
    if not runs:
        idle = None
        if outbox.timer:  # only re-armed timers: the commit needs the current state
            idle = _idle_state(executor, instance_id, history, now)
        return Episode(
            new_events=(),
            new_execution=False,
            activity_messages=(),
            orchestrator_messages=(),
            timer_messages=tuple(outbox.timer),
            state=idle,
            discarded=tuple(discarded),
        )

    new_execution = runs[-1] is not segments[0]
    ended = _Ended()
    if runs[0] is not segments[0]:
        ended.replaced(segments[0].past)  # a restart of an instance that had ended
    events: list[HistoryEvent] = []
    segment_past: Sequence[HistoryEvent] = ()
    state: InstanceState | None = None
    for segment in runs:
        if events:
            ended.replaced([*segment_past, *events])  # the execution a restart replaces
        segment_past = segment.past
        events, state, next_start = _run_generation(
            executor, instance_id, segment, now, new_execution_id, outbox, log
        )
        generations = 1
        while next_start is not None:
            new_execution = True
            ended.continued([*segment_past, *events], next_start[0], now)
            segment_past = ()
            if generations >= MAX_GENERATIONS_PER_EPISODE:
                events, state = _defer_generation(instance_id, next_start, now, outbox)
                break
            generations += 1
            events, state, next_start = _run_generation(
                executor,
                instance_id,
                _Segment(past=(), incoming=list(next_start)),
                now,
                new_execution_id,
                outbox,
                log,
            )
    return Episode(
        new_events=tuple(events),
        new_execution=new_execution,
        activity_messages=tuple(outbox.activity),
        orchestrator_messages=tuple(outbox.orchestrator),
        timer_messages=tuple(outbox.timer),
        state=state,
        discarded=tuple(discarded),
        ended_executions=tuple(ended.executions),
    )


class _Ended:
    """Collects the executions an episode ends (continue-as-new) or replaces (restart)."""

    def __init__(self) -> None:
        self.executions: list[EndedExecution] = []

    def replaced(self, history: Sequence[HistoryEvent]) -> None:
        started = _first_start(history)
        if started is not None and started.instance.execution_id:
            self.executions.append(
                EndedExecution(execution_id=started.instance.execution_id, events=tuple(history))
            )

    def continued(
        self, history: Sequence[HistoryEvent], next_start: HistoryEvent, now: datetime
    ) -> None:
        """A generation that continued as new: recorded with the ``ExecutionCompleted``
        (ContinuedAsNew, the new input) that DTFx writes and the live history leaves out."""
        assert isinstance(next_start, ExecutionStarted)
        end = ExecutionCompleted(
            timestamp=now, status=OrchestrationStatus.CONTINUED_AS_NEW, result=next_start.input
        )
        closed = list(history)
        at = (
            len(closed) - 1
            if closed and isinstance(closed[-1], OrchestratorCompleted)
            else len(closed)
        )
        closed.insert(at, end)
        self.replaced(closed)


def _first_start(history: Sequence[HistoryEvent]) -> ExecutionStarted | None:
    return next((e for e in history if isinstance(e, ExecutionStarted)), None)


def _admit(
    history: Sequence[HistoryEvent], messages: Sequence[TaskMessage], now: datetime
) -> tuple[list[_Segment], list[tuple[TaskMessage, str]], Outbound]:
    """Split the messages into per-generation segments; collect refusals and re-armed timers."""
    ledger = Ledger(history)
    segments = [_Segment(past=history)]
    discarded: list[tuple[TaskMessage, str]] = []
    outbox = Outbound()
    for message in messages:
        event = message.event
        if isinstance(event, ExecutionStarted):
            reason = _start_refusal(ledger, event)
            if reason is None:
                if ledger.started is not None:  # an ended instance restarts: a new generation
                    ledger = Ledger()
                    segments.append(_Segment(past=()))
                ledger.record(event)
                segments[-1].incoming.append(event)
            else:
                discarded.append((message, reason))
            continue
        reason = ledger.refusal(message, now)
        if reason is None:
            ledger.record(event)
            segments[-1].incoming.append(event)
        else:
            if reason.startswith(RE_ARM):
                outbox.timer.append(message)
            discarded.append((message, reason))
    return segments, discarded, outbox


def _start_refusal(ledger: Ledger, event: ExecutionStarted) -> str | None:
    if ledger.started is None:
        return None
    current = ledger.execution_id
    if event.instance.execution_id == current:
        return f"duplicate ExecutionStarted for execution {current!r}"
    if ledger.started.already_ran(event):
        return (
            f"stale ExecutionStarted for execution {event.instance.execution_id!r}: this "
            f"instance already ran it, or a later attempt (now at execution {current!r})"
        )
    if ledger.ended is None:
        return f"the instance is running execution {current!r}; a new execution may only start after it ends"
    return None


def _run_generation(
    executor: OrchestrationExecutor,
    instance_id: str,
    segment: _Segment,
    now: datetime,
    new_execution_id: Callable[[], str],
    outbox: Outbound,
    log: logging.Logger,
) -> tuple[list[HistoryEvent], InstanceState, list[HistoryEvent] | None]:
    """Replay one generation with its new events. Returns the events to record, the state,
    and the first events of the next generation when the code continued as new."""
    incoming: list[HistoryEvent] = [OrchestratorStarted(timestamp=now), *segment.incoming]
    try:
        result = executor.execute(instance_id, segment.past, incoming)
    except NonDeterminismError as exc:
        log.error("instance %s failed: %s", instance_id, exc)
        failed = CompleteOrchestration(
            id=-1,
            status=OrchestrationStatus.FAILED,
            failure_details=FailureDetails.from_exception(exc),
        )
        result = ExecutionResult(actions=(failed,), custom_status=None, suspended=False)
    started = _started(segment.past, incoming)
    recorded = apply_actions(
        result.actions,
        started=started,
        history=[*segment.past, *incoming],
        now=now,
        outbox=outbox,
    )
    events = [*incoming, *recorded, OrchestratorCompleted(timestamp=now)]
    state = _state(instance_id, started, result, now)
    completion = result.completion
    if completion is None or completion.status is not OrchestrationStatus.CONTINUED_AS_NEW:
        return events, state, None
    next_started = ExecutionStarted(
        timestamp=now,
        name=started.name,
        instance=OrchestrationInstance(instance_id=instance_id, execution_id=new_execution_id()),
        input=completion.result,
        version=completion.new_version or started.version,
        parent=started.parent,
        tags=started.tags,
        generation=started.generation + 1,
        first_execution_id=started.first_execution_id or started.instance.execution_id,
        trace_context=started.trace_context,
    )
    return events, state, [next_started, *completion.carryover_events]


def _defer_generation(
    instance_id: str, first_events: list[HistoryEvent], now: datetime, outbox: Outbound
) -> tuple[list[HistoryEvent], InstanceState]:
    """Record the next generation's start without running it, and wake the instance by message.

    Its code first runs in the next episode (replaying the recorded ``ExecutionStarted``).
    """
    started = first_events[0]
    assert isinstance(started, ExecutionStarted)
    wake = TaskMessage(
        instance=started.instance,
        event=GenericEvent(timestamp=now, data=WAKE_UP),
        sender=started.instance,
    )
    outbox.orchestrator.append(wake)
    events: list[HistoryEvent] = [
        OrchestratorStarted(timestamp=now),
        *first_events,
        OrchestratorCompleted(timestamp=now),
    ]
    running = ExecutionResult(actions=(), custom_status=None, suspended=False)
    return events, _state(instance_id, started, running, now)


def _idle_state(
    executor: OrchestrationExecutor,
    instance_id: str,
    history: Sequence[HistoryEvent],
    now: datetime,
) -> InstanceState | None:
    """The current state when nothing new applies (only re-armed timers): replay to learn it."""
    started = _started(history, ())
    try:
        result = executor.execute(instance_id, history, ())
    except NonDeterminismError:
        result = ExecutionResult(
            actions=(), custom_status=None, suspended=Ledger(history).suspended
        )
    if result.completion is not None:  # history replays to an end it did not record yet
        result = replace(result, actions=())
    return _state(instance_id, started, result, now)


def _started(past: Sequence[HistoryEvent], incoming: Sequence[HistoryEvent]) -> ExecutionStarted:
    for event in (*past, *incoming):
        if isinstance(event, ExecutionStarted):
            return event
    raise ValueError(
        "a generation without an ExecutionStarted event cannot run"
    )  # pragma: no cover


def _state(
    instance_id: str, started: ExecutionStarted, result: ExecutionResult, now: datetime
) -> InstanceState:
    completion = result.completion
    status = result.status
    ended = completion is not None and status.is_terminal
    return InstanceState(
        instance_id=instance_id,
        name=started.name,
        runtime_status=status,
        created_at=started.timestamp,
        last_updated_at=now,
        execution_id=started.instance.execution_id,
        completed_at=now if ended else None,
        input=started.input,
        output=completion.result
        if completion is not None and ended and status is not OrchestrationStatus.FAILED
        else None,
        custom_status=result.custom_status,
        failure_details=completion.failure_details if completion is not None else None,
        version=started.version,
        tags=started.tags,
        parent_instance_id=started.parent.instance.instance_id if started.parent else None,
        scheduled_start_time=started.scheduled_start_time,
        generation=started.generation,
    )
