"""``examples/scale_out.py`` runs as a user would run it, on the session's Azurite.

The example starts 3 worker processes, prints the partition table once balanced, SIGTERMs
one worker and prints the table again. The assertions read those printed tables and the
summary (what a newcomer sees), so the output must tell the truth: every orchestration
completed, ownership was spread over at least two workers, and after the hand-over no
partition is owned by the stopped worker.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from durable_azstorage.testing.azurite import Azurite

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "scale_out.py"
WORKERS, ORCHESTRATIONS, PARTITIONS = 3, 4, 4
ROW = re.compile(r"^\s+(\d+)\s+\S+-control-\d+\s+(worker \d+ \(pid \d+\)|-)\s")

pytestmark = pytest.mark.slow


def _table(lines: list[str], heading: str) -> dict[int, str]:
    """partition -> owner, from the table printed after the line containing ``heading``."""
    start = next(i for i, line in enumerate(lines) if heading in line)
    rows = {}
    for line in lines[start + 2 :]:  # the heading line, then the column titles
        match = ROW.match(line)
        if match is None:
            break
        rows[int(match.group(1))] = match.group(2)
    return rows


@pytest.fixture(scope="module")
def output(azurite: Azurite, across_workers: Any) -> str:
    """The example's stdout: one run serves every test, also across xdist workers."""
    saved = across_workers.path / "scale_out_example.out"
    with across_workers.lock("scale_out_example"):
        if saved.exists():
            return saved.read_text()
        text = _run_example(azurite)
        saved.write_text(text)
        return text


def _run_example(azurite: Azurite) -> str:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("DURABLE_AZSTORAGE_") and k != "AZURE_STORAGE_CONNECTION_STRING"
    }
    env["DURABLE_AZSTORAGE_CONNECTION_STRING"] = azurite.connection_string
    result = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--workers",
            str(WORKERS),
            "--orchestrations",
            str(ORCHESTRATIONS),
            "--partitions",
            str(PARTITIONS),
            "--timeout",
            "60",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, f"scale_out.py failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def test_every_orchestration_completes(output: str) -> None:
    total = 2 * ORCHESTRATIONS
    assert f"orchestrations completed: {total} of {total}" in output
    assert output.rstrip().endswith(
        "OK: every orchestration completed and the stopped worker's partitions moved"
    )


def test_partitions_were_spread_over_the_workers(output: str) -> None:
    before = _table(output.splitlines(), "partitions balanced")
    assert sorted(before) == list(range(PARTITIONS)), output
    counts = Counter(before.values())
    assert "-" not in counts, output
    assert len(counts) == min(WORKERS, PARTITIONS), output  # every worker got its share
    assert max(counts.values()) - min(counts.values()) <= 1, output


def test_the_stopped_workers_partitions_move_to_the_survivors(output: str) -> None:
    lines = output.splitlines()
    stopped = re.search(r"stopping (worker \d+ \(pid \d+\)) with SIGTERM", output)
    assert stopped is not None, output
    victim = stopped.group(1)
    before = _table(lines, "partitions balanced")
    after = _table(lines, "partitions now:")
    assert victim in before.values(), output  # it had partitions to hand over
    assert sorted(after) == list(range(PARTITIONS)), output
    assert victim not in after.values() and "-" not in after.values(), output
    assert len(set(after.values())) == WORKERS - 1, output
    assert f"partitions owned by the stopped {victim} after the hand-over: 0" in output
    assert f"{victim} exited with code 0" in output


def test_activity_counts_add_up(output: str) -> None:
    """The per-process table counts every activity of both batches (pids reported by them)."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if "activities run per worker" in line)
    per_worker = [
        re.match(r"^\s+worker \d+ \(pid \d+\)\s+(\d+)\s+(\d+)$", line)
        for line in lines[start + 2 : start + 2 + WORKERS]
    ]
    assert all(per_worker), output
    batch1 = sum(int(m.group(1)) for m in per_worker if m)
    batch2 = sum(int(m.group(2)) for m in per_worker if m)
    assert batch1 == batch2 == 3 * ORCHESTRATIONS, output
