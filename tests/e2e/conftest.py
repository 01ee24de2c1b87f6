"""Fixtures for end-to-end tests: an InMemoryBackend shared by a worker and clients.

Tests register their functions on ``worker`` and then call ``worker.start()``; finalizers
stop the worker and close the clients, also when a test fails.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import timedelta
from typing import TypeVar

import pytest

from durable_azstorage import AsyncTaskHubClient, InMemoryBackend, TaskHubClient, TaskHubWorker

T = TypeVar("T")


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


@pytest.fixture
def eventually() -> Callable[..., object]:
    """``eventually(probe, timeout=5, what=...)``: poll until ``probe()`` is truthy."""
    return poll_until


def poll_until(probe: Callable[[], T | None], *, timeout: float = 5.0, what: str = "condition") -> T:
    """Poll ``probe`` until it returns something truthy; fail naming ``what`` otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.01)
