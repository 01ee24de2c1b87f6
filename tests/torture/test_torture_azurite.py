"""The torture test on Azurite: two seeds, real time, the session Azurite (``azure_settings``).

Slow (20–35 steps, under a minute a seed) and not exactly reproducible (storage timing is real), so it is
a smoke test that the harness and the Azure backend still agree; the in-memory seeds are the
regression net.
"""

from __future__ import annotations

import dataclasses
import logging

import pytest

from durable_azstorage.azure.settings import AzureStorageSettings
from durable_azstorage.testing.torture import Options, run_seed
from durable_azstorage.testing.torture.azurite import azure_options

pytestmark = [pytest.mark.azurite, pytest.mark.slow]


@pytest.mark.parametrize("seed", [1, 2])
async def test_torture_seed_on_azurite(
    seed: int, azure_settings: AzureStorageSettings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.CRITICAL, logger="durable_azstorage")
    short = dataclasses.replace(
        azure_options(Options(), azure_settings), min_steps=20, max_steps=35
    )
    result = await run_seed(seed, short)
    assert result.ok, result.describe()
