"""The torture test on Azurite: two seeds, real time, the session Azurite (``azure_settings``).

Slow (20–35 steps, under a minute a seed) and not exactly reproducible (storage timing is real), so it is
a smoke test that the harness and the Azure backend still agree; the in-memory seeds are the
regression net. Stale start copies stay out, as in the in-memory CI run.
"""

from __future__ import annotations

import dataclasses
import logging

import pytest

from durable_azstorage.azure.settings import AzureStorageSettings
from durable_azstorage.testing.torture import Options, run_seed
from durable_azstorage.testing.torture.azurite import azure_options

pytestmark = [pytest.mark.azurite, pytest.mark.slow]

AZURE_DEFECTS = (
    "the torture test finds Azure-backend defects not fixed yet (real time, so not on every run; "
    "--backend azurite --seed 100..102): recovery re-sends the last episode's activity requests "
    "instead of those of the episode that consumed the redelivered message (issue 12 defect 3; "
    "activities run again with no fault to explain it); recovery re-sends EventSent, and the "
    "target applies the event twice; a client event of an episode that crashed after step "
    "'history' was delivered again and applied twice"
)


@pytest.mark.xfail(strict=False, reason=AZURE_DEFECTS)
@pytest.mark.parametrize("seed", [1, 2])
async def test_torture_seed_on_azurite(
    seed: int, azure_settings: AzureStorageSettings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.CRITICAL, logger="durable_azstorage")
    short = dataclasses.replace(azure_options(Options(stale_starts=False), azure_settings), min_steps=20, max_steps=35)
    result = await run_seed(seed, short)
    assert result.ok, result.describe()
