"""The ``harness`` fixture: every conformance test runs once per backend in ``HARNESSES``.

Adding a backend means adding one entry: a factory taking the pytest request (to reach session
fixtures such as a running Azurite) and returning an async context manager that yields a
``BackendHarness`` on a fresh, empty task hub and deletes it on exit.

Hook for the Azure backend (issue 4), using the session fixtures of tests/conftest.py::

    @contextlib.asynccontextmanager
    async def azurite_harness(request):
        settings = dataclasses.replace(
            request.getfixturevalue("azure_settings"),          # session Azurite, unique hub
            control_queue_visibility_timeout=timedelta(seconds=2),
            work_item_visibility_timeout=timedelta(seconds=2),
            max_poll_interval=timedelta(milliseconds=200),
        )
        backend, peer = AzureStorageBackend(settings), AzureStorageBackend(settings)
        await backend.create_task_hub()
        await backend.start(); await peer.start()
        try:
            yield BackendHarness(
                name="azurite", backend=backend, peer=peer,
                lock_timeout=timedelta(seconds=2), delay=timedelta(seconds=3),
                receive_timeout=10.0, empty_timeout=0.5,
                now=lambda: datetime.now(timezone.utc),          # sleep: real asyncio.sleep
            )
        finally:
            await peer.stop(); await backend.stop(); await backend.delete_task_hub()

    HARNESSES["azurite"] = azurite_harness

and mark the azurite param (``pytest.param("azurite", marks=pytest.mark.azurite)``) in the
``harness`` fixture below. ``peer`` must be a second backend object (a competing worker), so
that the races of the suite are real races between two receivers.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import AsyncContextManager

import pytest

from durable_azstorage.backend.clock import FakeClock
from durable_azstorage.backend.memory import InMemoryBackend

from .harness import BackendHarness

HarnessFactory = Callable[[pytest.FixtureRequest], AsyncContextManager[BackendHarness]]


@contextlib.asynccontextmanager
async def memory_harness(request: pytest.FixtureRequest) -> AsyncIterator[BackendHarness]:
    clock = FakeClock()
    backend = InMemoryBackend(clock=clock, lock_timeout=timedelta(seconds=60))

    async def jump(seconds: float) -> None:
        clock.advance(seconds)
        await asyncio.sleep(0)

    await backend.create_task_hub()
    await backend.start()
    try:
        yield BackendHarness(
            name="memory",
            backend=backend,
            peer=backend,
            lock_timeout=backend.lock_timeout,
            delay=timedelta(seconds=30),
            receive_timeout=2.0,
            empty_timeout=0.01,
            now=clock.now,
            sleep=jump,
        )
    finally:
        await backend.stop()


HARNESSES: dict[str, HarnessFactory] = {"memory": memory_harness}


@pytest.fixture(params=[pytest.param(name, id=name) for name in sorted(HARNESSES)])
async def harness(request: pytest.FixtureRequest) -> AsyncIterator[BackendHarness]:
    async with HARNESSES[request.param](request) as h:
        yield h
