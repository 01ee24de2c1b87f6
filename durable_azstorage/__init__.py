"""durable_azstorage: durable orchestrations for Python with state in Azure Storage.

The public API is re-exported here lazily, so ``import durable_azstorage`` stays cheap and
importing the authoring API does not pull in the Azure SDK.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS: dict[str, str] = {
    # settings and backends
    "AzureStorageSettings": "durable_azstorage.azure.settings",
    "InMemoryBackend": "durable_azstorage.backend.memory",
    "Backend": "durable_azstorage.backend.protocol",
    # runtime
    "TaskHubWorker": "durable_azstorage.worker.worker",
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
    "DataConverter": "durable_azstorage.serialization.converter",
    "JsonDataConverter": "durable_azstorage.serialization.converter",
    # model
    "FailureDetails": "durable_azstorage.model.failure",
    "OrchestrationStatus": "durable_azstorage.model.status",
    "OrchestrationQuery": "durable_azstorage.model.query",
    "Page": "durable_azstorage.model.query",
    "PurgeResult": "durable_azstorage.model.query",
    "OrchestrationIdReusePolicy": "durable_azstorage.model.state",
    "CreateOrchestrationAction": "durable_azstorage.model.state",
    "HistoryEvent": "durable_azstorage.model.history",
    # errors
    "DurableTaskError": "durable_azstorage.model.errors",
    "TaskFailedError": "durable_azstorage.model.errors",
    "NonDeterminismError": "durable_azstorage.model.errors",
    "OrchestrationFailedError": "durable_azstorage.model.errors",
    "OrchestrationNotFoundError": "durable_azstorage.model.errors",
    "OrchestrationAlreadyExistsError": "durable_azstorage.model.errors",
    "InvalidOperationError": "durable_azstorage.model.errors",
    "TaskHubNotFoundError": "durable_azstorage.model.errors",
    "PartitionCountMismatchError": "durable_azstorage.model.errors",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module_name = _EXPORTS.get(name)
    if module_name is None:
        raise AttributeError(f"module 'durable_azstorage' has no attribute {name!r}")
    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from durable_azstorage.authoring.context import ActivityContext, OrchestrationContext
    from durable_azstorage.authoring.retry import RetryPolicy
    from durable_azstorage.authoring.tasks import Task, when_all, when_any
    from durable_azstorage.azure.settings import AzureStorageSettings
    from durable_azstorage.backend.memory import InMemoryBackend
    from durable_azstorage.backend.protocol import Backend
    from durable_azstorage.client.client import AsyncTaskHubClient, TaskHubClient
    from durable_azstorage.client.state import OrchestrationState
    from durable_azstorage.model.errors import (
        DurableTaskError,
        InvalidOperationError,
        NonDeterminismError,
        OrchestrationAlreadyExistsError,
        OrchestrationFailedError,
        OrchestrationNotFoundError,
        PartitionCountMismatchError,
        TaskFailedError,
        TaskHubNotFoundError,
    )
    from durable_azstorage.model.failure import FailureDetails
    from durable_azstorage.model.history import HistoryEvent
    from durable_azstorage.model.query import OrchestrationQuery, Page, PurgeResult
    from durable_azstorage.model.state import CreateOrchestrationAction, OrchestrationIdReusePolicy
    from durable_azstorage.model.status import OrchestrationStatus
    from durable_azstorage.serialization.converter import DataConverter, JsonDataConverter
