"""``durable-azstorage azurite`` in the foreground (the real entry point) and ``hub ...``.

What the ``hub`` commands do is checked in this process (``invoke_cli``); a missing
configuration is checked through the entry point.
"""

from __future__ import annotations

import asyncio
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_support import invoke_cli

from durable_azstorage.azure.settings import AzureStorageSettings
from durable_azstorage.azure.storage.clients import StorageClients
from durable_azstorage.testing.azurite import Azurite

EXE = shutil.which("durable-azstorage", path=str(Path(sys.executable).parent))


def _lines(stream: object) -> queue.Queue[str]:
    out: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        for line in iter(stream.readline, ""):  # type: ignore[attr-defined]
            out.put(line)
        out.put("")

    threading.Thread(target=pump, daemon=True).start()
    return out


@pytest.fixture
def cli_azurite() -> Iterator[tuple[subprocess.Popen[str], queue.Queue[str], queue.Queue[str]]]:
    assert EXE, "the durable-azstorage console script is not installed"
    process = subprocess.Popen(
        [EXE, "azurite"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        yield process, _lines(process.stdout), _lines(process.stderr)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def _use(connection_string: str) -> list[str]:
    settings = AzureStorageSettings(connection_string=connection_string, task_hub="cli")
    async with StorageClients(settings) as clients:
        await clients.queue("cliq").create_queue()
        await clients.table("CliT").create_table()
        await clients.container("clic").create_container()
        return [q.name async for q in clients.queue_service.list_queues()]


@pytest.mark.azurite  # starts an Azurite of its own
@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_azurite_command_prints_a_working_connection_string_and_stops_cleanly(
    cli_azurite: tuple[subprocess.Popen[str], queue.Queue[str], queue.Queue[str]],
    stop_signal: signal.Signals,
) -> None:
    process, stdout, stderr = cli_azurite
    conn = stdout.get(timeout=120).strip()
    assert conn.startswith("DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"), conn
    assert asyncio.run(_use(conn)) == ["cliq"]
    banner = ""
    while "pid" not in banner:
        banner += stderr.get(timeout=30)
    match = re.search(r"pid (\d+)", banner)
    assert match, banner
    azurite_pid = int(match.group(1))
    assert _alive(azurite_pid)

    process.send_signal(stop_signal)
    assert process.wait(timeout=60) == 0
    assert not _alive(azurite_pid)
    assert stdout.get(timeout=5) == ""  # nothing but the connection string on stdout


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "durable_azstorage", *args],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_hub_commands_create_info_list_delete(azurite: Azurite, hub_name: str) -> None:
    env = {**os.environ, "DURABLE_AZSTORAGE_CONNECTION_STRING": azurite.connection_string}
    env.pop("AZURE_STORAGE_CONNECTION_STRING", None)

    created = invoke_cli("hub", "create", "-t", hub_name, "-p", "2", "--json", env=env)
    assert created.returncode == 0, created.stderr
    assert json.loads(created.stdout)["partition_count"] == 2

    info = invoke_cli("hub", "info", "-t", hub_name, env=env)
    assert info.returncode == 0, info.stderr
    assert "partition count: 2" in info.stdout
    assert f"{hub_name.lower()}-control-01" in info.stdout
    assert "MISSING" not in info.stdout

    mismatch = invoke_cli("hub", "create", "-t", hub_name, "-p", "4", env=env)
    assert mismatch.returncode == 1
    assert "partition_count=2" in mismatch.stderr and "Traceback" not in mismatch.stderr
    debugged = invoke_cli("hub", "create", "-t", hub_name, "-p", "4", "--debug", env=env)
    assert debugged.returncode == 1 and "Traceback" in debugged.stderr

    listed = invoke_cli("hub", "list", "--json", env=env)
    assert hub_name in [h["task_hub"] for h in json.loads(listed.stdout)]

    unconfirmed = invoke_cli("hub", "delete", "-t", hub_name, env=env)  # stdin is not a terminal
    assert (
        unconfirmed.returncode == 2
        and "hub delete needs confirmation: pass --yes" in unconfirmed.stderr
    )
    assert invoke_cli("hub", "info", "-t", hub_name, env=env).returncode == 0  # still there

    deleted = invoke_cli("hub", "delete", "-t", hub_name, "--yes", env=env)
    assert deleted.returncode == 0 and f"deleted task hub {hub_name}" in deleted.stdout

    missing = invoke_cli("hub", "info", "-t", hub_name, env=env)
    assert missing.returncode == 3  # not found, as for every other group
    assert f"task hub '{hub_name}' does not exist" in missing.stderr


def test_hub_commands_take_the_shared_connection_options(azurite: Azurite, hub_name: str) -> None:
    env = {k: v for k, v in os.environ.items() if "CONNECTION_STRING" not in k}
    conn = ["--connection-string", azurite.connection_string]
    created = invoke_cli("hub", "create", "-t", hub_name, "-p", "1", *conn, env=env)
    assert created.returncode == 0, created.stderr
    listed = invoke_cli("hub", "list", "--json", *conn, env=env)
    assert hub_name in [h["task_hub"] for h in json.loads(listed.stdout)]
    assert invoke_cli("hub", "partitions", "-t", hub_name, *conn, env=env).returncode == 0
    assert invoke_cli("hub", "delete", "-t", hub_name, "--yes", *conn, env=env).returncode == 0


def test_hub_commands_explain_missing_configuration_without_secrets() -> None:
    env = {k: v for k, v in os.environ.items() if "CONNECTION_STRING" not in k}
    result = _cli("hub", "info", env=env)
    assert result.returncode == 2
    assert "DURABLE_AZSTORAGE_CONNECTION_STRING" in result.stderr

    bad = _cli(
        "hub",
        "info",
        "-t",
        "no",
        env={
            **env,
            "DURABLE_AZSTORAGE_CONNECTION_STRING": "AccountName=a;AccountKey=SUPERSECRETKEY",
        },
    )
    assert bad.returncode == 2
    assert "task_hub" in bad.stderr and "SUPERSECRETKEY" not in bad.stderr
