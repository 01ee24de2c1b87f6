"""What a backend knows about an instance (the Instances-table view)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime

from durable_azstorage.model.failure import FailureDetails
from durable_azstorage.model.status import TERMINAL_STATUSES, OrchestrationStatus


@dataclass(frozen=True, slots=True, kw_only=True)
class InstanceState:
    """Metadata of the latest execution of an instance; payloads are serialized text."""

    instance_id: str
    name: str
    runtime_status: OrchestrationStatus
    created_at: datetime
    last_updated_at: datetime
    execution_id: str | None = None
    completed_at: datetime | None = None
    input: str | None = None
    output: str | None = None
    custom_status: str | None = None
    failure_details: FailureDetails | None = None
    version: str | None = None
    tags: dict[str, str] | None = None
    parent_instance_id: str | None = None
    scheduled_start_time: datetime | None = None
    generation: int = 0


class CreateOrchestrationAction(enum.Enum):
    """What scheduling does when the instance id is already in use by a matching status."""

    ERROR = "error"
    IGNORE = "ignore"
    TERMINATE = "terminate"


@dataclass(frozen=True, slots=True, kw_only=True)
class OrchestrationIdReusePolicy:
    """Applies ``action`` when an existing instance has one of ``operation_statuses``.

    Without a policy, an id whose instance is Pending, Running or Suspended is refused
    (``OrchestrationAlreadyExistsError``) and one whose instance ended is replaced.
    """

    operation_statuses: frozenset[OrchestrationStatus] = field(
        default=frozenset(
            {
                OrchestrationStatus.RUNNING,
                OrchestrationStatus.PENDING,
                OrchestrationStatus.SUSPENDED,
            }
        )
    )
    action: CreateOrchestrationAction = CreateOrchestrationAction.ERROR


DEFAULT_REPLACEABLE_STATUSES = TERMINAL_STATUSES
