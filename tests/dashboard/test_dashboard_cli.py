"""``durable-azstorage dashboard`` as a user runs it: prints the URL, serves, stops on
SIGTERM; refuses a non-loopback bind without a token; names the extra when it is missing.

Every process a test starts is stopped by its PID, also when the test fails.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from durable_azstorage.azure.settings import AzureStorageSettings
from durable_azstorage.testing.azurite import Azurite

PREFIX = "DURABLE_AZSTORAGE_"
CLI = [sys.executable, "-m", "durable_azstorage"]


def environment(azurite: Azurite | None = None, hub: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(PREFIX)}
    env.pop("AZURE_STORAGE_CONNECTION_STRING", None)
    if azurite is not None:
        env[PREFIX + "CONNECTION_STRING"] = azurite.connection_string
    if hub is not None:
        env[PREFIX + "TASK_HUB"] = hub
    return env


@contextmanager
def running(args: list[str], env: dict[str, str]) -> Iterator[tuple[subprocess.Popen[str], str]]:
    process = subprocess.Popen(
        CLI + args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        yield process, url
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)


@pytest.mark.azurite
def test_serves_the_hub_and_stops_on_sigterm(
    azurite: Azurite, azure_settings: AzureStorageSettings
) -> None:
    env = environment(azurite, azure_settings.task_hub)
    with running(["dashboard", "--port", "0", "--create-hub", "--read-only"], env) as (
        process,
        url,
    ):
        assert url.startswith("http://127.0.0.1:"), process.stderr.read() if process.stderr else ""
        with urllib.request.urlopen(url + "api/overview", timeout=30) as response:
            overview = json.load(response)
        assert overview["counts"]["Running"] == 0
        assert len(overview["partitions"]) == azure_settings.partition_count
        with urllib.request.urlopen(url, timeout=30) as response:
            assert azure_settings.task_hub in response.read().decode()
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
        assert process.stderr is not None
        assert "dashboard stopped" in process.stderr.read()


@pytest.mark.azurite
def test_a_missing_hub_is_reported_at_start(azurite: Azurite, hub_name: str) -> None:
    result = subprocess.run(
        CLI + ["dashboard", "--port", "0"],
        env=environment(azurite, hub_name),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 3
    assert f"task hub {hub_name!r} does not exist" in result.stderr
    assert "--create-hub" in result.stderr and result.stdout == ""


def test_a_non_loopback_bind_without_a_token_is_refused() -> None:
    result = subprocess.run(
        CLI + ["dashboard", "--host", "0.0.0.0", "--port", "0"],
        env=environment(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "without a token" in result.stderr and "--token" in result.stderr
    assert "Azurite" not in result.stderr  # refused before anything started
    assert result.stdout == ""


def test_the_missing_extra_is_named() -> None:
    code = (
        "import sys; sys.modules['jinja2'] = None; "
        "from durable_azstorage.cli.app import main; "
        "sys.argv = ['durable-azstorage', 'dashboard']; main()"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        env=environment(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert 'pip install "durable-azstorage[dashboard]"' in result.stderr
    assert "Azurite" not in result.stderr


def test_importing_the_package_needs_no_extra() -> None:
    code = (
        "import sys; sys.modules['jinja2'] = None; import durable_azstorage, "
        "durable_azstorage.dashboard as d; print(d.__all__)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "create_app" in result.stdout
