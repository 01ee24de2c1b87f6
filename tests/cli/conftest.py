"""Fixtures for the CLI tests (helpers are in ``cli_support``).

* ``cli_env`` (function): a clean environment pointed at the session Azurite and the test's hub.
* ``cli_worker`` (function): the hub created and ``worker_app:create_worker`` running on it.
* ``client`` (function): a ``TaskHubClient`` on the same hub (to wait for instances).
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_support import PREFIX, clean_env, invoke_cli, running_worker

from durable_azstorage import TaskHubClient
from durable_azstorage.azure.settings import AzureStorageSettings
from durable_azstorage.testing.azurite import Azurite


@pytest.fixture
def cli_env(azurite: Azurite, hub_name: str) -> dict[str, str]:
    return {
        **clean_env(),
        PREFIX + "CONNECTION_STRING": azurite.connection_string,
        PREFIX + "TASK_HUB": hub_name,
    }


@pytest.fixture
def cli_worker(cli_env: dict[str, str], tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    created = invoke_cli("hub", "create", env=cli_env)
    assert created.returncode == 0, created.stderr
    with running_worker(cli_env, tmp_path / "worker.log") as process:
        yield process


@pytest.fixture
def client(azure_settings: AzureStorageSettings) -> Iterator[TaskHubClient]:
    with TaskHubClient(azure_settings) as c:
        yield c
