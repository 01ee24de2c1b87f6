"""Running a batch of entity operations: in process here, or in an SDK worker (the sidecar).

The entity episode (``replay.entity_episode``) decides *which* operations run and in what
order (locks, sender order); an ``OperationRunner`` runs them against the state and reports,
per operation, its result or failure, plus the state after the batch and the messages the
successful operations sent. A failed operation's state changes and messages are dropped.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from durable_azstorage.authoring.entities import (
    DurableEntity,
    EntityContext,
    SignalAction,
    StartAction,
)
from durable_azstorage.authoring.registry import Registry
from durable_azstorage.authoring.signatures import input_type
from durable_azstorage.model.entities import EntityInstanceId, EntityRequest
from durable_azstorage.model.failure import FailureDetails
from durable_azstorage.serialization.converter import (
    DataConverter,
    JsonDataConverter,
    deserialize_as,
)


class EntityNotRegisteredError(LookupError):
    """The worker has no entity of the requested name."""


@dataclass(frozen=True, slots=True)
class OperationOutcome:
    """One operation's serialized result, or its failure."""

    result: str | None = None
    failure: FailureDetails | None = None


@dataclass(slots=True)
class BatchOutcome:
    """What a batch of operations did: one outcome per operation, in order."""

    outcomes: list[OperationOutcome]
    state: str | None
    signals: list[SignalAction] = field(default_factory=list)
    starts: list[StartAction] = field(default_factory=list)


class OperationRunner(Protocol):
    def run(
        self, entity_id: EntityInstanceId, state: str | None, operations: Sequence[EntityRequest]
    ) -> BatchOutcome:
        """Run ``operations`` in order starting from ``state``."""
        ...


class LocalOperations:
    """Runs the entities registered in ``registry`` in this process."""

    def __init__(
        self,
        registry: Registry,
        converter: DataConverter | None = None,
        logger: logging.Logger | None = None,
    ) -> None:
        self._registry = registry
        self._converter = converter or JsonDataConverter()
        self._log = logger or logging.getLogger(__name__)

    def run(
        self, entity_id: EntityInstanceId, state: str | None, operations: Sequence[EntityRequest]
    ) -> BatchOutcome:
        outcome = BatchOutcome(outcomes=[], state=state)
        for request in operations:
            operation = request.operation or ""
            ctx = EntityContext(
                entity_id, operation, outcome.state, self._converter, caller=request.parent
            )
            try:
                encoded = self._converter.serialize(self._invoke(entity_id, ctx, request))
            except Exception as exc:  # noqa: BLE001 - user code: the operation fails, state rolls back
                self._log.warning("entity %s: operation %r failed: %s", entity_id, operation, exc)
                outcome.outcomes.append(
                    OperationOutcome(failure=FailureDetails.from_exception(exc))
                )
                continue
            outcome.outcomes.append(OperationOutcome(result=encoded))
            outcome.state = ctx.serialized_state
            outcome.signals.extend(ctx.signals)
            outcome.starts.extend(ctx.starts)
        return outcome

    def _invoke(
        self, entity_id: EntityInstanceId, ctx: EntityContext, request: EntityRequest
    ) -> object:
        entity = self._registry.get_entity(entity_id.entity)
        if entity is None:
            known = ", ".join(self._registry.entity_names) or "none"
            raise EntityNotRegisteredError(
                f"entity {entity_id.entity!r} is not registered with this worker (registered entities: {known})"
            )
        if not (isinstance(entity, type) and issubclass(entity, DurableEntity)):
            function: Callable[[EntityContext, object], object] = entity
            return function(ctx, self._input(request, function))
        instance = entity()
        # a class-based entity's operations are its public methods, looked up by name
        method = (
            getattr(instance, ctx.operation, None) if not ctx.operation.startswith("_") else None
        )
        if method is None or not callable(method):
            raise AttributeError(f"entity {entity_id.entity!r} has no operation {ctx.operation!r}")
        instance._initialize_entity_context(ctx)
        if request.input is None and not _requires_argument(method):
            return method()
        return method(self._input(request, getattr(entity, ctx.operation)))

    def _input(self, request: EntityRequest, fn: Callable[..., object]) -> object:
        """The operation's input, rebuilt as ``fn``'s input annotation asks (as for activities)."""
        if request.input is None:
            return None
        return deserialize_as(self._converter, request.input, input_type(fn))


def _requires_argument(method: Callable[..., object]) -> bool:
    parameters = inspect.signature(method).parameters.values()
    return any(
        p.default is inspect.Parameter.empty
        and p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
        for p in parameters
    )
