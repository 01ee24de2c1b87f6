"""The torture test in CI: a fixed set of seeds on the in-memory backend (no Azurite).

Each chunk runs ``SEEDS_PER_CHUNK`` consecutive seeds (so xdist can spread them) and fails
with every failing seed's violations and minimal trace; reproduce one with
``python -m durable_azstorage.testing.torture --seed S --verbose``. Every fault kind is on,
copies of ``ExecutionStarted`` messages included (the restart defect of
``tests/unit/replay/test_stale_start.py`` is fixed).
"""

from __future__ import annotations

import logging

import pytest

from durable_azstorage.testing.torture import Options, run_seed

CHUNKS = 6
SEEDS_PER_CHUNK = 50  # 300 seeds in all
OPTIONS = Options()


@pytest.mark.parametrize("chunk", range(CHUNKS))
async def test_torture_seeds_hold_every_invariant(
    chunk: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.CRITICAL, logger="durable_azstorage")
    first = 10_000 + chunk * SEEDS_PER_CHUNK
    failed = []
    for seed in range(first, first + SEEDS_PER_CHUNK):
        result = await run_seed(seed, OPTIONS)
        if not result.ok:
            failed.append(result.describe())
    assert not failed, "\n\n".join(failed)


async def test_the_fault_free_run_matches_the_expected_outputs() -> None:
    """The oracle (``programs.expected_output``) agrees with the engine when nothing fails."""
    for seed in range(20):
        result = await run_seed(seed, Options(faults=False))
        assert result.ok, result.describe()
        assert not result.faults


async def test_a_seed_replays_exactly() -> None:
    first = await run_seed(7)
    again = await run_seed(7)
    assert first.trace == again.trace
    assert first.faults == again.faults
