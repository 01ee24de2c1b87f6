"""``durable-azstorage bench``: every scenario through the real entry point, tiny sizes.

Each test runs ``python -m durable_azstorage bench <scenario> --json-file FILE`` against the
session Azurite and checks that the JSON holds the promised fields with plausible values.
Speed is never asserted: the numbers depend on the machine.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from bench_support import bench_cli, check_document

from durable_azstorage.bench.scale import WORKER_READY
from durable_azstorage.cli.worker import STOPS_GRACEFULLY
from durable_azstorage.testing.azurite import Azurite


def run_bench(azurite: Azurite, tmp_path: Path, *args: str) -> tuple[dict[str, Any], str]:
    """Run one scenario; return its JSON (``--json-file``) and its stdout (the table)."""
    out = tmp_path / "result.json"
    proc = bench_cli(azurite, *args, "--json-file", str(out))
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    data: dict[str, Any] = json.loads(out.read_text())
    check_document(data, args[0])
    assert f"bench {args[0]}" in proc.stdout
    return data, proc.stdout


def assert_latencies(lat: dict[str, float]) -> None:
    assert 0 < lat["p50"] <= lat["p95"] <= lat["p99"] <= lat["max"]


def test_sequence_compares_extended_sessions_and_the_ceiling(
    azurite: Azurite, tmp_path: Path
) -> None:
    data, table = run_bench(
        azurite, tmp_path, "sequence", "--count", "3", "--with-ceiling", "--ceiling-count", "20"
    )
    runs = data["results"]["runs"]
    assert set(runs) == {"extended sessions on", "extended sessions off"}
    for run in runs.values():
        assert run["orchestrations"] == 3 and run["activities"] == 15
        assert run["orchestrations_per_s"] > 0 and run["activities_per_s"] > 0
        assert_latencies(run["latency_s"])
        requests = run["storage_requests"]
        assert requests["total"] == requests["worker"] + requests["client"] > 0
        assert requests["total"] == sum(requests["by_operation"].values())
        assert requests["worker"] == sum(requests["worker_by_operation"].values())
        assert requests["by_operation"]["queue.PutMessage"] >= 3  # the starts
        assert requests["by_operation"]["table.Batch"] >= 18  # 6 episodes each
        assert requests["per_s"] > 0 and requests["ratio_to_ceiling"] > 0
    assert data["results"]["sessions_on_vs_off_throughput_ratio"] > 0
    assert data["results"]["ceiling"]["phases"]["queue_put"]["requests"] == 20
    assert data["settings"]["count"] == 3
    assert "throughput ratio sessions on/off" in table
    assert "of the ceiling" in table


def test_fanout_reports_time_to_completion(azurite: Azurite, tmp_path: Path) -> None:
    data, _ = run_bench(azurite, tmp_path, "fanout", "--size", "12")
    results = data["results"]
    assert results["activities"] == 12
    assert results["time_to_completion_s"] > 0
    # ExecutionStarted, 12 TaskScheduled, 12 TaskCompleted, ExecutionCompleted, episode marks
    assert results["history_events"] >= 26


def test_latency_measures_both_client_modes(azurite: Azurite, tmp_path: Path) -> None:
    data, _ = run_bench(azurite, tmp_path, "latency", "--idle", "0.5", "--repeat", "2")
    results = data["results"]
    for mode in ("separate client", "client in the worker's process"):
        assert len(results[mode]["samples_s"]) == 2
        assert 0 < results[mode]["p50"] <= results[mode]["p99"]
        seen = results[mode]["seen_by_client"]  # the client's own status polls included
        assert len(seen["samples_s"]) == 2 and 0 < seen["p50"] <= seen["p99"]
    assert results["poll_interval_after_idle_s"] > 0
    assert 0 < results["wakeup_watch_interval_after_idle_s"] <= 2.0
    by_operation = results["idle_requests_per_s_by_operation"]
    assert results["idle_requests_per_s"] == pytest.approx(
        sum(row["per_s"] for row in by_operation), abs=0.01
    )
    assert data["settings"]["idle_s"] == 0.5
    assert "poll" in " ".join(data["notes"])


def test_cost_counts_worker_and_client_apart(azurite: Azurite, tmp_path: Path) -> None:
    data, table = run_bench(
        azurite, tmp_path, "cost", "--count", "2", "--settle", "1", "--idle-window", "2"
    )
    r = data["results"]
    assert r["worker"]["total"] > 0 and r["client_start"]["total"] > 0
    assert r["worker"]["by_operation"]["queue.GetMessages"] > 0
    assert r["worker"]["by_operation"]["table.Batch"] >= 12  # 6 episodes each
    assert r["client_start"]["by_operation"]["queue.PutMessage"] == 2  # one start message each
    assert r["requests_per_orchestration"] > r["requests_per_activity"] > 0
    assert r["idle"]["requests_per_minute_per_partition"] >= 0
    settle = r["settle"]  # what the pollers' fast start after work costs
    assert settle["window_s"] == 1 and settle["requests"] == sum(settle["by_operation"].values())
    assert "requests by operation" in table


def test_scale_runs_worker_processes(azurite: Azurite, tmp_path: Path) -> None:
    data, table = run_bench(
        azurite,
        tmp_path,
        "scale",
        "--count",
        "3",
        "--processes",
        "1,2",
        "--settle",
        "0",
        "--balance-timeout",
        "0",
    )
    runs = data["results"]["runs"]
    assert set(runs) == {"1", "2"}
    for run in runs.values():
        assert run["orchestrations"] == 3
        assert_latencies(run["latency_s"])
        assert all(code == 0 for code in run["worker_exit_codes"])  # stopped gracefully
        assert set(run["partition_owners_after"]) == {"0", "1", "2", "3"}
        assert set(run["cpu"]["busy"]) == {"azurite", "workers", "client"}
        assert run["cpu"]["busy"]["workers"] > 0  # the workers replayed and committed
    assert data["results"]["throughput_ratio_to_first"]["1"] == 1.0
    assert "1 process(es): CPU (cores busy)" in table
    assert "throughput ratio 2/1 processes" in table


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["scale", "--processes", "1,x"], "--processes"),
        (["sequence", "--json-file", "/nonexistent-folder/x.json"], "does not exist"),
        (["ceiling", "--json", "a.json", "b.json"], "unexpected argument(s): a.json b.json"),
    ],
)
def test_bad_arguments_are_usage_errors(args: list[str], message: str) -> None:
    proc = bench_cli(None, *args, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr


def test_settings_from_the_environment_reach_an_auto_started_run() -> None:
    """An A/B of one setting: ``DURABLE_AZSTORAGE_*`` applies also when the bench starts
    its own Azurite (no account configured)."""
    proc = bench_cli(
        None,
        "sequence",
        "-n",
        "1",
        "--sessions-only",
        "--json",
        settings_env={"DURABLE_AZSTORAGE_LOCAL_ACTIVITIES": "7"},
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["environment"]["storage"]["kind"] == "azurite (started by the benchmark)"
    assert data["settings"]["local_activities"] == 7


def test_a_bad_setting_in_the_environment_is_named() -> None:
    proc = bench_cli(
        None, "sequence", "-n", "1", settings_env={"DURABLE_AZSTORAGE_LOCAL_ACTIVITIES": "lots"}
    )
    assert proc.returncode != 0
    assert "DURABLE_AZSTORAGE_LOCAL_ACTIVITIES" in proc.stderr + proc.stdout


def test_the_bench_waits_for_the_line_the_worker_prints_when_ready() -> None:
    assert WORKER_READY == STOPS_GRACEFULLY
