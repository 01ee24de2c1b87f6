"""``CpuMeter`` attributes real processes' CPU to the group that names them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from durable_azstorage.bench.cpu_usage import MISSING, CpuMeter, describe

_BUSY = "while True: pass"
_PARENT_OF_BUSY = (
    "import subprocess, sys\n"
    f"child = subprocess.Popen([sys.executable, '-c', {_BUSY!r}])\n"
    "print(child.pid, flush=True)\n"
    "child.wait()\n"
)


@pytest.fixture
def started() -> Iterator[list[subprocess.Popen[bytes]]]:
    processes: list[subprocess.Popen[bytes]] = []
    yield processes
    for process in processes:
        if process.poll() is None:
            process.kill()
        process.wait()


def _measure(meter: CpuMeter, seconds: float = 1.0) -> dict[str, float]:
    meter.start()
    time.sleep(seconds)
    result = meter.stop()
    assert result["cores"] == os.cpu_count()
    return dict(result["busy"])


def test_a_busy_process_shows_busy_and_an_idle_one_does_not(
    started: list[subprocess.Popen[bytes]],
) -> None:
    busy = subprocess.Popen([sys.executable, "-c", _BUSY])
    idle = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    started += [busy, idle]
    figures = _measure(CpuMeter({"busy": [busy.pid], "idle": [idle.pid], "none": [None]}))
    # the machine may be loaded (a parallel test run): compare, do not expect a whole core
    assert figures["busy"] > 0.02
    assert figures["idle"] <= figures["busy"] / 5
    assert figures["none"] == 0.0


def test_a_child_counts_for_its_parent_unless_another_group_names_it(
    started: list[subprocess.Popen[bytes]],
) -> None:
    parent = subprocess.Popen([sys.executable, "-c", _PARENT_OF_BUSY], stdout=subprocess.PIPE)
    started.append(parent)
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    try:
        alone = _measure(CpuMeter({"parent": [parent.pid]}))
        apart = _measure(CpuMeter({"parent": [parent.pid], "child": [child]}))
    finally:
        os.kill(child, signal.SIGKILL)
    assert alone["parent"] > 0.02  # the busy child counted for its parent
    assert apart["child"] > 0.02 and apart["parent"] <= apart["child"] / 5


def test_without_psutil_the_figures_are_named_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psutil", None)  # import psutil fails
    meter = CpuMeter({"self": [os.getpid()]})
    meter.start()
    result = meter.stop()
    assert result == {"missing": MISSING}
    assert "pip install" not in MISSING and "bench extra (psutil)" in describe(result)


def test_describe_names_each_group_and_the_cores() -> None:
    cpu = {"cores": 2, "busy": {"azurite": 0.9, "workers": 0.75}}
    assert describe(cpu) == "azurite 0.90, workers 0.75 of 2 cores"
