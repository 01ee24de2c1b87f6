"""Orchestrator actions: what one replay decided to do next (imperative names).

The replay executor returns actions; the worker turns them into history events and
outbound messages (see ``replay.apply``) and hands both to the backend in one commit.
``id`` is the orchestrator's sequence number; the matching history event carries it as
``event_id`` so that replay can check the code still does the same thing.
A ``trace_context`` on an action is the span a remote SDK chose for it (the gRPC sidecar);
in-process, ``replay.apply`` derives one from the orchestration's own.

Actions that name another instance or a function check the name on construction
(``model.identifiers``): an orchestrator asking for an id storage cannot hold gets a clear
error where it asks, instead of a commit that fails (and is retried) forever.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from durable_azstorage.model.entities import is_entity_id
from durable_azstorage.model.errors import InvalidIdentifierError
from durable_azstorage.model.failure import FailureDetails
from durable_azstorage.model.history import HistoryEvent
from durable_azstorage.model.identifiers import validate_instance_id, validate_name
from durable_azstorage.model.status import OrchestrationStatus
from durable_azstorage.model.trace import TraceContext


@dataclass(frozen=True, slots=True, kw_only=True)
class OrchestratorAction:
    id: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ScheduleTask(OrchestratorAction):
    name: str
    input: str | None = None
    version: str | None = None
    tags: dict[str, str] | None = None
    trace_context: TraceContext | None = None

    def __post_init__(self) -> None:
        validate_name(self.name, what="activity name")


@dataclass(frozen=True, slots=True, kw_only=True)
class CreateSubOrchestration(OrchestratorAction):
    name: str
    instance_id: str
    input: str | None = None
    version: str | None = None
    trace_context: TraceContext | None = None

    def __post_init__(self) -> None:
        validate_name(self.name, what="sub-orchestration name")
        validate_instance_id(self.instance_id, what="sub-orchestration instance id")
        if self.version is not None:
            validate_name(self.version, what="sub-orchestration version")


@dataclass(frozen=True, slots=True, kw_only=True)
class CreateTimer(OrchestratorAction):
    fire_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class SendEvent(OrchestratorAction):
    instance_id: str
    name: str
    data: str | None = None
    scheduled_time: datetime | None = None
    trace_context: TraceContext | None = None

    def __post_init__(self) -> None:
        validate_instance_id(self.instance_id, what="send_event target instance id")
        validate_name(self.name, what="event name")


@dataclass(frozen=True, slots=True, kw_only=True)
class TerminateOrchestration(OrchestratorAction):
    """Terminate another instance (the SDK's ``terminateOrchestration``): sent as a message,
    recorded as an ``EventSent`` (``model.termination``). ``reason`` is serialized text that
    becomes the target's output; ``recurse`` also terminates the target's running children."""

    instance_id: str
    reason: str | None = None
    recurse: bool = False

    def __post_init__(self) -> None:
        validate_instance_id(self.instance_id, what="terminateOrchestration target instance id")
        if is_entity_id(self.instance_id):
            raise InvalidIdentifierError(
                f"terminateOrchestration target {self.instance_id!r} is an entity; only "
                "orchestrations can be terminated"
            )


@dataclass(frozen=True, slots=True, kw_only=True)
class CompleteOrchestration(OrchestratorAction):
    """Ends the execution: COMPLETED, FAILED, or CONTINUED_AS_NEW (``result`` = new input)."""

    status: OrchestrationStatus
    result: str | None = None
    failure_details: FailureDetails | None = None
    new_version: str | None = None
    carryover_events: tuple[HistoryEvent, ...] = field(default=())

    def __post_init__(self) -> None:
        if self.new_version is not None:
            validate_name(self.new_version, what="continue_as_new version")
