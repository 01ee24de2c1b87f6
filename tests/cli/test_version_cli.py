"""The app-level options: ``--version`` (and the metadata it reports), shell completion."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
from pathlib import Path

from cli_support import clean_env, run_cli

import durable_azstorage


def test_version_flag_prints_the_package_version() -> None:
    result = run_cli("--version", env=clean_env(), timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"durable-azstorage {durable_azstorage.__version__}"


def test_installed_metadata_matches_and_declares_the_license() -> None:
    metadata = importlib.metadata.metadata("durable-azstorage")
    assert metadata["Version"] == durable_azstorage.__version__
    assert metadata["License-Expression"] == "MIT"
    assert "LICENSE" in (metadata.get_all("License-File") or [])


def test_shell_completion_is_offered() -> None:
    script = Path(sys.executable).parent / "durable-azstorage"  # the console script users run
    result = subprocess.run(
        [str(script), "--show-completion", "bash"],
        env=clean_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "complete -o default -F _durable_azstorage_completion durable-azstorage" in result.stdout
