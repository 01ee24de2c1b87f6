"""What the long-running commands (``worker``, ``serve``) share: their options, logging to
stderr, hub creation, and the signal protocol.

The signal protocol: the first SIGINT/SIGTERM asks for a graceful stop (in-flight work gets
``--grace`` seconds, partitions are handed over); a second one exits at once, because an
operator who signals twice wants the process gone, and locked work is redelivered after its
lock expires anyway.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import typer

from durable_azstorage.cli.output import EXIT_FAILURE, EXIT_USAGE

if TYPE_CHECKING:
    from durable_azstorage.backend.protocol import Backend

CREATE_HUB_OPTION: bool = typer.Option(
    False, "--create-hub", help="Create the task hub first if it does not exist "
    "(always done on a temporary local Azurite)."
)
GRACE_OPTION: float = typer.Option(
    30.0, "--grace", min=0.0, help="Seconds in-flight work may take to finish on stop."
)
LOG_LEVEL_OPTION: str = typer.Option("INFO", "--log-level", help="Logging level (stderr).")

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def configure_logging(log_level: str) -> None:
    """Log to stderr at ``log_level``; an unknown level is a usage error naming the option."""
    level = logging.getLevelName(log_level.upper())
    if not isinstance(level, int):
        typer.echo(f"error: --log-level: unknown level {log_level!r}", err=True)
        raise typer.Exit(EXIT_USAGE)
    logging.basicConfig(
        level=level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # The Azure SDK logs every HTTP request at INFO; show its warnings unless asked for DEBUG.
    logging.getLogger("azure").setLevel(level if level <= logging.DEBUG else max(level, logging.WARNING))


@contextmanager
def stop_on_signal(stopping_message: str) -> Iterator[asyncio.Event]:
    """An event set by the first SIGINT/SIGTERM (after printing ``stopping_message``); a
    second signal exits at once. Use inside the running event loop."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    signals = 0

    def on_signal() -> None:
        nonlocal signals
        signals += 1
        if signals == 1:
            typer.echo(f"{stopping_message}; signal again to exit at once", err=True)
            stop.set()
        else:
            typer.echo("exiting at once; locked work is redelivered when its lock expires",
                       err=True)
            os._exit(EXIT_FAILURE)

    for sig in _SIGNALS:
        loop.add_signal_handler(sig, on_signal)
    try:
        yield stop
    finally:
        for sig in _SIGNALS:
            loop.remove_signal_handler(sig)


async def create_hub_or_close(backend: Backend) -> None:
    """Create the task hub; on failure release the backend's storage clients, then raise."""
    try:
        await backend.create_task_hub()
    except BaseException:
        await backend.stop()
        raise
