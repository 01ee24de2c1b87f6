"""Fixtures shared by every test folder: one real Azurite per test session, unique hub names.

* ``azurite`` (session): a running Azurite (``durable_azstorage.testing.azurite``) with
  ``.connection_string``; stopped by PID at the end of the session, also on failure. If it
  cannot start, every test that needs it fails loudly with the reason (never skipped).
  Under pytest-xdist "session" means one worker process: each worker starts its own
  Azurite on its own free ports, so no two workers share a storage account.
* ``hub_name`` (function): a fresh valid task hub name, unique per test.
* ``azure_settings`` (function): ``AzureStorageSettings`` for the session Azurite and that hub.
  Creating (and deleting) the hub is up to the test.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator

import pytest

from durable_azstorage.azure.settings import AzureStorageSettings
from durable_azstorage.testing.azurite import Azurite, AzuriteError


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that needs the session Azurite (directly or through other fixtures).

    ``fixturenames`` is the closure of a test's fixtures, so ``-m "not azurite"`` is a
    storage-free run without a hand-kept marker on each file. Tests that start an Azurite
    of their own (not through this fixture) carry the marker explicitly.
    """
    for item in items:
        if "azurite" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.azurite)


@pytest.fixture(scope="session")
def azurite() -> Iterator[Azurite]:
    emulator = Azurite(die_with_parent=True)
    try:
        emulator.start()
    except AzuriteError as exc:
        where = "in CI" if os.environ.get("CI") else "locally"
        pytest.fail(
            f"Azurite could not start {where} (tests against storage never skip): {exc}\n"
            "Install it with `npm ci --prefix azurite` (Node.js >= 20).",
            pytrace=False,
        )
    try:
        yield emulator
    finally:
        emulator.stop()


@pytest.fixture
def hub_name(request: pytest.FixtureRequest) -> str:
    stem = re.sub(r"[^A-Za-z0-9]", "", request.node.name)[:20]
    return f"t{stem}{uuid.uuid4().hex[:10]}"


@pytest.fixture
def azure_settings(azurite: Azurite, hub_name: str) -> AzureStorageSettings:
    return AzureStorageSettings(connection_string=azurite.connection_string, task_hub=hub_name)
