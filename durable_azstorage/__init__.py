"""durable_azstorage: durable orchestrations for Python with state in Azure Storage.

The public API is re-exported here lazily, so ``import durable_azstorage`` stays cheap and
importing the authoring API does not pull in the Azure SDK.
"""

from __future__ import annotations

import importlib
import warnings
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    # settings and backends
    "AzureStorageSettings": "durable_azstorage.azure.settings",
    "AzureStorageBackend": "durable_azstorage.azure.provider",
    "InMemoryBackend": "durable_azstorage.backend.memory",
    "Backend": "durable_azstorage.backend.protocol",
    # runtime
    "TaskHubWorker": "durable_azstorage.worker.worker",
    "ConcurrencyOptions": "durable_azstorage.worker.concurrency",
    "TaskHubClient": "durable_azstorage.client.client",
    "AsyncTaskHubClient": "durable_azstorage.client.client",
    "OrchestrationState": "durable_azstorage.client.state",
    # authoring
    "OrchestrationContext": "durable_azstorage.authoring.context",
    "ActivityContext": "durable_azstorage.authoring.context",
    "Task": "durable_azstorage.authoring.tasks",
    "when_all": "durable_azstorage.authoring.tasks",
    "when_any": "durable_azstorage.authoring.tasks",
    "RetryPolicy": "durable_azstorage.authoring.retry",
    "VersioningOptions": "durable_azstorage.authoring.versioning",
    "VersionMatchStrategy": "durable_azstorage.authoring.versioning",
    "VersionFailureStrategy": "durable_azstorage.authoring.versioning",
    "DataConverter": "durable_azstorage.serialization.converter",
    "JsonDataConverter": "durable_azstorage.serialization.converter",
    # entities
    "EntityInstanceId": "durable_azstorage.model.entities",
    "EntityContext": "durable_azstorage.authoring.entities",
    "DurableEntity": "durable_azstorage.authoring.entities",
    "EntityLock": "durable_azstorage.authoring.entities",
    "EntityOperationFailedException": "durable_azstorage.authoring.entities",
    "EntityMetadata": "durable_azstorage.client.entities",
    "EntityQuery": "durable_azstorage.client.entities",
    "CleanEntityStorageResult": "durable_azstorage.client.entities",
    # model
    "FailureDetails": "durable_azstorage.model.failure",
    "OrchestrationStatus": "durable_azstorage.model.status",
    "OrchestrationQuery": "durable_azstorage.model.query",
    "Page": "durable_azstorage.model.query",
    "PurgeInstancesResult": "durable_azstorage.model.query",
    "OrchestrationIdReusePolicy": "durable_azstorage.model.state",
    "CreateOrchestrationAction": "durable_azstorage.model.state",
    "HistoryEvent": "durable_azstorage.model.history",
    "ScaleAction": "durable_azstorage.model.scale",
    "ScaleRecommendation": "durable_azstorage.model.scale",
    # errors
    "DurableTaskError": "durable_azstorage.model.errors",
    "TaskFailedError": "durable_azstorage.model.errors",
    "NonDeterminismError": "durable_azstorage.model.errors",
    "OrchestrationFailedError": "durable_azstorage.model.errors",
    "OrchestrationNotFoundError": "durable_azstorage.model.errors",
    "OrchestrationAlreadyExistsError": "durable_azstorage.model.errors",
    "InvalidOperationError": "durable_azstorage.model.errors",
    "InvalidIdentifierError": "durable_azstorage.model.errors",
    "TaskHubNotFoundError": "durable_azstorage.model.errors",
    "PartitionCountMismatchError": "durable_azstorage.model.errors",
    "TaskHubNameConflictError": "durable_azstorage.model.errors",
    "PayloadTypeError": "durable_azstorage.model.errors",
}

# Earlier names kept one release: old name -> new name (each access warns).
_DEPRECATED: dict[str, str] = {"PurgeResult": "PurgeInstancesResult"}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _DEPRECATED:
        new = _DEPRECATED[name]
        warnings.warn(
            f"durable_azstorage.{name} is deprecated; use {new}", DeprecationWarning, stacklevel=2
        )
        return __getattr__(new)
    module_name = _EXPORTS.get(name)
    if module_name is None:
        raise AttributeError(f"module 'durable_azstorage' has no attribute {name!r}")
    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:  # pragma: no cover - explicit re-exports for type checkers and IDEs
    from durable_azstorage.authoring.context import ActivityContext as ActivityContext
    from durable_azstorage.authoring.context import OrchestrationContext as OrchestrationContext
    from durable_azstorage.authoring.entities import DurableEntity as DurableEntity
    from durable_azstorage.authoring.entities import EntityContext as EntityContext
    from durable_azstorage.authoring.entities import EntityLock as EntityLock
    from durable_azstorage.authoring.entities import (
        EntityOperationFailedException as EntityOperationFailedException,
    )
    from durable_azstorage.authoring.retry import RetryPolicy as RetryPolicy
    from durable_azstorage.authoring.tasks import Task as Task
    from durable_azstorage.authoring.tasks import when_all as when_all
    from durable_azstorage.authoring.tasks import when_any as when_any
    from durable_azstorage.authoring.versioning import (
        VersionFailureStrategy as VersionFailureStrategy,
    )
    from durable_azstorage.authoring.versioning import VersioningOptions as VersioningOptions
    from durable_azstorage.authoring.versioning import VersionMatchStrategy as VersionMatchStrategy
    from durable_azstorage.azure.provider import AzureStorageBackend as AzureStorageBackend
    from durable_azstorage.azure.settings import AzureStorageSettings as AzureStorageSettings
    from durable_azstorage.backend.memory import InMemoryBackend as InMemoryBackend
    from durable_azstorage.backend.protocol import Backend as Backend
    from durable_azstorage.client.client import AsyncTaskHubClient as AsyncTaskHubClient
    from durable_azstorage.client.client import TaskHubClient as TaskHubClient
    from durable_azstorage.client.entities import (
        CleanEntityStorageResult as CleanEntityStorageResult,
    )
    from durable_azstorage.client.entities import EntityMetadata as EntityMetadata
    from durable_azstorage.client.entities import EntityQuery as EntityQuery
    from durable_azstorage.client.state import OrchestrationState as OrchestrationState
    from durable_azstorage.model.entities import EntityInstanceId as EntityInstanceId
    from durable_azstorage.model.errors import DurableTaskError as DurableTaskError
    from durable_azstorage.model.errors import InvalidIdentifierError as InvalidIdentifierError
    from durable_azstorage.model.errors import InvalidOperationError as InvalidOperationError
    from durable_azstorage.model.errors import NonDeterminismError as NonDeterminismError
    from durable_azstorage.model.errors import (
        OrchestrationAlreadyExistsError as OrchestrationAlreadyExistsError,
    )
    from durable_azstorage.model.errors import OrchestrationFailedError as OrchestrationFailedError
    from durable_azstorage.model.errors import (
        OrchestrationNotFoundError as OrchestrationNotFoundError,
    )
    from durable_azstorage.model.errors import (
        PartitionCountMismatchError as PartitionCountMismatchError,
    )
    from durable_azstorage.model.errors import PayloadTypeError as PayloadTypeError
    from durable_azstorage.model.errors import TaskFailedError as TaskFailedError
    from durable_azstorage.model.errors import TaskHubNameConflictError as TaskHubNameConflictError
    from durable_azstorage.model.errors import TaskHubNotFoundError as TaskHubNotFoundError
    from durable_azstorage.model.failure import FailureDetails as FailureDetails
    from durable_azstorage.model.history import HistoryEvent as HistoryEvent
    from durable_azstorage.model.query import OrchestrationQuery as OrchestrationQuery
    from durable_azstorage.model.query import Page as Page
    from durable_azstorage.model.query import PurgeInstancesResult as PurgeInstancesResult
    from durable_azstorage.model.scale import ScaleAction as ScaleAction
    from durable_azstorage.model.scale import ScaleRecommendation as ScaleRecommendation
    from durable_azstorage.model.state import CreateOrchestrationAction as CreateOrchestrationAction
    from durable_azstorage.model.state import (
        OrchestrationIdReusePolicy as OrchestrationIdReusePolicy,
    )
    from durable_azstorage.model.status import OrchestrationStatus as OrchestrationStatus
    from durable_azstorage.serialization.converter import DataConverter as DataConverter
    from durable_azstorage.serialization.converter import JsonDataConverter as JsonDataConverter
    from durable_azstorage.worker.concurrency import ConcurrencyOptions as ConcurrencyOptions
    from durable_azstorage.worker.worker import TaskHubWorker as TaskHubWorker
