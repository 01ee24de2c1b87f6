"""The exported conformance suite on both backends, exactly as a user runs it on theirs.

Each class gives the suite one fixture, ``harness``: a backend on a fresh, empty task hub,
a competing ``peer`` and the knobs that move time. In memory, time is a fake clock (the
suite is instant); on Azurite, short visibility timeouts make lock expiry take seconds.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone

import pytest

from durable_azstorage.azure.provider import AzureStorageBackend, OwnAllPartitions
from durable_azstorage.azure.settings import AzureStorageSettings
from durable_azstorage.backend.clock import FakeClock
from durable_azstorage.backend.memory import InMemoryBackend
from durable_azstorage.testing.conformance import (
    BackendConformance,
    BackendHarness,
    CrashRecoveryConformance,
    ExecutionArchiveConformance,
)

ARCHIVED = 3  # earlier executions kept per instance (not the default, so the setting counts)


class TestInMemoryBackend(
    BackendConformance, CrashRecoveryConformance, ExecutionArchiveConformance
):
    @pytest.fixture
    async def harness(self) -> AsyncIterator[BackendHarness]:
        clock = FakeClock()
        backend = InMemoryBackend(
            clock=clock, lock_timeout=timedelta(seconds=60), archived_executions=ARCHIVED
        )

        async def jump(seconds: float) -> None:
            clock.advance(seconds)
            await asyncio.sleep(0)

        await backend.create_task_hub()
        await backend.start()
        try:
            yield BackendHarness(
                name="memory",
                backend=backend,
                peer=backend,  # its state lives in one process
                lock_timeout=backend.lock_timeout,
                delay=timedelta(seconds=30),
                receive_timeout=2.0,
                empty_timeout=0.01,
                now=clock.now,
                sleep=jump,
                archived_executions=ARCHIVED,
            )
        finally:
            await backend.stop()


class TestAzureStorageBackend(
    BackendConformance, CrashRecoveryConformance, ExecutionArchiveConformance
):
    @pytest.fixture
    async def harness(self, azure_settings: AzureStorageSettings) -> AsyncIterator[BackendHarness]:
        settings = dataclasses.replace(
            azure_settings,
            partition_count=2,
            control_queue_visibility_timeout=timedelta(seconds=3),
            work_item_visibility_timeout=timedelta(seconds=3),
            max_poll_interval=timedelta(milliseconds=200),
            archived_executions=ARCHIVED,
            # The suite drives the backend contract; the cross-process wake-up watch (up to 20
            # blob reads/s after work, in both backends here) only costs CPU here. Its own
            # tests are in tests/azure/stores/test_wakeup.py.
            wakeup_interval=None,
        )
        # Competing workers on the same partitions (what lock expiry and ETag races need): both
        # receive every control queue instead of splitting them through leases.
        backend, peer = (
            AzureStorageBackend(settings, ownership=OwnAllPartitions(settings.partition_count))
            for _ in range(2)
        )
        await backend.create_task_hub()
        await backend.start()
        await peer.start()
        try:
            yield BackendHarness(
                name="azurite",
                backend=backend,
                peer=peer,
                lock_timeout=settings.control_queue_visibility_timeout,
                delay=timedelta(seconds=4),
                receive_timeout=10.0,
                empty_timeout=1.0,
                now=lambda: datetime.now(timezone.utc),
                sleep=asyncio.sleep,
                archived_executions=ARCHIVED,
            )
        finally:
            await peer.stop()
            await backend.stop()
            cleaner = AzureStorageBackend(settings)
            try:
                await cleaner.delete_task_hub()
            finally:
                await cleaner.stop()
