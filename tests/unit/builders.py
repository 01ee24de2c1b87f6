"""Event builders for replay tests: short, explicit, with DTFx field names.

Timestamps default to ``T0`` (aware UTC); sequence numbers are the ``event_id`` the
orchestrator assigned (0-based, in call order).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from durable_azstorage.model.failure import FailureDetails
from durable_azstorage.model.history import (
    EventRaised,
    EventSent,
    ExecutionCompleted,
    ExecutionResumed,
    ExecutionStarted,
    ExecutionSuspended,
    ExecutionTerminated,
    OrchestrationInstance,
    OrchestratorCompleted,
    OrchestratorStarted,
    ParentInstance,
    SubOrchestrationInstanceCompleted,
    SubOrchestrationInstanceCreated,
    SubOrchestrationInstanceFailed,
    TaskCompleted,
    TaskFailed,
    TaskScheduled,
    TimerCreated,
    TimerFired,
)
from durable_azstorage.model.messages import TaskMessage
from durable_azstorage.model.status import OrchestrationStatus
from durable_azstorage.serialization.converter import JsonDataConverter

T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
IID = "inst-1"
EXEC = "exec-1"
_json = JsonDataConverter()


def js(value: Any) -> str | None:
    """The payload text the default converter writes for ``value``."""
    return _json.serialize(value)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def me(execution_id: str | None = EXEC, instance_id: str = IID) -> OrchestrationInstance:
    return OrchestrationInstance(instance_id=instance_id, execution_id=execution_id)


def started(
    name: str,
    input: Any = None,
    *,
    instance_id: str = IID,
    execution_id: str = EXEC,
    parent: ParentInstance | None = None,
    version: str | None = None,
    ts: datetime = T0,
    generation: int = 0,
    tags: dict[str, str] | None = None,
) -> ExecutionStarted:
    return ExecutionStarted(
        timestamp=ts,
        name=name,
        instance=me(execution_id, instance_id),
        input=js(input),
        parent=parent,
        version=version,
        generation=generation,
        tags=tags,
    )


def parent_of(
    task_id: int,
    *,
    name: str = "parent",
    instance_id: str = "parent-1",
    execution_id: str = "pexec",
) -> ParentInstance:
    return ParentInstance(
        name=name,
        instance=OrchestrationInstance(instance_id=instance_id, execution_id=execution_id),
        task_scheduled_id=task_id,
    )


def orch_started(ts: datetime = T0) -> OrchestratorStarted:
    return OrchestratorStarted(timestamp=ts)


def orch_completed(ts: datetime = T0) -> OrchestratorCompleted:
    return OrchestratorCompleted(timestamp=ts)


def scheduled(seq: int, name: str, input: Any = None) -> TaskScheduled:
    return TaskScheduled(event_id=seq, name=name, input=js(input), timestamp=T0)


def completed(seq: int, result: Any = None) -> TaskCompleted:
    return TaskCompleted(task_scheduled_id=seq, result=js(result), timestamp=T0)


def failure(message: str = "boom", error_type: str = "builtins.ValueError") -> FailureDetails:
    return FailureDetails(message=message, error_type=error_type)


def failed(seq: int, message: str = "boom", error_type: str = "builtins.ValueError") -> TaskFailed:
    return TaskFailed(
        task_scheduled_id=seq, failure_details=failure(message, error_type), timestamp=T0
    )


def timer_created(seq: int, fire_at: datetime) -> TimerCreated:
    return TimerCreated(event_id=seq, fire_at=fire_at, timestamp=T0)


def timer_fired(seq: int, fire_at: datetime) -> TimerFired:
    return TimerFired(timer_id=seq, fire_at=fire_at, timestamp=fire_at)


def sub_created(
    seq: int, name: str, instance_id: str | None = None, input: Any = None
) -> SubOrchestrationInstanceCreated:
    return SubOrchestrationInstanceCreated(
        event_id=seq,
        name=name,
        instance_id=instance_id or f"{IID}:{seq:04x}",
        input=js(input),
        timestamp=T0,
    )


def sub_completed(seq: int, result: Any = None) -> SubOrchestrationInstanceCompleted:
    return SubOrchestrationInstanceCompleted(task_scheduled_id=seq, result=js(result), timestamp=T0)


def sub_failed(seq: int, message: str = "boom") -> SubOrchestrationInstanceFailed:
    return SubOrchestrationInstanceFailed(
        task_scheduled_id=seq, failure_details=failure(message), timestamp=T0
    )


def raised(name: str, data: Any = None, ts: datetime = T0) -> EventRaised:
    return EventRaised(name=name, input=js(data), timestamp=ts)


def sent(seq: int, instance_id: str, name: str, data: Any = None) -> EventSent:
    return EventSent(event_id=seq, instance_id=instance_id, name=name, input=js(data), timestamp=T0)


def terminated(reason: Any = None, *, recurse: bool = True) -> ExecutionTerminated:
    return ExecutionTerminated(input=js(reason), recurse=recurse, timestamp=T0)


def suspended(reason: str | None = None) -> ExecutionSuspended:
    return ExecutionSuspended(reason=reason, timestamp=T0)


def resumed(reason: str | None = None) -> ExecutionResumed:
    return ExecutionResumed(reason=reason, timestamp=T0)


def execution_completed(
    seq: int, result: Any = None, status: OrchestrationStatus = OrchestrationStatus.COMPLETED
) -> ExecutionCompleted:
    return ExecutionCompleted(event_id=seq, status=status, result=js(result), timestamp=T0)


def msg(event: Any, *, execution_id: str | None = EXEC, instance_id: str = IID) -> TaskMessage:
    """A message carrying ``event`` to the instance (``execution_id=None``: any execution)."""
    return TaskMessage(instance=me(execution_id, instance_id), event=event)
