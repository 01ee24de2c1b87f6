"""OrchestrationState: what a client sees of an instance (the public view of InstanceState)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar, overload

from durable_azstorage.model.errors import OrchestrationFailedError
from durable_azstorage.model.failure import FailureDetails
from durable_azstorage.model.state import InstanceState
from durable_azstorage.model.status import OrchestrationStatus
from durable_azstorage.serialization.converter import (
    DataConverter,
    JsonDataConverter,
    deserialize_as,
)

T = TypeVar("T")


@dataclass(frozen=True, slots=True, kw_only=True)
class OrchestrationState:
    """Status and payloads of an instance's latest execution.

    ``serialized_*`` hold the payload text as stored; ``get_input()``, ``get_output()`` and
    ``get_custom_status()`` decode it with the client's ``DataConverter``. Payloads are None
    when the state was fetched with ``fetch_payloads=False``.
    """

    instance_id: str
    name: str
    runtime_status: OrchestrationStatus
    created_at: datetime
    last_updated_at: datetime
    completed_at: datetime | None = None
    serialized_input: str | None = None
    serialized_output: str | None = None
    serialized_custom_status: str | None = None
    failure_details: FailureDetails | None = None
    version: str | None = None
    tags: dict[str, str] | None = None
    parent_instance_id: str | None = None
    converter: DataConverter = field(default_factory=JsonDataConverter, repr=False, compare=False)

    @classmethod
    def from_instance(cls, state: InstanceState, converter: DataConverter) -> OrchestrationState:
        return cls(
            instance_id=state.instance_id,
            name=state.name,
            runtime_status=state.runtime_status,
            created_at=state.created_at,
            last_updated_at=state.last_updated_at,
            completed_at=state.completed_at,
            serialized_input=state.input,
            serialized_output=state.output,
            serialized_custom_status=state.custom_status,
            failure_details=state.failure_details,
            version=state.version,
            tags=state.tags,
            parent_instance_id=state.parent_instance_id,
            converter=converter,
        )

    @property
    def is_terminal(self) -> bool:
        """True once the instance completed, failed or was terminated."""
        return self.runtime_status.is_terminal

    @overload
    def get_input(self, expected_type: type[T]) -> T | None: ...
    @overload
    def get_input(self, expected_type: None = None) -> Any: ...
    def get_input(self, expected_type: Any = None) -> Any:
        """The decoded input, rebuilt as ``expected_type`` when given (None if absent)."""
        return deserialize_as(self.converter, self.serialized_input, expected_type)

    @overload
    def get_output(self, expected_type: type[T]) -> T | None: ...
    @overload
    def get_output(self, expected_type: None = None) -> Any: ...
    def get_output(self, expected_type: Any = None) -> Any:
        """The decoded output, rebuilt as ``expected_type`` when given (None if absent)."""
        return deserialize_as(self.converter, self.serialized_output, expected_type)

    @overload
    def get_custom_status(self, expected_type: type[T]) -> T | None: ...
    @overload
    def get_custom_status(self, expected_type: None = None) -> Any: ...
    def get_custom_status(self, expected_type: Any = None) -> Any:
        """The decoded custom status, rebuilt as ``expected_type`` when given (None if absent)."""
        return deserialize_as(self.converter, self.serialized_custom_status, expected_type)

    def raise_if_failed(self) -> None:
        """Raise ``OrchestrationFailedError`` (with ``details``) if the instance failed."""
        if self.runtime_status is OrchestrationStatus.FAILED:
            details = self.failure_details
            reason = f"{details.error_type}: {details.message}" if details else "no details"
            raise OrchestrationFailedError(
                f"orchestration {self.instance_id!r} ({self.name}) failed: {reason}", details
            )
