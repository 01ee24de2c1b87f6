"""Helpers for the bench tests: run ``python -m durable_azstorage bench ...`` for real.

* ``bench_cli(azurite, *args)``: one command against the session Azurite (given through the
  environment, so nothing is auto-started; ``None``: the command starts its own), output
  captured, never a terminal; ``settings_env`` adds ``DURABLE_AZSTORAGE_*`` variables.
* ``check_document(data, scenario)``: the documented top-level keys of every result document.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

from durable_azstorage.testing.azurite import Azurite

DOCUMENT_KEYS = {"scenario", "started_at", "environment", "settings", "results", "notes"}


def bench_cli(
    azurite: Azurite | None,
    *args: str,
    timeout: float = 240,
    settings_env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DURABLE_AZSTORAGE_")}
    env.update(settings_env or {})
    if azurite is not None:
        env["DURABLE_AZSTORAGE_CONNECTION_STRING"] = azurite.connection_string
    return subprocess.run(
        [sys.executable, "-m", "durable_azstorage", "bench", *args],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def check_document(data: dict[str, Any], scenario: str) -> None:
    assert set(data) == DOCUMENT_KEYS
    assert data["scenario"] == scenario
    assert data["environment"]["machine"]["cores"] >= 1
    assert data["environment"]["machine"]["python"]
    assert data["environment"]["storage"]["kind"] == "emulator (given)"
    assert "connection_string" not in json.dumps(data["settings"]).lower()
    assert "Eby8vdM02" not in json.dumps(data)  # the account key is never written
