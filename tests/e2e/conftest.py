"""Fixtures for end-to-end tests: a worker and clients on one backend.

By default the backend is an ``InMemoryBackend`` (``backend``). A module that must hold on
every backend parametrises ``storage`` over ``e2e_backends.BACKENDS`` (memory, and Azurite
with a fresh task hub per test); ``worker`` and ``client`` then run on that backend.

Tests register their functions on ``worker`` and then call ``worker.start()``; finalizers
stop the worker, close the clients and delete the hub, also when a test fails.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta

import pytest

from durable_azstorage import AsyncTaskHubClient, InMemoryBackend, TaskHubClient, TaskHubWorker
from durable_azstorage.azure.settings import AzureStorageSettings


@pytest.fixture
def backend() -> InMemoryBackend:
    return InMemoryBackend()


@pytest.fixture
def storage(request: pytest.FixtureRequest) -> str:
    """``"memory"`` unless the module parametrises it (``indirect=True``)."""
    return str(getattr(request, "param", "memory"))


@pytest.fixture
def azure_hub(
    storage: str, request: pytest.FixtureRequest
) -> Iterator[AzureStorageSettings | None]:
    """Settings of a created task hub on the session Azurite, or None for the memory backend."""
    if storage == "memory":
        yield None
        return
    settings = dataclasses.replace(
        request.getfixturevalue("azure_settings"),
        partition_count=2,
        max_poll_interval=timedelta(milliseconds=300),
    )
    with TaskHubClient(settings) as admin:
        admin.create_task_hub()
        try:
            yield settings
        finally:
            admin.delete_task_hub()


@pytest.fixture
def worker(
    azure_hub: AzureStorageSettings | None, request: pytest.FixtureRequest
) -> Iterator[TaskHubWorker]:
    if azure_hub is None:
        w = TaskHubWorker(
            backend=request.getfixturevalue("backend"), lock_renew_interval=timedelta(seconds=1)
        )
    else:  # the worker builds its own backend on its own thread
        w = TaskHubWorker(azure_hub)
    try:
        yield w
    finally:
        w.stop(grace=timedelta(seconds=5))


@pytest.fixture
def client(
    azure_hub: AzureStorageSettings | None, request: pytest.FixtureRequest
) -> Iterator[TaskHubClient]:
    if azure_hub is None:
        c = TaskHubClient(backend=request.getfixturevalue("backend"))
    else:
        c = TaskHubClient(azure_hub)
    try:
        yield c
    finally:
        c.close()


@pytest.fixture
async def async_client(backend: InMemoryBackend) -> AsyncIterator[AsyncTaskHubClient]:
    async with AsyncTaskHubClient(backend=backend) as c:
        yield c
