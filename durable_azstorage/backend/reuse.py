"""Instance-id reuse at schedule time, shared by every backend so they decide alike."""

from __future__ import annotations

from datetime import datetime

from durable_azstorage.model.errors import OrchestrationAlreadyExistsError
from durable_azstorage.model.history import ExecutionStarted
from durable_azstorage.model.messages import TaskMessage
from durable_azstorage.model.state import (
    CreateOrchestrationAction,
    InstanceState,
    OrchestrationIdReusePolicy,
)
from durable_azstorage.model.status import OrchestrationStatus


def may_replace(existing: InstanceState, policy: OrchestrationIdReusePolicy | None) -> bool:
    """Decide what scheduling does to ``existing``: True to replace it, False to ignore the
    request; raises ``OrchestrationAlreadyExistsError`` to refuse it.

    Without a policy a terminal instance is replaced and any other refused. With one, its
    ``action`` applies when the status is in ``operation_statuses`` (TERMINATE replaces the
    running execution); otherwise the instance is replaced, as in DTFx.
    """
    status = existing.runtime_status
    if policy is None:
        if status.is_terminal:
            return True
        raise OrchestrationAlreadyExistsError(existing.instance_id, status.value)
    if status not in policy.operation_statuses:
        return True
    if policy.action is CreateOrchestrationAction.ERROR:
        raise OrchestrationAlreadyExistsError(existing.instance_id, status.value)
    return policy.action is CreateOrchestrationAction.TERMINATE


def pending_state(start: TaskMessage, now: datetime) -> InstanceState:
    """The Pending state recorded when ``start`` (an ExecutionStarted message) is scheduled."""
    event = start.event
    if not isinstance(event, ExecutionStarted):
        raise ValueError(
            f"create_instance needs an ExecutionStarted message, got {type(event).__name__}"
        )
    return InstanceState(
        instance_id=start.instance.instance_id,
        execution_id=start.instance.execution_id,
        name=event.name,
        runtime_status=OrchestrationStatus.PENDING,
        created_at=now,
        last_updated_at=now,
        input=event.input,
        version=event.version,
        tags=dict(event.tags) if event.tags else None,
        parent_instance_id=event.parent.instance.instance_id if event.parent else None,
        scheduled_start_time=event.scheduled_start_time,
        generation=event.generation,
    )
