"""``pb.OrchestratorResponse`` -> ``ExecutionResult``: an SDK's decisions as our engine's actions.

The result goes through the same ``run_episode`` path as our own executor's, so the SDK's
actions become the same history events, messages and ``OrchestrationCommit``. Three things
the SDK leaves to the backend are settled here:

* ``suspended`` is not reported by the SDK; it follows from the history (the last of
  ExecutionSuspended/ExecutionResumed wins).
* Termination: the SDK ends the code on ExecutionTerminated but keeps the actions it produced
  earlier in the same batch, and a code that completed first stays completed. Our engine
  lets termination win and drops unsent decisions (as DTFx does); the result is normalised
  to that, so both executors terminate the same way.
* Entity messages become ``SendEvent`` actions of entity requests (``convert_entities``).
* ``terminateOrchestration`` becomes ``TerminateOrchestration`` (recorded as an ``EventSent``,
  see ``model.termination``). That record is not shown to the SDK (the reference backend
  records nothing for it, so an SDK cannot expect an event there); an SDK that sends the
  action again on a later replay gets it dropped here, as it is already recorded.
* Actions our model has no equivalent for (rewindOrchestration), and actions naming an id
  or name storage cannot hold
  (``InvalidIdentifierError``, see ``model.identifiers``), fail the orchestration with a
  FailureDetails naming the action instead of crashing the sidecar.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from durabletask.internal import orchestrator_service_pb2 as pb

from durable_azstorage.model.actions import (
    CompleteOrchestration,
    CreateSubOrchestration,
    CreateTimer,
    OrchestratorAction,
    ScheduleTask,
    SendEvent,
    TerminateOrchestration,
)
from durable_azstorage.model.failure import FailureDetails, qualified_type_name
from durable_azstorage.model.history import (
    ExecutionResumed,
    ExecutionSuspended,
    ExecutionTerminated,
    HistoryEvent,
    OrchestratorStarted,
)
from durable_azstorage.model.status import OrchestrationStatus
from durable_azstorage.model.termination import is_termination_request
from durable_azstorage.replay.executor import ExecutionResult
from durable_azstorage.sidecar.convert_entities import EntitySequencer, entity_action_from_pb
from durable_azstorage.sidecar.convert_failure import failure_from_pb
from durable_azstorage.sidecar.convert_history import (
    history_event_from_pb,
    status_from_pb,
    timestamp_from_pb,
)
from durable_azstorage.sidecar.convert_trace import lenient_trace_from_pb

_COMPLETION_STATUSES = frozenset(
    {
        OrchestrationStatus.COMPLETED,
        OrchestrationStatus.FAILED,
        OrchestrationStatus.CONTINUED_AS_NEW,
        OrchestrationStatus.TERMINATED,
    }
)


class UnsupportedActionError(Exception):
    """An SDK asked for something this backend cannot do (named in the message)."""


def execution_result_from_pb(
    response: pb.OrchestratorResponse,
    *,
    past_events: Sequence[HistoryEvent],
    new_events: Sequence[HistoryEvent],
) -> ExecutionResult:
    """The SDK's response to one execute call as our ``ExecutionResult``; never raises."""
    custom_status = response.customStatus.value if response.HasField("customStatus") else None
    try:
        sequencer = EntitySequencer([*past_events, *new_events])
        sent = {e.event_id for e in past_events if is_termination_request(e)}
        actions = tuple(
            _action_from_pb(a, _episode_time(new_events), sequencer)
            for a in response.actions
            if not _already_sent(a, sent)
        )
    except (UnsupportedActionError, ValueError) as exc:
        failed = CompleteOrchestration(
            id=-1,
            status=OrchestrationStatus.FAILED,
            failure_details=FailureDetails(
                message=str(exc), error_type=qualified_type_name(type(exc)), is_non_retriable=True
            ),
        )
        return ExecutionResult(actions=(failed,), custom_status=custom_status, suspended=False)
    terminated = _termination(new_events)
    if terminated is not None:
        ids = [a.id for a in actions if isinstance(a, CompleteOrchestration)]
        actions = (
            CompleteOrchestration(
                id=ids[-1] if ids else -1,
                status=OrchestrationStatus.TERMINATED,
                result=terminated.input,
            ),
        )
    return ExecutionResult(
        actions=actions,
        custom_status=custom_status,
        suspended=_suspended([*past_events, *new_events]),
    )


def _already_sent(action: Any, sent_terminations: set[int]) -> bool:
    """A terminateOrchestration an earlier episode recorded (the SDK sends it again)."""
    kind = action.WhichOneof("orchestratorActionType")
    return kind == "terminateOrchestration" and action.id in sent_terminations


def _action_from_pb(
    action: Any, now: datetime | None, sequencer: EntitySequencer
) -> OrchestratorAction:
    kind = action.WhichOneof("orchestratorActionType")
    aid: int = action.id
    if kind == "scheduleTask":
        x = action.scheduleTask
        return ScheduleTask(
            id=aid,
            name=x.name,
            input=_str(x, "input"),
            version=_str(x, "version"),
            tags=dict(x.tags) if len(x.tags) else None,
            trace_context=lenient_trace_from_pb(x),
        )
    if kind == "createSubOrchestration":
        x = action.createSubOrchestration
        return CreateSubOrchestration(
            id=aid,
            name=x.name,
            instance_id=x.instanceId,
            input=_str(x, "input"),
            version=_str(x, "version"),
            trace_context=lenient_trace_from_pb(x),
        )
    if kind == "createTimer":
        return CreateTimer(id=aid, fire_at=timestamp_from_pb(action.createTimer.fireAt))
    if kind == "sendEvent":
        x = action.sendEvent
        return SendEvent(
            id=aid, instance_id=x.instance.instanceId, name=x.name, data=_str(x, "data")
        )
    if kind == "terminateOrchestration":
        x = action.terminateOrchestration
        return TerminateOrchestration(
            id=aid, instance_id=x.instanceId, reason=_str(x, "reason"), recurse=x.recurse
        )
    if kind == "completeOrchestration":
        return _completion_from_pb(aid, action.completeOrchestration, now)
    if kind == "sendEntityMessage":
        return entity_action_from_pb(aid, action.sendEntityMessage, sequencer)
    if kind is None:
        raise UnsupportedActionError(
            f"the SDK sent an orchestrator action with no type (action id {aid})"
        )
    raise UnsupportedActionError(
        f"orchestrator action {kind!r} (action id {aid}) is not supported by durable_azstorage"
    )


def _completion_from_pb(aid: int, x: Any, now: datetime | None) -> CompleteOrchestration:
    status = status_from_pb(x.orchestrationStatus)
    if status not in _COMPLETION_STATUSES:
        raise UnsupportedActionError(
            f"completeOrchestration with status {status.value} (action id {aid}); an orchestration can only "
            "end as Completed, Failed, Terminated or ContinuedAsNew"
        )
    carryover = tuple(_carried(e, now) for e in x.carryoverEvents)
    return CompleteOrchestration(
        id=aid,
        status=status,
        result=_str(x, "result"),
        failure_details=failure_from_pb(x.failureDetails) if x.HasField("failureDetails") else None,
        new_version=_str(x, "newVersion"),
        carryover_events=carryover,
    )


def _carried(message: Any, now: datetime | None) -> HistoryEvent:
    """A carried-over event; the SDK leaves its timestamp unset, so it gets the episode's time."""
    event = history_event_from_pb(message)
    if now is not None and not message.timestamp.seconds and not message.timestamp.nanos:
        event = dataclasses.replace(event, timestamp=now)
    return event


def _str(message: Any, field: str) -> str | None:
    return getattr(message, field).value if message.HasField(field) else None


def _episode_time(events: Sequence[HistoryEvent]) -> datetime | None:
    for event in reversed(events):
        if isinstance(event, OrchestratorStarted):
            return event.timestamp
    return None


def _termination(events: Sequence[HistoryEvent]) -> ExecutionTerminated | None:
    for event in events:
        if isinstance(event, ExecutionTerminated):
            return event
    return None


def _suspended(events: Sequence[HistoryEvent]) -> bool:
    suspended = False
    for event in events:
        if isinstance(event, ExecutionSuspended):
            suspended = True
        elif isinstance(event, ExecutionResumed):
            suspended = False
    return suspended
