"""Two sidecars (think: two pods) share one task hub through the partition manager."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
from durabletask import task
from durabletask.client import OrchestrationStatus, TaskHubGrpcClient
from durabletask.worker import OrchestrationWorkItemFilter, TaskHubGrpcWorker, WorkItemFilters
from sidecar_support import RunningSidecar, sidecar_settings

from durable_azstorage.azure.storage.naming import partition_of
from durable_azstorage.testing.azurite import Azurite
from durable_azstorage.testing.eventually import eventually

pytestmark = pytest.mark.azurite


def double(ctx: task.OrchestrationContext, n: int) -> int:
    return n * 2


@contextmanager
def _sdk_app(
    address: str, orchestrator: Callable[..., Any] = double, *, filtered: bool = False
) -> Iterator[TaskHubGrpcClient]:
    """An SDK worker and client on one sidecar (each pod runs its app next to its sidecar);
    ``filtered``: the worker names its orchestrator in work-item filters."""
    worker = TaskHubGrpcWorker(host_address=address)
    worker.add_orchestrator(orchestrator)
    if filtered:
        worker.use_work_item_filters(
            WorkItemFilters(
                orchestrations=[OrchestrationWorkItemFilter(name=task.get_name(orchestrator))]
            )
        )
    worker.start()
    client = TaskHubGrpcClient(host_address=address)
    try:
        yield client
    finally:
        client.close()
        worker.stop()


def _two_per_partition(count: int) -> list[str]:
    ids: list[str] = []
    for partition in range(count):
        found = 0
        while found < 2:
            iid = f"p{partition}-{uuid.uuid4().hex[:8]}"
            if partition_of(iid, count) == partition:
                ids.append(iid)
                found += 1
    return ids


def _owned(running: RunningSidecar) -> frozenset[int]:
    assert running.server is not None
    owned = running.server.owned_partitions()
    assert owned is not None
    return owned


def test_two_sidecars_split_the_partitions_and_hand_them_over_on_stop(
    azurite: Azurite, new_sidecar: Callable[..., RunningSidecar]
) -> None:
    base = dataclasses.replace(
        sidecar_settings(azurite, "shared"),
        lease_interval=timedelta(seconds=6),
        lease_renew_interval=timedelta(seconds=2),
        lease_acquire_interval=timedelta(seconds=1),
    )
    first = new_sidecar(dataclasses.replace(base, worker_id="pod-a"))
    assert _owned(first) == {0, 1, 2, 3}
    second = new_sidecar(dataclasses.replace(base, worker_id="pod-b"), create_hub=False)
    eventually(
        lambda: (_owned(first), _owned(second)),
        until=lambda o: len(o[0]) == len(o[1]) == 2,
        timeout=30,
        interval=0.1,
        what="a 2/2 split (owned by first, second)",
    )
    assert _owned(first).isdisjoint(_owned(second))

    with _sdk_app(first.address) as client_a, _sdk_app(second.address) as client_b:
        ids = _two_per_partition(base.partition_count)  # both sidecars must do work
        for i, iid in enumerate(ids):
            (client_a if i % 2 else client_b).schedule_new_orchestration(
                double, input=i, instance_id=iid
            )
        for i, iid in enumerate(ids):
            state = client_a.wait_for_orchestration_completion(iid, timeout=60)
            assert state is not None and state.runtime_status is OrchestrationStatus.COMPLETED
            assert state.get_output() == i * 2

    second.stop()  # graceful: releases its partitions, the first sidecar takes them at once
    eventually(
        lambda: _owned(first),
        until=lambda owned: owned == {0, 1, 2, 3},
        timeout=30,
        interval=0.1,
        what="the hand-over to the first sidecar (owned by first)",
    )
    with _sdk_app(first.address) as client_a:
        late = [f"late{i}-{uuid.uuid4().hex[:6]}" for i in range(4)]
        for i, iid in enumerate(late):
            client_a.schedule_new_orchestration(double, input=10 + i, instance_id=iid)
        for i, iid in enumerate(late):
            state = client_a.wait_for_orchestration_completion(iid, timeout=60)
            assert state is not None and state.get_output() == (10 + i) * 2


def left(ctx: task.OrchestrationContext, n: int) -> str:
    return f"left:{n}"


def right(ctx: task.OrchestrationContext, n: int) -> str:
    return f"right:{n}"


def test_sidecars_with_different_filters_share_a_hub_with_shared_partitions(
    azurite: Azurite, new_sidecar: Callable[..., RunningSidecar]
) -> None:
    """Every instance reaches the sidecar whose worker runs it, whichever partition it is in:
    the other sidecar defers it (never poison, max_dequeue_count=2) and it is offered again."""
    base = dataclasses.replace(
        sidecar_settings(azurite, "filtered"), shared_partitions=True, max_dequeue_count=2
    )
    first = new_sidecar(dataclasses.replace(base, worker_id="pod-left"))
    second = new_sidecar(dataclasses.replace(base, worker_id="pod-right"), create_hub=False)
    assert _owned(first) == _owned(second) == {0, 1, 2, 3}  # no leases: both receive every queue

    with (
        _sdk_app(first.address, left, filtered=True) as client,
        _sdk_app(second.address, right, filtered=True),
    ):
        ids = _two_per_partition(base.partition_count)
        for i, iid in enumerate(ids):
            client.schedule_new_orchestration(right if i % 2 else left, input=i, instance_id=iid)
        for i, iid in enumerate(ids):
            state = client.wait_for_orchestration_completion(iid, timeout=90)
            assert state is not None and state.runtime_status is OrchestrationStatus.COMPLETED, (
                state
            )
            assert state.get_output() == f"{'right' if i % 2 else 'left'}:{i}"
