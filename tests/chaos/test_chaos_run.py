"""The real-process chaos run, short: two workers, one SIGKILLed under load (fast leases).

The long run (``python -m durable_azstorage.testing.chaos --minutes 3``, default settings) is
reported in the README; this keeps the harness itself working and checks the same invariants.
"""

from __future__ import annotations

import asyncio

import pytest

from durable_azstorage.testing.chaos import run

pytestmark = [pytest.mark.slow, pytest.mark.azurite]


def test_a_short_chaos_run_loses_nothing() -> None:
    report = asyncio.run(
        run(
            minutes=0.5,
            workers=2,
            rate=1.0,
            seed=7,
            fast_leases=True,
            drain_timeout=150.0,
        )
    )
    assert report.violations == []
    assert report.kills >= 1, "the run must kill a worker at least once"
    assert report.instances >= 10 and report.completed == report.instances
    assert report.tasks == report.instances * 8  # every activity of every instance ran
    assert report.executions >= report.tasks
