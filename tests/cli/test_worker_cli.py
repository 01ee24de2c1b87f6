"""``durable-azstorage worker --app module:attr`` running the real example module ``worker_app``."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from cli_support import clean_env, invoke_cli, run_cli, running_worker, wait_for_output

from durable_azstorage import AzureStorageSettings, OrchestrationStatus, TaskHubClient


@pytest.mark.parametrize(
    ("ref", "stop_signal"),
    [("worker_app:create_worker", signal.SIGTERM), ("worker_app:worker", signal.SIGINT)],
)
def test_worker_runs_the_app_and_stops_gracefully(
    ref: str,
    stop_signal: signal.Signals,
    cli_env: dict[str, str],
    client: TaskHubClient,
    tmp_path: Path,
) -> None:
    log = tmp_path / "worker.log"
    with running_worker(cli_env, log, "--create-hub", ref=ref) as process:
        wait_for_output(process, log, "worker started: 5 orchestrator")  # worker_app registers 5
        started = run_cli(
            "instances",
            "start",
            "-n",
            "family",
            "-i",
            '["Oslo", "Lima"]',
            "--instance-id",
            "fam",
            env=cli_env,
        )
        assert started.returncode == 0, started.stderr
        state = client.wait_for_orchestration_completion("fam", timeout=120)
        assert state.runtime_status is OrchestrationStatus.COMPLETED, state.failure_details
        assert state.get_output() == ["Hello, Oslo!", "Hello, Lima!"]

        process.send_signal(stop_signal)
        assert process.wait(timeout=90) == 0, log.read_text()
    output = log.read_text()
    assert f"worker {ref} starting" in output
    assert "stopping: finishing in-flight work" in output and "worker stopped" in output
    assert "Traceback" not in output
    assert "http_logging_policy" not in output  # the SDK's per-request INFO logs are muted


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        ("worker_app", "--app: expected MODULE:ATTRIBUTE"),
        ("no_such_module_xyz:worker", "--app: cannot import module 'no_such_module_xyz'"),
        ("worker_app:missing", "--app: module 'worker_app' has no attribute 'missing'"),
        ("worker_app:NOT_A_WORKER", "is a int, not a TaskHubWorker"),
        (
            "worker_app:greet",
            "--app: worker_app:greet needs arguments (ctx",
        ),  # a function that needs arguments: a usage error
    ],
)
def test_bad_app_references_are_usage_errors(
    ref: str, message: str, cli_env: dict[str, str], tmp_path: Path
) -> None:
    with running_worker(cli_env, tmp_path / "worker.log", ref=ref) as process:
        code = process.wait(timeout=120)
    output = (tmp_path / "worker.log").read_text()
    assert code == 2, output
    assert message in output, output
    assert "Traceback" not in output


def test_worker_refuses_a_missing_hub(
    cli_env: dict[str, str], hub_name: str, tmp_path: Path
) -> None:
    with running_worker(cli_env, tmp_path / "worker.log") as process:
        code = process.wait(timeout=120)
    output = (tmp_path / "worker.log").read_text()
    assert code == 3, output
    assert f"task hub '{hub_name}' does not exist" in output and "--create-hub" in output
    assert "Traceback" not in output


@pytest.mark.azurite  # starts an Azurite of its own
def test_worker_without_connection_runs_on_a_temporary_azurite(tmp_path: Path) -> None:
    log = tmp_path / "worker.log"
    with running_worker({**clean_env(), "DURABLE_AZSTORAGE_TASK_HUB": "demo"}, log) as process:
        match = wait_for_output(process, log, r"local Azurite running \(pid (\d+)\): (\S+)")
        azurite_pid, conn = int(match.group(1)), match.group(2)
        wait_for_output(process, log, "worker started")  # it created the hub in the empty Azurite
        settings = AzureStorageSettings(connection_string=conn, task_hub="demo")
        with TaskHubClient(settings) as client:
            client.schedule_new_orchestration("hello", input="Quito", instance_id="q")
            state = client.wait_for_orchestration_completion("q", timeout=120)
            assert state.get_output() == "Hello, Quito!"
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=90) == 0, log.read_text()
    assert "starting a temporary local Azurite" in log.read_text()
    with pytest.raises(ProcessLookupError):
        os.kill(azurite_pid, 0)


def test_help_documents_exit_codes() -> None:
    for command in (("worker",), ("instances",), ()):
        result = invoke_cli(*command, "--help", env={**clean_env(), "COLUMNS": "200"})
        assert result.returncode == 0, result.stderr
        assert "0 ok, 1 failure, 2 usage error, 3 not found" in result.stdout, command
    worker_help = invoke_cli("worker", "--help", env={**clean_env(), "COLUMNS": "200"}).stdout
    assert "AzureStorageSettings.from_env()" in worker_help


def test_worker_reports_a_partition_count_mismatch(cli_env: dict[str, str], tmp_path: Path) -> None:
    created = invoke_cli("hub", "create", "--partition-count", "2", env=cli_env)
    assert created.returncode == 0, created.stderr
    log = tmp_path / "worker.log"
    with running_worker(cli_env, log, "--partition-count", "4", "--create-hub") as process:
        code = process.wait(timeout=120)
    output = log.read_text()
    assert code == 1, output
    assert "partition_count=2" in output and "Traceback" not in output
    assert "Unclosed" not in output  # the backend's clients were released
