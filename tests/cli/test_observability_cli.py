"""``worker --log-format json --metrics-port``: JSON log lines with the ids as fields, and the
metrics in Prometheus format, from the real CLI process on Azurite."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

from cli_support import run_cli, running_worker, wait_for_output

from durable_azstorage import OrchestrationStatus, TaskHubClient
from durable_azstorage.testing.eventually import eventually


def test_json_logs_carry_the_ids_and_metrics_are_scraped(
    cli_env: dict[str, str], client: TaskHubClient, tmp_path: Path
) -> None:
    log = tmp_path / "worker.log"
    with running_worker(
        cli_env,
        log,
        "--create-hub",
        "--log-format",
        "json",
        "--log-level",
        "DEBUG",
        "--metrics-port",
        "0",  # the process picks a free port and names it: no race for a port chosen here
    ) as process:
        port = int(wait_for_output(process, log, r"metrics on port (\d+)").group(1))
        wait_for_output(process, log, "worker started")
        started = run_cli(
            "instances", "start", "-n", "hello", "-i", '"Oslo"', "--instance-id", "obs", env=cli_env
        )
        assert started.returncode == 0, started.stderr
        state = client.wait_for_orchestration_completion("obs", timeout=120)
        assert state.runtime_status is OrchestrationStatus.COMPLETED

        def scrape() -> str:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
                return str(response.read().decode())

        text = eventually(
            scrape,
            until=lambda t: "durable_azstorage_control_queue_backlog" in t,
            timeout=60,
            what="the hub gauges sampled",
        )
    assert "durable_azstorage_activity_executions_total{" in text
    [activity_line] = [
        line
        for line in text.splitlines()
        if line.startswith("durable_azstorage_activity_executions_total{")
        and 'name="greet"' in line
    ]
    assert 'outcome="completed"' in activity_line and activity_line.endswith(" 1.0")
    assert "durable_azstorage_storage_requests_total{" in text and 'operation="Batch"' in text
    assert "durable_azstorage_partitions_owned{" in text

    records = []
    for line in log.read_text().splitlines():
        if line.startswith("{"):
            records.append(json.loads(line))  # every JSON line parses
    assert records, log.read_text()[:2000]
    hub = cli_env["DURABLE_AZSTORAGE_TASK_HUB"]
    assert all(
        r["task_hub"] == hub for r in records if r["logger"].startswith("durable_azstorage.worker")
    )
    committed = [
        r for r in records if "episode committed" in r["message"] and r.get("instance_id") == "obs"
    ]
    assert committed and all(r["execution_id"] for r in committed)
    activity = [r for r in records if r["message"].startswith("activity 'greet'")]
    assert activity and activity[0]["instance_id"] == "obs"
    assert any(r.get("partition", "").startswith(f"{hub.lower()}-control-") for r in records)
    assert all({"time", "level", "logger", "message"} <= set(r) for r in records)


def test_bad_log_format_is_a_usage_error(cli_env: dict[str, str], tmp_path: Path) -> None:
    with running_worker(cli_env, tmp_path / "worker.log", "--log-format", "xml") as process:
        assert process.wait(timeout=120) == 2
    assert (
        "--log-format: expected one of text, json, got 'xml'"
        in (tmp_path / "worker.log").read_text()
    )
