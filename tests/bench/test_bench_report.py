"""``bench report``: result files from a short run drawn as PNG and HTML; bad files named.

The drawing itself is matplotlib's; these tests check that a report is produced from real
result documents, that the page holds the numbers, and that a malformed file or a missing
``bench`` extra ends in one clear line instead of a traceback.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from bench_support import bench_cli
from typer.testing import CliRunner

from durable_azstorage.bench.chart_panels import panels
from durable_azstorage.bench.charts import write
from durable_azstorage.bench.result_file import ResultFileError, load
from durable_azstorage.cli.app import app
from durable_azstorage.testing.azurite import Azurite

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

# One worker runs this module under pytest-xdist, so the short runs behind ``results`` run once.
pytestmark = pytest.mark.xdist_group("bench_report")


@pytest.fixture(scope="module")
def results(azurite: Azurite, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """A short sequence with its ceiling and a short cost run, as result files."""
    folder = tmp_path_factory.mktemp("results")
    runs = {
        "sequence.json": [
            "sequence",
            "--count",
            "2",
            "--sessions-only",
            "--with-ceiling",
            "--ceiling-count",
            "8",
        ],
        "cost.json": ["cost", "--count", "1", "--settle", "0", "--idle-window", "0"],
    }
    for name, args in runs.items():
        proc = bench_cli(azurite, *args, "--json-file", str(folder / name))
        assert proc.returncode == 0, proc.stderr
    return [folder / name for name in runs]


def test_report_draws_a_png(results: list[Path], tmp_path: Path) -> None:
    out = tmp_path / "report.png"
    proc = bench_cli(None, "report", *map(str, results), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert out.read_bytes()[:8] == PNG_MAGIC
    assert f"report written to {out}" in proc.stderr


def test_report_page_holds_the_plots_and_numbers(results: list[Path], tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    proc = bench_cli(None, "report", *map(str, results), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    page = out.read_text()
    assert page.startswith("<!doctype html>") and "<svg" in page
    for title in ("Throughput", "Latency", "by operation", "the ceiling and the runs"):
        assert title in page
    assert "table.Batch" in page and "of the ceiling for its mix" in page


def test_panels_select_the_numbers(results: list[Path]) -> None:
    drawn = {p.title: p for p in panels([load(f) for f in results])}
    latency = drawn["Latency (start to completion)"]
    assert list(latency.values) == ["p50", "p95", "p99", "max"]
    assert latency.categories == ["sequence · extended sessions on"]
    operations = next(p for t, p in drawn.items() if "by operation" in t)
    assert set(operations.values) == {"sequence · extended sessions on", "cost · worker"}
    ceiling = drawn["Storage requests/s: the ceiling and the runs"]
    assert "sequence · ceiling: queue put" in ceiling.categories
    assert any(c.endswith("of the ceiling for its mix)") for c in ceiling.categories)


def _broken(tmp_path: Path, edit: Any) -> Path:
    document = {
        "scenario": "sequence",
        "results": {
            "runs": {
                "run 1": {
                    "orchestrations": 2,
                    "orchestrations_per_s": 1.0,
                    "activities_per_s": 5.0,
                    "latency_s": {"p50": 1.0, "p95": 1.0, "p99": 1.0, "max": 1.0},
                }
            }
        },
    }
    edit(document)
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(document))
    return path


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda d: d["results"]["runs"]["run 1"]["latency_s"].update(p99="fast"),
            'results.runs["run 1"].latency_s.p99: expected a number, got "fast"',
        ),
        (lambda d: d["results"].pop("runs"), "results.runs: expected an object, missing"),
        (lambda d: d.update(scenario="warp"), "scenario: 'warp' is not a bench scenario"),
    ],
)
def test_malformed_file_is_named(tmp_path: Path, edit: Any, message: str) -> None:
    path = _broken(tmp_path, edit)
    with pytest.raises(ResultFileError, match="broken.json"):
        load(path)
    proc = bench_cli(None, "report", str(path), "--out", str(tmp_path / "r.png"))
    assert proc.returncode == 2
    assert f"error: {path}: {message}" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "r.png").exists()


def test_not_json_and_bad_suffix_are_usage_errors(results: list[Path], tmp_path: Path) -> None:
    text = tmp_path / "table.json"
    text.write_text("bench sequence\n| metric | value |\n")
    proc = bench_cli(None, "report", str(text), "--out", str(tmp_path / "r.png"))
    assert proc.returncode == 2 and "table.json: not JSON" in proc.stderr
    proc = bench_cli(None, "report", str(results[0]), "--out", str(tmp_path / "r.pdf"))
    assert proc.returncode == 2 and "r.pdf: use a .png, .svg, .html file name" in proc.stderr


def test_missing_extra_is_named(
    results: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib fails
    out = tmp_path / "r.png"
    result = CliRunner().invoke(app, ["bench", "report", str(results[0]), "--out", str(out)])
    assert result.exit_code == 1
    assert "pip install 'durable-azstorage[bench]'" in result.output
    assert not out.exists()


def test_every_scenario_shape_finds_its_panel(tmp_path: Path) -> None:
    """Hand-made documents in each scenario's shape (the runs above cover sequence and cost)."""
    latency = {"p50": 1.0, "p95": 1.5, "p99": 2.0, "max": 2.5}
    run = {
        "orchestrations": 4,
        "orchestrations_per_s": 2.0,
        "activities_per_s": 10.0,
        "latency_s": latency,
    }
    phase = {"requests": 10, "requests_per_s": 100.0}
    documents = {
        "scale": {"runs": {"1": run, "2": run}},
        "fanout": {"activities": 12, "activities_per_s": 6.0, "time_to_completion_s": 2.0},
        "latency": {
            "separate client": {"p50": 0.5, "p99": 0.7, "max": 0.8},
            "poll_interval_after_idle_s": 2.0,
        },
        "ceiling": {"requests_per_s": 90.0, "phases": {"queue_put": phase, "table_batch": phase}},
    }
    files = []
    for scenario, results in documents.items():
        path = tmp_path / f"{scenario}.json"
        path.write_text(json.dumps({"scenario": scenario, "results": results}))
        files.append(load(path))
    drawn = {p.title: p.categories for p in panels(files)}
    assert drawn["Throughput"] == [
        "scale · 1 worker process(es)",
        "scale · 2 worker process(es)",
        "fanout · fan-out of 12",
    ]
    assert "latency · separate client" in drawn["Latency (start to completion)"]
    assert "fanout · fan-out of 12 (time to completion)" in drawn["Latency (start to completion)"]
    assert drawn["Storage requests/s: the ceiling and the runs"] == [
        "ceiling · queue put",
        "ceiling · table batch",
        "ceiling · all phases",
    ]
    out = tmp_path / "all.svg"
    write(files, out)
    assert out.read_text().lstrip().startswith("<?xml")
