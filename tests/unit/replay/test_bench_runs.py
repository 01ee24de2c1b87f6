"""The replay benchmark stays runnable (its numbers are reported, never asserted)."""

from __future__ import annotations

import pytest

from durable_azstorage.bench.replay import build_history, main
from durable_azstorage.model.history import ExecutionCompleted


def test_the_benchmark_builds_real_histories_of_the_requested_size() -> None:
    history = build_history("sequence", 249)
    assert len(history) == 1000
    assert isinstance(history[-2], ExecutionCompleted)


def test_the_benchmark_entry_point_prints_a_cost_per_event(
    capsys: pytest.CaptureFixture[str],
) -> None:
    main(["--events", "40", "--repeats", "1"])
    out = capsys.readouterr().out
    assert "us/event" in out and "sequence" in out and "fan_out" in out
