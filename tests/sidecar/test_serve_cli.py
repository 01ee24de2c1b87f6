"""``durable-azstorage serve`` as a real subprocess on the session Azurite, driven by the SDK."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path

import grpc
import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableClient
from durabletask import task
from durabletask.client import OrchestrationStatus, TaskHubGrpcClient
from durabletask.internal import orchestrator_service_pb2 as pb
from durabletask.internal import orchestrator_service_pb2_grpc as pb_grpc
from durabletask.worker import TaskHubGrpcWorker
from typer.testing import CliRunner

from durable_azstorage.azure.settings import AzureStorageSettings
from durable_azstorage.cli.app import app
from durable_azstorage.testing.azurite import Azurite
from durable_azstorage.testing.eventually import eventually

pytestmark = pytest.mark.azurite
PREFIX = "DURABLE_AZSTORAGE_"
STARTUP = re.compile(
    r"durable-azstorage sidecar listening on 127\.0\.0\.1:(\d+) for task hub '(\w+)'; "
    r"partitions owned: ([\d, ]+) \(of 2\)"
)


def hello(ctx: task.OrchestrationContext, name: str) -> str:
    return f"Hello, {name}!"


def _env(azurite: Azurite, hub: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(PREFIX) and k != "AZURE_STORAGE_CONNECTION_STRING"
    }
    env.update(
        {
            PREFIX + "CONNECTION_STRING": azurite.connection_string,
            PREFIX + "TASK_HUB": hub,
            PREFIX + "PARTITION_COUNT": "2",
            PREFIX + "MAX_POLL_INTERVAL": "1",
        }
    )
    return env


@contextmanager
def _serving(env: dict[str, str], log: Path, *args: str) -> Iterator[subprocess.Popen[bytes]]:
    """``serve`` logging to ``log``; SIGTERM (then SIGKILL) by PID when the block exits."""
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "durable_azstorage", "serve", *args],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
        try:
            yield process
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=30)


def _wait_for(
    process: subprocess.Popen[bytes], log: Path, pattern: re.Pattern[str]
) -> re.Match[str]:

    def output() -> str:
        text = log.read_text(errors="replace")
        if not pattern.search(text):  # an exited process will never print it: fail now
            assert process.poll() is None, f"serve exited {process.returncode}:\n{text}"
        return text

    text = eventually(
        output,
        until=pattern.search,
        timeout=120,
        interval=0.1,
        what=f"the startup line in {log.name}",
    )
    match = pattern.search(text)
    assert match is not None
    return match


def _lease_owners(azurite: Azurite, hub: str) -> list[str]:
    names = AzureStorageSettings(connection_string=azurite.connection_string, task_hub=hub).names
    with TableClient.from_connection_string(
        azurite.connection_string, table_name=names.partitions_table
    ) as table:
        rows = list(table.query_entities("PartitionKey eq ''"))
    return [str(row.get("CurrentOwner") or "") for row in rows]


def test_serve_serves_the_sdk_and_releases_partitions_on_sigterm(
    azurite: Azurite, tmp_path: Path
) -> None:
    hub = f"serve{uuid.uuid4().hex[:10]}"
    log = tmp_path / "serve.log"
    with _serving(
        _env(azurite, hub), log, "--port", "0", "--create-hub", "--grace", "5"
    ) as process:
        match = _wait_for(process, log, STARTUP)
        port, named_hub, owned = int(match.group(1)), match.group(2), match.group(3)
        assert named_hub == hub and owned == "0, 1"
        owners = _lease_owners(azurite, hub)
        assert len(owners) == 2 and all(owner.endswith(f"-{process.pid}") for owner in owners)

        address = f"127.0.0.1:{port}"
        with grpc.insecure_channel(address) as channel, pytest.raises(grpc.RpcError) as refused:
            pb_grpc.TaskHubSidecarServiceStub(channel).DeleteTaskHub(pb.DeleteTaskHubRequest())
        assert refused.value.code() is grpc.StatusCode.PERMISSION_DENIED  # type: ignore[attr-defined]
        client = TaskHubGrpcClient(host_address=address)
        worker = TaskHubGrpcWorker(host_address=address)
        worker.add_orchestrator(hello)
        worker.start()
        try:
            later = datetime.now(timezone.utc) + timedelta(days=1)
            parked = client.schedule_new_orchestration(hello, input="later", start_at=later)
            iid = client.schedule_new_orchestration(hello, input="world")
            state = client.wait_for_orchestration_completion(iid, timeout=60)
            assert state is not None and state.runtime_status is OrchestrationStatus.COMPLETED
            assert state.get_output() == "Hello, world!"
            parked_state = client.get_orchestration_state(parked)
            assert parked_state is not None
            assert parked_state.runtime_status is OrchestrationStatus.PENDING
        finally:
            worker.stop()
            client.close()

        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0, log.read_text()
    output = log.read_text()
    assert "stopping: finishing in-flight work items" in output and "sidecar stopped" in output
    assert "Traceback" not in output
    assert _lease_owners(azurite, hub) == ["", ""]  # released for the next sidecar at once


def test_serve_allow_hub_management_serves_delete_task_hub(
    azurite: Azurite, tmp_path: Path
) -> None:
    hub = f"serve{uuid.uuid4().hex[:10]}"
    log = tmp_path / "serve.log"
    args = ("--port", "0", "--create-hub", "--grace", "1", "--allow-hub-management")
    with _serving(_env(azurite, hub), log, *args) as process:
        port = int(_wait_for(process, log, STARTUP).group(1))
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            pb_grpc.TaskHubSidecarServiceStub(channel).DeleteTaskHub(pb.DeleteTaskHubRequest())
        names = AzureStorageSettings(
            connection_string=azurite.connection_string, task_hub=hub
        ).names
        with TableClient.from_connection_string(
            azurite.connection_string, table_name=names.partitions_table
        ) as table:
            with pytest.raises(ResourceNotFoundError):
                list(table.query_entities("PartitionKey eq ''"))


def test_serve_on_a_missing_hub_says_how_to_create_it(azurite: Azurite, tmp_path: Path) -> None:
    hub = f"nohub{uuid.uuid4().hex[:10]}"
    log = tmp_path / "serve.log"
    with _serving(_env(azurite, hub), log, "--port", "0") as process:
        assert process.wait(timeout=60) == 3
    output = log.read_text()
    assert f"task hub {hub!r} does not exist" in output and "--create-hub" in output
    assert "Traceback" not in output


def test_serve_on_a_port_in_use_fails_before_taking_leases(
    azurite: Azurite, tmp_path: Path
) -> None:
    hub = f"busy{uuid.uuid4().hex[:10]}"
    log = tmp_path / "serve.log"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with _serving(_env(azurite, hub), log, "--port", str(port), "--create-hub") as process:
            assert process.wait(timeout=60) == 1
    output = log.read_text()
    assert f"error: cannot listen on 127.0.0.1:{port}: the port is in use" in output
    assert "Traceback" not in output
    assert not any(_lease_owners(azurite, hub))  # it never took a lease


def test_serve_without_the_sidecar_extra_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in [
        m for m in sys.modules if m.startswith(("durabletask", "durable_azstorage.sidecar"))
    ]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "durabletask", None)  # importing it now fails
    result = CliRunner().invoke(app, ["serve", "--port", "0"])
    assert result.exit_code == 1
    assert 'pip install "durable-azstorage[sidecar]"' in result.output
    assert "missing module 'durabletask'" in result.output
