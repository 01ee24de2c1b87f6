"""What entity code sees: ``EntityContext``, the ``DurableEntity`` base class, ``EntityLock``.

An entity is a function ``fn(ctx: EntityContext, input) -> result`` or a ``DurableEntity``
subclass whose public methods are its operations (``delete`` built in). Operations of one
entity run one at a time; the state they set is committed with the batch they ran in.
Unlike orchestrators, entity code is not replayed, so it may do I/O (it should still be
quick: it holds the entity).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar, overload

from durable_azstorage.model.entities import EntityInstanceId
from durable_azstorage.model.errors import TaskFailedError
from durable_azstorage.model.failure import FailureDetails
from durable_azstorage.serialization.converter import DataConverter, deserialize_as

if TYPE_CHECKING:
    from durable_azstorage.authoring.context import OrchestrationContext

TState = TypeVar("TState")


class EntityOperationFailedException(TaskFailedError):
    """An entity operation called by an orchestration raised; its state changes were undone.

    A ``TaskFailedError`` (``details`` is ``failure_details``), so code written for the
    portable SDK, which raises ``TaskFailedError`` there, catches it unchanged."""

    def __init__(
        self,
        entity_instance_id: EntityInstanceId,
        operation_name: str,
        failure_details: FailureDetails,
    ) -> None:
        super().__init__(
            f"operation {operation_name!r} on entity '{entity_instance_id}' failed: "
            f"{failure_details.error_type}: {failure_details.message}",
            failure_details,
        )
        self.entity_instance_id = entity_instance_id
        self.operation_name = operation_name
        self.failure_details = failure_details


@dataclass(frozen=True, slots=True)
class SignalAction:
    """A signal an operation sent (``input`` serialized)."""

    target: EntityInstanceId
    operation: str
    input: str | None
    signal_time: datetime | None


@dataclass(frozen=True, slots=True)
class StartAction:
    """An orchestration an operation scheduled (``input`` serialized)."""

    name: str
    input: str | None
    instance_id: str


class EntityContext:
    """One operation's view of its entity: the state, and the messages it may send.

    ``caller`` is the orchestration that called or signalled the operation (None for a client
    signal). Signals and orchestration starts are sent when the batch commits, and dropped if
    the operation raises (together with its state changes).
    """

    def __init__(
        self,
        entity_id: EntityInstanceId,
        operation: str,
        state: str | None,
        converter: DataConverter,
        caller: str | None = None,
    ) -> None:
        self._entity_id = entity_id
        self._operation = operation
        self._converter = converter
        self._caller = caller
        self.serialized_state = state
        self.signals: list[SignalAction] = []
        self.starts: list[StartAction] = []

    @property
    def entity_id(self) -> EntityInstanceId:
        return self._entity_id

    @property
    def operation(self) -> str:
        return self._operation

    @property
    def orchestration_id(self) -> str | None:
        """The orchestration that sent this operation, if one did."""
        return self._caller

    @overload
    def get_state(self, intended_type: type[TState], default: TState) -> TState: ...

    @overload
    def get_state(self, intended_type: type[TState]) -> TState | None: ...

    @overload
    def get_state(self, intended_type: None = None, default: Any = None) -> Any: ...

    def get_state(self, intended_type: Any = None, default: Any = None) -> Any:
        """The state (rebuilt as ``intended_type`` when given), or ``default`` if there is none."""
        if self.serialized_state is None:
            return default
        return deserialize_as(self._converter, self.serialized_state, intended_type)

    def set_state(self, new_state: Any) -> None:
        """Replace the state; ``None`` deletes it (the entity disappears from queries)."""
        self.serialized_state = None if new_state is None else self._converter.serialize(new_state)

    def signal_entity(
        self,
        entity_instance_id: EntityInstanceId,
        operation: str,
        input: Any = None,
        signal_time: datetime | None = None,
    ) -> None:
        """Send ``operation`` to another entity (or this one, e.g. later with ``signal_time``)."""
        if not isinstance(entity_instance_id, EntityInstanceId):
            raise TypeError(
                f"entity_instance_id must be an EntityInstanceId, got {type(entity_instance_id).__name__}"
            )
        self.signals.append(
            SignalAction(
                entity_instance_id, operation, self._converter.serialize(input), signal_time
            )
        )

    def schedule_new_orchestration(
        self, orchestration_name: str, input: Any = None, instance_id: str | None = None
    ) -> str:
        """Start an orchestration when the batch commits; returns its instance id."""
        chosen = instance_id if instance_id is not None else uuid.uuid4().hex
        self.starts.append(
            StartAction(orchestration_name, self._converter.serialize(input), chosen)
        )
        return chosen


class DurableEntity:
    """Base class of class-based entities: each public method is an operation taking at most
    one argument (the operation's input); ``delete`` removes the state."""

    entity_context: EntityContext

    def _initialize_entity_context(self, context: EntityContext) -> None:
        self.entity_context = context

    @overload
    def get_state(self, intended_type: type[TState], default: TState) -> TState: ...

    @overload
    def get_state(self, intended_type: type[TState]) -> TState | None: ...

    @overload
    def get_state(self, intended_type: None = None, default: Any = None) -> Any: ...

    def get_state(self, intended_type: Any = None, default: Any = None) -> Any:
        return self.entity_context.get_state(intended_type, default)

    def set_state(self, state: Any) -> None:
        self.entity_context.set_state(state)

    def signal_entity(
        self,
        entity_instance_id: EntityInstanceId,
        operation: str,
        input: Any = None,
        signal_time: datetime | None = None,
    ) -> None:
        self.entity_context.signal_entity(entity_instance_id, operation, input, signal_time)

    def schedule_new_orchestration(
        self, orchestration_name: str, input: Any = None, instance_id: str | None = None
    ) -> str:
        return self.entity_context.schedule_new_orchestration(
            orchestration_name, input, instance_id
        )

    def delete(self, input: Any = None) -> None:
        """The built-in ``delete`` operation: drop the state."""
        self.set_state(None)


class EntityLock:
    """The critical section ``lock_entities`` grants: ``with (yield ctx.lock_entities(ids)):``.

    Leaving the block releases every lock; so does the orchestration ending or failing.
    """

    def __init__(self, context: OrchestrationContext) -> None:
        self._context = context

    def __enter__(self) -> EntityLock:
        return self

    def __exit__(self, *args: object) -> None:
        self._context._exit_critical_section()
