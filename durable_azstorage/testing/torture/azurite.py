"""The torture test against Azure Storage (Azurite): same programs, faults and invariants.

Time is real here (``RealTime``: short visibility timeouts, timers of 1–2 s, sleeps capped
just past the lock timeout), so a seed takes tens of seconds and does not replay exactly:
the scheduling is seeded, the storage's timing is not. Simulated workers share one
``AzureStorageBackend`` that owns every partition explicitly (no lease manager); a worker
crash stops that backend object and starts a new one, as a process restart would. The Azure
backend has ``checkpoint_hook`` (crashes at each step are injected) but no ``delete_audit``
(the deleted-unconsumed invariant is not checked). The clock never steps back.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import os
from collections.abc import Iterator
from datetime import timedelta

from durable_azstorage.azure.provider import AzureStorageBackend, OwnAllPartitions
from durable_azstorage.azure.settings import AzureStorageSettings
from durable_azstorage.backend.protocol import Backend
from durable_azstorage.testing.azurite import Azurite
from durable_azstorage.testing.torture.clock import RealTime, Time
from durable_azstorage.testing.torture.storage import DeleteAudit, Storage, StorageFactory
from durable_azstorage.testing.torture.world import Options

LOCK_TIMEOUT = 3.0
_hubs = itertools.count(1)


class AzureStorage:
    """A fresh task hub; ``client`` only reads and writes, ``workers`` receives."""

    def __init__(self, settings: AzureStorageSettings) -> None:
        self._settings = settings
        self.client: Backend = AzureStorageBackend(settings)
        self.workers: Backend = self._receiver()
        self.resends_on_recovery = True

    def _receiver(self) -> AzureStorageBackend:
        return AzureStorageBackend(
            self._settings, ownership=OwnAllPartitions(self._settings.partition_count)
        )

    async def open(self) -> None:
        await self.client.create_task_hub()
        await self.workers.start()

    async def crash(self) -> bool:
        dead, self.workers = self.workers, self._receiver()
        await dead.stop()  # its locks are left to expire, as a dead process's would
        await self.workers.start()
        return True

    async def close(self) -> None:
        await self.workers.stop()
        await self.client.delete_task_hub()
        await self.client.stop()


def hub_settings(settings: AzureStorageSettings) -> AzureStorageSettings:
    """``settings`` with the short timeouts a torture run needs and a fresh hub name."""
    return dataclasses.replace(
        settings,
        task_hub=f"torture{os.getpid()}n{next(_hubs)}",
        partition_count=2,
        control_queue_visibility_timeout=timedelta(seconds=LOCK_TIMEOUT),
        work_item_visibility_timeout=timedelta(seconds=LOCK_TIMEOUT),
        max_poll_interval=timedelta(milliseconds=200),
    )


def azure_options(options: Options, settings: AzureStorageSettings) -> Options:
    """``options`` for runs on the storage account of ``settings`` (one new hub per seed)."""

    def storage(time: Time, audit: DeleteAudit) -> Storage:
        return AzureStorage(hub_settings(settings))

    factory: StorageFactory = storage
    return dataclasses.replace(
        options,
        storage=factory,
        time=lambda: RealTime(LOCK_TIMEOUT),
        timers=(1, 2),
        min_steps=30,
        max_steps=70,
    )


@contextlib.contextmanager
def azurite_options(options: Options) -> Iterator[Options]:
    """Start a local Azurite (stopped by PID on exit) and yield ``options`` for it."""
    with Azurite() as azurite:
        settings = AzureStorageSettings(
            connection_string=azurite.connection_string, task_hub="torture"
        )
        yield azure_options(options, settings)
