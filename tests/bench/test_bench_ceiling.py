"""``bench ceiling`` and the JSON outputs every scenario shares, with tiny counts.

``--json`` prints the result document on stdout (no table), ``--json-file`` writes the same
document, and the old ``--json FILE`` still writes the file, with a warning. Speed is never
asserted: only that each phase made the requests it should and timed them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench_support import bench_cli, check_document

from durable_azstorage.testing.azurite import Azurite


def test_json_flag_prints_what_json_file_writes(azurite: Azurite, tmp_path: Path) -> None:
    out = tmp_path / "ceiling.json"
    proc = bench_cli(
        azurite, "ceiling", "--count", "20", "--concurrency", "4", "--json", "--json-file", str(out)
    )
    assert proc.returncode == 0, proc.stderr
    printed: dict[str, Any] = json.loads(proc.stdout)  # the whole stdout is one document
    assert printed == json.loads(out.read_text())
    check_document(printed, "ceiling")
    assert "bench ceiling" not in proc.stdout  # no table with --json


def test_ceiling_measures_each_phase(azurite: Azurite, tmp_path: Path) -> None:
    proc = bench_cli(
        azurite, "ceiling", "--count", "20", "--concurrency", "4", "--batch-rows", "3", "--json"
    )
    assert proc.returncode == 0, proc.stderr
    results = json.loads(proc.stdout)["results"]
    phases = results["phases"]
    assert list(phases) == ["queue_put", "queue_get", "queue_delete", "table_batch"]
    assert phases["queue_put"]["requests"] == 20
    assert 1 <= phases["queue_get"]["requests"]
    assert phases["queue_delete"]["requests"] == 20  # every message was received once
    assert phases["table_batch"]["requests"] == 5  # count // 4 batches
    for phase in phases.values():
        assert phase["seconds"] > 0 and phase["requests_per_s"] > 0
        assert 0 < phase["latency_s"]["p50"] <= phase["latency_s"]["p99"]
    assert results["requests"] == sum(p["requests"] for p in phases.values())
    assert results["requests_per_s"] > 0
    assert (results["batch_rows"], results["concurrency"]) == (3, 4)


def test_ceiling_table_names_the_phases(azurite: Azurite, tmp_path: Path) -> None:
    proc = bench_cli(azurite, "ceiling", "--count", "8", "--concurrency", "2")
    assert proc.returncode == 0, proc.stderr
    for phase in ("queue put", "queue get", "queue delete", "table batch", "all phases"):
        assert f"ceiling {phase}" in proc.stdout or f"ceiling, {phase}" in proc.stdout


def test_old_json_path_still_writes_the_file(azurite: Azurite, tmp_path: Path) -> None:
    out = tmp_path / "old.json"
    proc = bench_cli(azurite, "ceiling", "--count", "4", "--concurrency", "2", "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "deprecated" in proc.stderr and "--json-file" in proc.stderr
    check_document(json.loads(out.read_text()), "ceiling")
    assert "bench ceiling" in proc.stdout  # the table, as before
