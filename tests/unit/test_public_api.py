"""The top-level facade: every advertised name resolves, and the list does not drift silently."""

from __future__ import annotations

import importlib

import durable_azstorage

EXPECTED = {
    "ActivityContext",
    "AsyncTaskHubClient",
    "AzureStorageBackend",
    "AzureStorageSettings",
    "Backend",
    "ConcurrencyOptions",
    "CreateOrchestrationAction",
    "DataConverter",
    "DurableTaskError",
    "FailureDetails",
    "HistoryEvent",
    "InMemoryBackend",
    "InvalidIdentifierError",
    "InvalidOperationError",
    "JsonDataConverter",
    "NonDeterminismError",
    "OrchestrationAlreadyExistsError",
    "OrchestrationContext",
    "OrchestrationFailedError",
    "OrchestrationIdReusePolicy",
    "OrchestrationNotFoundError",
    "OrchestrationQuery",
    "OrchestrationState",
    "OrchestrationStatus",
    "Page",
    "PartitionCountMismatchError",
    "PayloadTypeError",
    "PurgeInstancesResult",
    "RetryPolicy",
    "ScaleAction",
    "ScaleRecommendation",
    "Task",
    "TaskFailedError",
    "TaskHubClient",
    "TaskHubNameConflictError",
    "TaskHubNotFoundError",
    "TaskHubWorker",
    "when_all",
    "when_any",
    # durable entities
    "CleanEntityStorageResult",
    "DurableEntity",
    "EntityContext",
    "EntityInstanceId",
    "EntityLock",
    "EntityMetadata",
    "EntityOperationFailedException",
    "EntityQuery",
    "VersioningOptions",
    "VersionFailureStrategy",
    "VersionMatchStrategy",
}


def test_exports_snapshot() -> None:
    assert set(durable_azstorage.__all__) == EXPECTED


def test_every_export_resolves() -> None:
    fresh = importlib.reload(durable_azstorage)
    for name in fresh.__all__:
        assert getattr(fresh, name) is not None, name


def test_unknown_attribute_is_a_clear_error() -> None:
    try:
        durable_azstorage.NoSuchThing  # type: ignore[attr-defined]  # noqa: B018 - the lookup is the test
    except AttributeError as exc:
        assert "NoSuchThing" in str(exc)
    else:
        raise AssertionError("expected AttributeError")
