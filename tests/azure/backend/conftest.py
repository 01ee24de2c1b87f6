"""Fixtures for AzureStorageBackend tests against the session Azurite.

``make_backend(**kw)`` builds a backend on this test's task hub (short visibility timeouts so
that redelivery takes seconds); the first one creates the hub. Every backend is stopped and
the hub deleted at the end of the test, also when it fails. The sibling folder's
``fault_proxy`` helper is made importable here.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from builders import MakeBackend

from durable_azstorage.azure.provider import AzureStorageBackend, OwnAllPartitions
from durable_azstorage.azure.settings import AzureStorageSettings

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests/azure: fault_proxy


@pytest.fixture
def fast_settings(azure_settings: AzureStorageSettings) -> AzureStorageSettings:
    return dataclasses.replace(
        azure_settings,
        partition_count=2,
        control_queue_visibility_timeout=timedelta(seconds=3),
        work_item_visibility_timeout=timedelta(seconds=3),
        max_poll_interval=timedelta(milliseconds=500),
    )


@pytest.fixture
async def make_backend(fast_settings: AzureStorageSettings) -> AsyncIterator[MakeBackend]:
    made: list[AzureStorageBackend] = []

    async def make(
        start: bool = True, settings: AzureStorageSettings | None = None, **kw: Any
    ) -> AzureStorageBackend:
        chosen = settings or fast_settings
        # These tests are about competing workers on the same queues (crashes, races,
        # sessions), not about leases: every backend receives every partition unless told.
        kw.setdefault("ownership", OwnAllPartitions(chosen.partition_count))
        backend = AzureStorageBackend(chosen, **kw)
        if not made:
            await backend.create_task_hub()
        made.append(backend)
        if start:
            await backend.start()
        return backend

    try:
        yield make
    finally:
        for backend in reversed(made):
            await backend.stop()
        if made:
            cleaner = AzureStorageBackend(fast_settings)
            try:
                await cleaner.delete_task_hub()
            finally:
                await cleaner.stop()
