"""Fixtures for end-to-end tests: an InMemoryBackend shared by a worker and clients.

Tests register their functions on ``worker`` and then call ``worker.start()``; finalizers
stop the worker and close the clients, also when a test fails.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import timedelta

import pytest

from durable_azstorage import AsyncTaskHubClient, InMemoryBackend, TaskHubClient, TaskHubWorker


@pytest.fixture
def backend() -> InMemoryBackend:
    return InMemoryBackend()


@pytest.fixture
def worker(backend: InMemoryBackend) -> Iterator[TaskHubWorker]:
    w = TaskHubWorker(backend=backend, lock_renew_interval=timedelta(seconds=1))
    try:
        yield w
    finally:
        w.stop(grace=timedelta(seconds=5))


@pytest.fixture
def client(backend: InMemoryBackend) -> Iterator[TaskHubClient]:
    c = TaskHubClient(backend=backend)
    try:
        yield c
    finally:
        c.close()


@pytest.fixture
async def async_client(backend: InMemoryBackend) -> AsyncIterator[AsyncTaskHubClient]:
    async with AsyncTaskHubClient(backend=backend) as c:
        yield c
