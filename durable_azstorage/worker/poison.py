"""Poison handling: fail an instance whose work item keeps failing, instead of retrying forever.

An orchestration work item delivered more than ``max_dequeue_count`` times (every attempt
crashed the episode or its commit) ends its instance as Failed with a reason that names the
count and what to look at; a parent orchestration is told through the usual
``SubOrchestrationInstanceFailed`` message. The Azure backend refines this (the message is
also kept aside for inspection).
"""

from __future__ import annotations

import dataclasses
from datetime import datetime

from durable_azstorage.backend.protocol import OrchestrationCommit, OrchestrationWorkItem
from durable_azstorage.model.failure import FailureDetails
from durable_azstorage.model.history import (
    ExecutionCompleted,
    ExecutionStarted,
    HistoryEvent,
    OrchestratorCompleted,
    OrchestratorStarted,
    SubOrchestrationInstanceFailed,
)
from durable_azstorage.model.messages import TaskMessage
from durable_azstorage.model.state import InstanceState
from durable_azstorage.model.status import OrchestrationStatus

POISON_ERROR_TYPE = "durable_azstorage.PoisonMessage"


def poison_commit(
    item: OrchestrationWorkItem,
    current: InstanceState | None,
    *,
    now: datetime,
    max_dequeue_count: int,
) -> OrchestrationCommit | None:
    """The commit that fails ``item``'s instance, or None when there is no instance to fail."""
    started = _execution_started(item)
    if current is None and started is None:
        return None
    if current is not None and current.runtime_status.is_terminal:
        return OrchestrationCommit(new_events=(), state=current)  # just consume the messages
    kinds = ", ".join(sorted({type(m.event).__name__ for m in item.messages})) or "none"
    kept = ""
    if item.quarantined:
        kept = (
            " Copies of the messages are kept (durable-azstorage poison show KEY): "
            + ", ".join(item.quarantined)
            + "."
        )
    details = FailureDetails(
        message=(
            f"orchestration {item.instance_id!r} failed: its work item was delivered "
            f"{item.dequeue_count} times (max_dequeue_count={max_dequeue_count}) and every "
            f"attempt failed; message types: {kinds}. See the worker log for the errors.{kept}"
        ),
        error_type=POISON_ERROR_TYPE,
        is_non_retriable=True,
    )
    events: list[HistoryEvent] = [OrchestratorStarted(timestamp=now)]
    if started is not None and not any(isinstance(e, ExecutionStarted) for e in item.history):
        events.append(started)
    events.append(
        ExecutionCompleted(
            timestamp=now, status=OrchestrationStatus.FAILED, failure_details=details
        )
    )
    events.append(OrchestratorCompleted(timestamp=now))
    if current is not None:
        base = current
    else:
        assert started is not None  # checked above
        base = _state_from(started, now)
    state = dataclasses.replace(
        base,
        runtime_status=OrchestrationStatus.FAILED,
        failure_details=details,
        output=None,
        completed_at=now,
        last_updated_at=now,
    )
    notices: tuple[TaskMessage, ...] = ()
    if started is not None and started.parent is not None:
        parent = started.parent
        notices = (
            TaskMessage(
                instance=parent.instance,
                event=SubOrchestrationInstanceFailed(
                    timestamp=now,
                    task_scheduled_id=parent.task_scheduled_id,
                    failure_details=details,
                    schedule_index=parent.schedule_index,
                ),
                sender=started.instance,
            ),
        )
    return OrchestrationCommit(new_events=tuple(events), state=state, orchestrator_messages=notices)


def _execution_started(item: OrchestrationWorkItem) -> ExecutionStarted | None:
    for event in (*item.history, *(m.event for m in item.messages)):
        if isinstance(event, ExecutionStarted):
            return event
    return None


def _state_from(started: ExecutionStarted, now: datetime) -> InstanceState:
    return InstanceState(
        instance_id=started.instance.instance_id,
        execution_id=started.instance.execution_id,
        name=started.name,
        runtime_status=OrchestrationStatus.RUNNING,
        created_at=now,
        last_updated_at=now,
        input=started.input,
        version=started.version,
        tags=started.tags,
        parent_instance_id=started.parent.instance.instance_id if started.parent else None,
        generation=started.generation,
    )
