"""The Azurite launcher: free ports, several at once, all services answer, clean stop by PID."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from durable_azstorage.azure.settings import AzureStorageSettings
from durable_azstorage.azure.storage.clients import StorageClients
from durable_azstorage.testing.azurite import (
    AZURITE_VERSION,
    Azurite,
    AzuriteError,
    _kill_group,
    docker_available,
    find_azurite_dir,
)
from durable_azstorage.testing.eventually import eventually


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie still "exists"; ours are reaped by wait(), so existing means running
    return True


async def _roundtrip(connection_string: str) -> None:
    settings = AzureStorageSettings(connection_string=connection_string, task_hub="launch")
    async with StorageClients(settings) as clients:
        await clients.queue("launchq").create_queue()
        await clients.queue("launchq").send_message("x")
        await clients.table("LaunchT").create_table()
        await clients.container("launchc").create_container()


async def _queues(connection_string: str) -> list[str]:
    settings = AzureStorageSettings(connection_string=connection_string, task_hub="launch")
    async with StorageClients(settings) as clients:
        return [q.name async for q in clients.queue_service.list_queues()]


@pytest.mark.azurite  # starts an Azurite of its own
def test_two_instances_run_side_by_side_and_stop_cleanly() -> None:
    first, second = Azurite(), Azurite()
    try:
        first.start()
        second.start()
        assert set(first.ports.values()).isdisjoint(second.ports.values())
        for emulator in (first, second):
            asyncio.run(_roundtrip(emulator.connection_string))
        pid = first.pid
        temp = first._tempdir
        assert pid is not None and temp is not None and temp.exists()
        first.stop()
        assert not _alive(pid)
        assert not temp.exists()
        with pytest.raises(AzuriteError, match="not running"):
            _ = first.connection_string
        assert asyncio.run(_queues(second.connection_string)) == ["launchq"]  # still serving
    finally:
        first.stop()
        second.stop()


@pytest.mark.azurite  # starts an Azurite of its own
def test_data_lives_on_disk_in_a_temporary_location_by_default() -> None:
    with Azurite() as emulator:
        assert emulator._tempdir is not None
        asyncio.run(_roundtrip(emulator.connection_string))
        data = emulator._tempdir / "data"
        assert any(data.iterdir())  # Azurite's metadata and extent files


@pytest.mark.azurite  # starts an Azurite of its own
def test_in_memory_mode_on_request() -> None:
    with Azurite(in_memory=True) as emulator:
        asyncio.run(_roundtrip(emulator.connection_string))
        assert emulator._tempdir is not None
        assert not (emulator._tempdir / "data").exists()


@pytest.mark.azurite  # starts an Azurite of its own
def test_azurite_started_by_the_launcher_exits_on_sigterm() -> None:
    """Pinned: run directly as `node azurite.js` in its own session, 3.37.0 honours SIGTERM
    (exit 0). The SIGKILL escalation is for the cases where it does not (e.g. run via npx)."""
    emulator = Azurite()
    try:
        emulator.start()
        process = emulator._process
        assert process is not None
        os.killpg(process.pid, signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        emulator.stop()


def test_stop_escalates_to_sigkill_for_a_process_ignoring_sigterm() -> None:
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); time.sleep(120)",
        ],
        start_new_session=True,
        stdout=subprocess.PIPE,
    )
    assert process.stdout is not None and process.stdout.readline().strip() == b"ready"
    _kill_group(process, grace=0.5)  # type: ignore[arg-type]
    assert process.returncode == -signal.SIGKILL


def test_docker_probe_is_quiet_and_false_without_an_engine(
    capfd: pytest.CaptureFixture[str],
) -> None:
    has_socket = Path("/var/run/docker.sock").exists() or "DOCKER_HOST" in os.environ
    result = docker_available()
    if not has_socket:
        assert result is False
    out, err = capfd.readouterr()
    assert out == "" and err == ""


def test_invalid_mode_is_rejected() -> None:
    with pytest.raises(ValueError, match="mode: must be auto, npm or docker"):
        Azurite(mode="podman")


def test_install_folder_is_the_checkout_or_a_pinned_user_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DURABLE_AZSTORAGE_AZURITE_DIR", raising=False)
    repo_folder = find_azurite_dir()
    assert (repo_folder / "package-lock.json").is_file()
    assert (
        json.loads((repo_folder / "package.json").read_text())["dependencies"]["azurite"]
        == AZURITE_VERSION
    )

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    cached = find_azurite_dir(checkout=tmp_path / "not-a-checkout")
    assert cached == tmp_path / "durable-azstorage" / f"azurite-{AZURITE_VERSION}"
    assert json.loads((cached / "package.json").read_text())["dependencies"] == {
        "azurite": AZURITE_VERSION
    }


@pytest.mark.azurite  # starts an Azurite of its own
def test_die_with_parent_leaves_no_orphan_when_the_owner_is_killed() -> None:
    owner = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import time; from durable_azstorage.testing.azurite import Azurite\n"
            "a = Azurite(die_with_parent=True); a.start(); print(a.pid, a._tempdir, flush=True); time.sleep(300)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    azurite_pid = 0
    tempdir = ""
    try:
        assert owner.stdout is not None
        pid_text, tempdir = owner.stdout.readline().split()
        azurite_pid = int(pid_text)
        assert _alive(azurite_pid)
        owner.kill()  # SIGKILL: no finally, no atexit in the owner
        owner.wait(timeout=30)
        eventually(
            lambda: not _alive(azurite_pid) or _zombie(azurite_pid),
            timeout=10,
            interval=0.1,
            what=f"the orphaned Azurite {azurite_pid} to die",
        )
    finally:
        if owner.poll() is None:
            owner.kill()
        if azurite_pid and _alive(azurite_pid) and not _zombie(azurite_pid):
            os.killpg(azurite_pid, signal.SIGKILL)
        if tempdir:  # the SIGKILLed owner could not remove its temporary data folder
            shutil.rmtree(tempdir, ignore_errors=True)


def _zombie(pid: int) -> bool:
    """An orphan killed by the kernel is reaped by init; until then it is a zombie."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z"
    except OSError:
        return False
