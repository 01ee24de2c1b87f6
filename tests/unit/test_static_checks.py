"""The package's static guarantees: import layering (ARCHITECTURE.md §2), strict typing, lint
and formatting (ruff).

They run as tests so that the one test command of the README enforces them.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=600)


def test_import_layers_point_down() -> None:
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert exe, "lint-imports is missing: install the dev extra"
    result = _run(exe)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
def test_package_is_mypy_strict_clean() -> None:
    result = _run(sys.executable, "-m", "mypy")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_lint_and_format_are_clean() -> None:
    exe = shutil.which("ruff", path=str(Path(sys.executable).parent))
    assert exe, "ruff is missing: install the dev extra"
    targets = ("durable_azstorage", "tests", "examples")
    lint = _run(exe, "check", *targets)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    layout = _run(exe, "format", "--check", *targets)
    assert layout.returncode == 0, "run `ruff format`:\n" + layout.stdout + layout.stderr
