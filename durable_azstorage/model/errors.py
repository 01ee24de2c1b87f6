"""Errors raised across layers. Each names what went wrong and for which instance."""

from __future__ import annotations

from durable_azstorage.model.failure import FailureDetails


class DurableTaskError(Exception):
    """Base of every error this package raises on purpose."""


class NonDeterminismError(DurableTaskError):
    """The orchestrator code no longer matches the history it is replaying."""


class TaskFailedError(DurableTaskError):
    """An activity or sub-orchestration failed; ``details`` describes the original error."""

    def __init__(self, message: str, details: FailureDetails) -> None:
        super().__init__(message)
        self.details = details


class PayloadTypeError(DurableTaskError, TypeError):
    """A payload cannot be rebuilt as the type the code asked for; names the type and field."""


class OrchestrationTerminatedError(DurableTaskError):
    """A sub-orchestration was terminated; its parent sees a failed task of this type."""


class OrchestrationFailedError(DurableTaskError):
    """Raised by ``OrchestrationState.raise_if_failed()``."""

    def __init__(self, message: str, details: FailureDetails | None) -> None:
        super().__init__(message)
        self.details = details


class OrchestrationNotFoundError(DurableTaskError, LookupError):
    def __init__(self, instance_id: str) -> None:
        super().__init__(f"orchestration instance {instance_id!r} was not found")
        self.instance_id = instance_id


class OrchestrationAlreadyExistsError(DurableTaskError):
    def __init__(self, instance_id: str, status: str) -> None:
        super().__init__(
            f"orchestration instance {instance_id!r} already exists with status {status}"
        )
        self.instance_id = instance_id


class InvalidOperationError(DurableTaskError, ValueError):
    """The instance is in a state that does not allow the operation (e.g. rewind a running one)."""


class InvalidIdentifierError(DurableTaskError, ValueError):
    """An instance id or a name breaks a storage rule (``model.identifiers``); the message
    names the rule and the offending value."""


class TaskHubNotFoundError(DurableTaskError):
    def __init__(self, task_hub: str) -> None:
        super().__init__(f"task hub {task_hub!r} does not exist; create it first")
        self.task_hub = task_hub


class PartitionCountMismatchError(DurableTaskError):
    def __init__(self, task_hub: str, stored: int, configured: int) -> None:
        super().__init__(
            f"task hub {task_hub!r} was created with partition_count={stored}, but this process "
            f"is configured with partition_count={configured}; the count is fixed at creation "
            f"(instances are mapped to partitions by it), so configure {stored}"
        )
        self.stored = stored
        self.configured = configured


class TaskHubNameConflictError(DurableTaskError):
    """The hub exists under another spelling: storage names are case-insensitive, so both
    spellings would address the same queues and tables."""

    def __init__(self, task_hub: str, stored: str) -> None:
        super().__init__(
            f"task hub {task_hub!r} is the existing task hub {stored!r}: queue, table and "
            f"container names are case-insensitive, so both spellings name the same resources; "
            f"use {stored!r}, or a name that differs in more than letter case"
        )
        self.task_hub = task_hub
        self.stored = stored


class LockLostError(DurableTaskError):
    """A work item's lock expired or was taken by another worker; its result was not saved."""


class ConcurrencyConflictError(LockLostError):
    """Another writer committed to the instance first (ETag mismatch); nothing was sent."""
