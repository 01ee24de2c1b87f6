"""The top-level ``durable-azstorage`` app and its ``azurite`` command.

Command groups live in their own modules and are registered in ``_GROUPS`` below; add a line
there for a new group (module path, name, help). Single commands kept in their own module
(``worker``) are registered in ``_COMMANDS``.
"""

from __future__ import annotations

import importlib
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

import typer

from durable_azstorage import __version__
from durable_azstorage.cli.output import EXIT_CODES_HELP
from durable_azstorage.testing.azurite import Azurite, AzuriteError

app = typer.Typer(
    name="durable-azstorage",
    help="Durable orchestrations with state in Azure Storage: local Azurite and task hub tools.",
    epilog=EXIT_CODES_HELP,
    no_args_is_help=True,
    add_completion=True,  # --install-completion / --show-completion for bash, zsh, fish, PowerShell
    pretty_exceptions_enable=False,
)

_GROUPS: list[tuple[str, str, str]] = [
    ("durable_azstorage.cli.hub", "hub", "Create, inspect and delete task hubs."),
    ("durable_azstorage.cli.instances", "instances", "List, inspect, start and control instances."),
    ("durable_azstorage.cli.entities", "entities", "List, show and clean durable entities."),
    (
        "durable_azstorage.cli.poison",
        "poison",
        "Inspect, replay and delete quarantined poison messages.",
    ),
    (
        "durable_azstorage.cli.bench",
        "bench",
        "Measure throughput, latency, storage cost and scale-out.",
    ),
]

# Single commands that live in their own module: (module path, name); the module's function of
# that name is the command.
_COMMANDS: list[tuple[str, str]] = [
    ("durable_azstorage.cli.worker", "worker"),
    ("durable_azstorage.cli.serve", "serve"),
    ("durable_azstorage.cli.dashboard", "dashboard"),
]


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"durable-azstorage {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    version: bool = typer.Option(
        False,
        "--version",
        callback=_print_version,
        is_eager=True,
        help="Print the version and exit.",
    ),
) -> None:
    # Options of the app itself (no docstring: the app's help text stays the one above).
    pass


for _module, _name, _help in _GROUPS:
    app.add_typer(importlib.import_module(_module).app, name=_name, help=_help)
for _module, _name in _COMMANDS:
    app.command(name=_name, epilog=EXIT_CODES_HELP)(
        getattr(importlib.import_module(_module), _name)
    )


@app.command()
def azurite(
    in_memory: bool = typer.Option(
        False, "--in-memory", help="Keep data in memory (stalls in GC after heavy churn)."
    ),
    location: Path | None = typer.Option(  # noqa: UP007 - typer needs Optional on 3.10
        None, "--location", help="Keep data in this folder instead of a temporary one."
    ),
    mode: str = typer.Option("auto", "--mode", help="auto, npm or docker."),
) -> None:
    """Run a local Azurite in the foreground and print its connection string.

    The connection string is the only line on stdout (use it as
    DURABLE_AZSTORAGE_CONNECTION_STRING); progress goes to stderr. Stops on Ctrl-C or SIGTERM.
    """
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    emulator = Azurite(in_memory=in_memory, location=location, mode=mode, die_with_parent=True)
    try:
        typer.echo("starting Azurite ...", err=True)
        try:
            conn = emulator.start()
        except AzuriteError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from None
        typer.echo(conn)
        sys.stdout.flush()
        typer.echo(
            f"Azurite is running (pid {emulator.pid}, ports {emulator.ports}); Ctrl-C stops it.",
            err=True,
        )
        while not stop.wait(0.5):
            pass
        typer.echo("stopping Azurite ...", err=True)
    finally:
        emulator.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def main() -> None:
    """Console-script entry point."""
    app()
