"""Every example runs as a user would run it (a subprocess of ``python examples/X.py``).

All but one use the session's Azurite through DURABLE_AZSTORAGE_CONNECTION_STRING (the
"configured account" path); ``hello_cities`` also runs with no account configured, so the
example starts and stops its own Azurite — the README's first command.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from durable_azstorage.testing.azurite import Azurite

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
TIMEOUT = 300


def _run(script: str, env: dict[str, str]) -> str:
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / script)],
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert result.returncode == 0, f"{script} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def _env_without_account() -> dict[str, str]:
    env = dict(os.environ)
    for name in list(env):
        if name.startswith("DURABLE_AZSTORAGE_") or name == "AZURE_STORAGE_CONNECTION_STRING":
            del env[name]
    return env


@pytest.fixture
def account_env(azurite: Azurite) -> dict[str, str]:
    env = _env_without_account()
    env["DURABLE_AZSTORAGE_CONNECTION_STRING"] = azurite.connection_string
    return env


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        ("hello_cities.py", "['Hello, Tokyo!', 'Hello, Seattle!', 'Hello, London!']"),
        ("fan_out_fan_in.py", "{'lines': 5, 'words': 37}"),
        ("human_interaction.py", "approved by alice"),
        ("human_interaction.py", "timed out: escalated to a manager"),
        ("monitor.py", "job finished after 4 checks"),
        (
            "sub_orchestrations.py",
            "['thermostat-key:active', 'doorbell-key:active', 'camera-key:active']",
        ),
        ("error_handling.py", "'compensation': 'cancelled flight to Lisbon'"),
        ("large_payloads.py", "10000 rows"),
        ("entities.py", "@account@alice: balance 80"),
        ("entities.py", "@account@bob: balance 40"),
        ("entities.py", "refused: insufficient funds"),
    ],
)
def test_example_runs_against_the_configured_account(
    script: str, expected: str, account_env: dict[str, str]
) -> None:
    if script not in _OUTPUTS:
        _OUTPUTS[script] = _run(script, account_env)
    assert expected in _OUTPUTS[script]


_OUTPUTS: dict[str, str] = {}  # one run per script serves all of its expectations


@pytest.mark.azurite  # starts an Azurite of its own
@pytest.mark.slow
def test_first_example_starts_its_own_azurite_when_no_account_is_configured() -> None:
    out = _run("hello_cities.py", _env_without_account())
    assert "Completed" in out and "Hello, London!" in out
