"""Orchestration versioning: ``worker.use_versioning`` and the client's default
version, on the in-memory backend and on Azurite.

The rolling deployment is the one docs/versioning.md describes: a worker of the old code
(STRICT, REJECT) keeps running old instances and leaves new-version ones Pending, untouched
and never poisoned, until a worker of the new code takes them.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Generator
from datetime import timedelta
from typing import Any

import pytest
from e2e_backends import BACKENDS

from durable_azstorage import (
    OrchestrationContext,
    OrchestrationStatus,
    Task,
    TaskHubClient,
    TaskHubWorker,
    VersionFailureStrategy,
    VersioningOptions,
    VersionMatchStrategy,
)
from durable_azstorage.authoring.versioning import VERSION_MISMATCH_ERROR_TYPE
from durable_azstorage.azure.settings import AzureStorageSettings
from durable_azstorage.worker import processor

pytestmark = pytest.mark.parametrize("storage", BACKENDS, indirect=True)

TIMEOUT = 30
S = OrchestrationStatus


def which(ctx: OrchestrationContext, _: Any) -> str | None:
    return ctx.version


def child(ctx: OrchestrationContext, _: Any) -> str | None:
    return ctx.version


def parent(ctx: OrchestrationContext, _: Any) -> Generator[Task[Any], Any, Any]:
    return (yield ctx.call_sub_orchestrator(child))


def _worker(
    azure_hub: AzureStorageSettings | None, client: TaskHubClient, *, shared: bool = False
) -> TaskHubWorker:
    """A worker on the test's hub (the in-memory one: the client's backend) that declares an
    item poison at its second failed delivery; ``shared``: on Azure, without partition leases."""
    if azure_hub is None:
        return TaskHubWorker(
            backend=client.backend, lock_renew_interval=timedelta(seconds=1), max_dequeue_count=2
        )
    return TaskHubWorker(
        dataclasses.replace(azure_hub, shared_partitions=shared), max_dequeue_count=2
    )


def _versioned_client(
    azure_hub: AzureStorageSettings | None, client: TaskHubClient
) -> TaskHubClient:
    if azure_hub is None:
        return TaskHubClient(backend=client.backend, default_version="2.0")
    return TaskHubClient(azure_hub, default_version="2.0")


def test_strict_fail_fails_other_versions_with_version_mismatch(
    worker: TaskHubWorker, client: TaskHubClient
) -> None:
    worker.add_orchestrator(which)
    worker.use_versioning(
        VersioningOptions(
            version="2.0",
            match_strategy=VersionMatchStrategy.STRICT,
            failure_strategy=VersionFailureStrategy.FAIL,
        )
    )
    worker.start()
    good = client.schedule_new_orchestration(which, version="2.0")
    old = client.schedule_new_orchestration(which, version="1.0")
    none = client.schedule_new_orchestration(which)

    assert client.wait_for_orchestration_completion(good, timeout=TIMEOUT).get_output() == "2.0"
    for instance_id, version in ((old, "1.0"), (none, None)):
        state = client.wait_for_orchestration_completion(instance_id, timeout=TIMEOUT)
        assert state.runtime_status is S.FAILED
        assert state.failure_details is not None
        assert state.failure_details.error_type == VERSION_MISMATCH_ERROR_TYPE
        assert repr(version) in state.failure_details.message


def test_current_or_older_runs_older_versions_and_fails_newer(
    worker: TaskHubWorker, client: TaskHubClient
) -> None:
    worker.add_orchestrator(which)
    worker.use_versioning(
        VersioningOptions(
            version="1.10",
            match_strategy=VersionMatchStrategy.CURRENT_OR_OLDER,
            failure_strategy=VersionFailureStrategy.FAIL,
        )
    )
    worker.start()
    ids = {v: client.schedule_new_orchestration(which, version=v) for v in ("1.9", "1.10", "2.0")}
    unversioned = client.schedule_new_orchestration(which)

    for version in ("1.9", "1.10"):
        state = client.wait_for_orchestration_completion(ids[version], timeout=TIMEOUT)
        assert (state.runtime_status, state.get_output()) == (S.COMPLETED, version)
    assert (
        client.wait_for_orchestration_completion(unversioned, timeout=TIMEOUT).runtime_status
        is S.COMPLETED
    )
    newer = client.wait_for_orchestration_completion(ids["2.0"], timeout=TIMEOUT)
    assert newer.runtime_status is S.FAILED
    assert newer.failure_details is not None and "newer" in newer.failure_details.message


def test_rolling_deployment_rejects_without_poison_until_the_new_worker_runs_it(
    client: TaskHubClient,
    azure_hub: AzureStorageSettings | None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(processor, "DEFERRAL_DELAY", timedelta(milliseconds=100))
    old_worker = _worker(azure_hub, client)
    old_worker.add_orchestrator(which)
    old_worker.use_versioning(
        VersioningOptions(
            version="1.0",
            match_strategy=VersionMatchStrategy.STRICT,
            failure_strategy=VersionFailureStrategy.REJECT,
        )
    )
    new_worker = _worker(azure_hub, client)
    new_worker.add_orchestrator(which)
    new_worker.use_versioning(
        VersioningOptions(
            version="2.0",
            match_strategy=VersionMatchStrategy.STRICT,
            failure_strategy=VersionFailureStrategy.REJECT,
        )
    )
    old_worker.start()
    new_client = _versioned_client(azure_hub, client)
    try:
        old_id = client.schedule_new_orchestration(which, version="1.0")
        new_id = new_client.schedule_new_orchestration(which)
        assert (
            client.wait_for_orchestration_completion(old_id, timeout=TIMEOUT).get_output() == "1.0"
        )
        # Many deferrals (100 ms each) pass: far more than max_dequeue_count, yet untouched.
        time.sleep(3)
        state = client.get_orchestration_state(new_id)
        assert state is not None
        assert (state.runtime_status, state.version) == (S.PENDING, "2.0")

        new_worker.start()
        if azure_hub is not None:  # the old code goes away: its partitions move to the new one
            old_worker.stop(grace=timedelta(seconds=5))
        # (in memory both share one backend, which a worker's stop would stop: they compete)
        done = client.wait_for_orchestration_completion(new_id, timeout=TIMEOUT)
        assert (done.runtime_status, done.get_output()) == (S.COMPLETED, "2.0")
    finally:
        old_worker.stop(grace=timedelta(seconds=5))
        new_worker.stop(grace=timedelta(seconds=5))
        new_client.close()


def test_two_versions_run_side_by_side_when_partitions_are_shared(
    client: TaskHubClient, azure_hub: AzureStorageSettings | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With ``shared_partitions`` (in memory: always) a rejected instance reaches a worker of
    its version while both versions keep running, whatever its partition."""
    monkeypatch.setattr(processor, "DEFERRAL_DELAY", timedelta(milliseconds=100))
    workers = [_worker(azure_hub, client, shared=True) for _ in ("1.0", "2.0")]
    try:
        for version, w in zip(("1.0", "2.0"), workers, strict=False):
            w.add_orchestrator(which)
            w.use_versioning(
                VersioningOptions(
                    version=version,
                    match_strategy=VersionMatchStrategy.STRICT,
                    failure_strategy=VersionFailureStrategy.REJECT,
                )
            )
            w.start()
        ids = {client.schedule_new_orchestration(which, version=v): v for v in ("1.0", "2.0") * 4}
        for instance_id, version in ids.items():
            done = client.wait_for_orchestration_completion(instance_id, timeout=TIMEOUT)
            assert (done.runtime_status, done.get_output()) == (S.COMPLETED, version)
    finally:
        for w in workers:
            w.stop(grace=timedelta(seconds=5))


def test_default_version_goes_to_sub_orchestrations_started_without_one(
    worker: TaskHubWorker, client: TaskHubClient
) -> None:
    worker.add_orchestrator(parent)
    worker.add_orchestrator(child)
    worker.use_versioning(VersioningOptions(version="3.0", default_version="3.0"))
    worker.start()
    instance_id = client.schedule_new_orchestration(parent)

    state = client.wait_for_orchestration_completion(instance_id, timeout=TIMEOUT)
    assert (state.runtime_status, state.get_output()) == (S.COMPLETED, "3.0")


def test_use_versioning_checks_its_argument_and_refuses_a_running_worker(
    worker: TaskHubWorker,
) -> None:
    with pytest.raises(TypeError, match="VersioningOptions"):
        worker.use_versioning({"version": "1.0"})  # type: ignore[arg-type]
    worker.add_orchestrator(which)
    worker.start()
    with pytest.raises(RuntimeError, match="running"):
        worker.use_versioning(VersioningOptions(version="1.0"))


def test_option_types_are_checked(storage: str) -> None:
    with pytest.raises(TypeError, match="match_strategy"):
        VersioningOptions(version="1", match_strategy="STRICT")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="failure_strategy"):
        VersioningOptions(version="1", failure_strategy="FAIL")  # type: ignore[arg-type]
    assert dataclasses.replace(VersioningOptions(), version="2").version == "2"
