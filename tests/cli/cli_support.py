"""Helpers for tests that run the real ``python -m durable_azstorage`` entry point.

* ``clean_env()``: the environment without any storage configuration from outside the tests.
* ``run_cli(*args, env=...)``: one command through the real entry point in a new process,
  stdin not a terminal, output captured.
* ``invoke_cli(*args, env=...)``: the same command run in this process (typer's
  ``CliRunner``), with the same result type. A new Python process costs about a second of CPU
  (importing the Azure SDK); tests of what a command does use this, tests of the entry point,
  signals or process exit use ``run_cli``.
* ``running_worker(...)``: a ``worker --app`` process, stopped by PID when the block exits.
* ``run_cli_on_terminal(...)``: stdin is a pseudo-terminal answering a prompt.
* ``wait_for_output(...)``: wait for a line in that process's output (e.g. "worker started").
"""

from __future__ import annotations

import os
import pty
import re
import signal
import subprocess
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from typer.testing import CliRunner

from durable_azstorage.cli.app import app
from durable_azstorage.testing.eventually import eventually

APP_DIR = Path(__file__).parent
PREFIX = "DURABLE_AZSTORAGE_"


def clean_env() -> dict[str, str]:
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(PREFIX) and k != "AZURE_STORAGE_CONNECTION_STRING"
    }


def run_cli(
    *args: str, env: dict[str, str], timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "durable_azstorage", *args],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def invoke_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``run_cli`` in this process: ``env`` replaces the environment for the command's run.

    An exception the command lets escape is appended to stderr as a traceback, as the real
    process would print it, so assertions on "no traceback" see it.
    """
    replaced: dict[str, str | None] = {key: None for key in os.environ if key not in env}
    replaced.update(env)
    result = CliRunner().invoke(app, list(args), env=replaced, prog_name="durable-azstorage")
    stderr = result.stderr
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        assert result.exc_info is not None
        stderr += "Traceback (most recent call last):\n" + "".join(
            traceback.format_exception(*result.exc_info)
        )
    return subprocess.CompletedProcess(
        ["durable-azstorage", *args], result.exit_code, result.stdout, stderr
    )


@contextmanager
def running_worker(
    env: dict[str, str], log: Path, *extra: str, ref: str = "worker_app:create_worker"
) -> Iterator[subprocess.Popen[bytes]]:
    """A ``worker --app`` subprocess logging to ``log``; SIGTERM (then SIGKILL) by PID at exit."""
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "durable_azstorage",
                "worker",
                "--app",
                ref,
                "--app-dir",
                str(APP_DIR),
                *extra,
            ],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
        try:
            yield process
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=30)


def wait_for_output(
    process: subprocess.Popen[bytes], log: Path, pattern: str, timeout: float = 180
) -> re.Match[str]:
    """Wait until ``log`` (the process's output) matches ``pattern``; fail if it exits first."""

    def output() -> str:
        text = log.read_text(errors="replace")
        if not re.search(pattern, text):  # an exited process will never print it: fail now
            assert process.poll() is None, (
                f"exited {process.returncode} before {pattern!r}:\n{text}"
            )
        return text

    text = eventually(
        output,
        until=lambda text: re.search(pattern, text),
        timeout=timeout,
        interval=0.1,
        what=f"{pattern!r} in {log.name}",
    )
    match = re.search(pattern, text)
    assert match is not None
    return match


def run_cli_on_terminal(
    *args: str, env: dict[str, str], answer: str, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    """Like ``run_cli`` but stdin is a pseudo-terminal that types ``answer``."""
    master, slave = pty.openpty()
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "durable_azstorage", *args],
            env=env,
            stdin=slave,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            os.write(master, answer.encode())
            out, err = process.communicate(timeout=timeout)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=30)
    finally:
        os.close(slave)
        os.close(master)
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)
