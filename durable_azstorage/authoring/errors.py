"""Errors of the programming model that user code may catch or match with ``is_caused_by``."""

from __future__ import annotations

from durable_azstorage.model.errors import DurableTaskError, OrchestrationTerminatedError

__all__ = [
    "ActivityNotRegisteredError",
    "NonSerializableResultError",
    "OrchestrationTerminatedError",
    "OrchestratorNotRegisteredError",
    "TaskCancelledError",
]


class TaskCancelledError(DurableTaskError):
    """Raised when a cancelled task (an event wait or a timer) is awaited."""


class OrchestratorNotRegisteredError(DurableTaskError, LookupError):
    """No orchestrator of that name is registered with the worker."""


class ActivityNotRegisteredError(DurableTaskError, LookupError):
    """No activity of that name is registered with the worker."""


class NonSerializableResultError(DurableTaskError, TypeError):
    """An orchestrator or activity returned a value the ``DataConverter`` cannot encode."""
