"""The pytest plugin for users' tests (entry point ``pytest11``: loaded once the package is
installed; ``-p no:durable_azstorage`` turns it off).

Fixtures, all prefixed ``durable_`` so they never shadow a project's own ``azurite`` or
``runtime`` fixtures (this repository's test suite has its own ``azurite``):

* ``durable_runtime`` (function): a started ``DurableRuntime`` — worker and client on an
  ``InMemoryBackend`` with a fake clock (``skip_timer`` / ``advance`` move durable time).
* ``durable_azurite`` (session): a local Azurite on disk (a temporary folder), on free
  ports, stopped by PID at the end of the session. If it cannot start, tests using it fail
  with the reason and the install hint; they are never silently skipped.
* ``durable_azure_settings`` (function): ``AzureStorageSettings`` for that Azurite and a
  fresh task hub name (creating the hub is up to the test, e.g. ``client.create_task_hub()``).

Importing this module costs nothing beyond pytest: the engine and the Azure SDK are imported
only by the fixtures that need them.
"""

from __future__ import annotations

import re
import threading
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from durable_azstorage.azure.settings import AzureStorageSettings
    from durable_azstorage.testing.azurite import Azurite
    from durable_azstorage.testing.runtime import DurableRuntime


@pytest.fixture
def durable_runtime() -> Iterator[DurableRuntime]:
    """A running in-memory worker + client with a fake clock; register functions, then schedule."""
    from durable_azstorage.testing.runtime import DurableRuntime

    with DurableRuntime() as runtime:
        runtime.start()
        yield runtime


@pytest.fixture(scope="session")
def durable_azurite() -> Iterator[Azurite]:
    """One Azurite for the test session (on disk, free ports), stopped by PID afterwards."""
    from durable_azstorage.testing.azurite import Azurite, AzuriteError

    emulator = Azurite(die_with_parent=threading.current_thread() is threading.main_thread())
    try:
        emulator.start()
    except AzuriteError as exc:
        pytest.fail(
            f"Azurite could not start: {exc}\nIt needs Node.js >= 20 (or Docker).", pytrace=False
        )
    try:
        yield emulator
    finally:
        emulator.stop()


@pytest.fixture
def durable_azure_settings(
    durable_azurite: Azurite, request: pytest.FixtureRequest
) -> AzureStorageSettings:
    """Settings for the session's Azurite and a task hub name unique to this test."""
    from durable_azstorage.azure.settings import AzureStorageSettings

    stem = re.sub(r"[^A-Za-z0-9]", "", request.node.name)[:20]
    return AzureStorageSettings(
        connection_string=durable_azurite.connection_string,
        task_hub=f"t{stem}{uuid.uuid4().hex[:10]}",
    )
