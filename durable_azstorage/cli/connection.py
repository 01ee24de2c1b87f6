"""Which storage account and task hub a CLI command talks to — resolved in one place.

Precedence: ``--connection-string`` > environment (``AzureStorageSettings.from_env``:
``DURABLE_AZSTORAGE_CONNECTION_STRING``, ``AZURE_STORAGE_CONNECTION_STRING``,
``DURABLE_AZSTORAGE_ACCOUNT_URL`` + key/SAS/identity, ``DURABLE_AZSTORAGE_TASK_HUB`` ...);
``--task-hub`` and ``--partition-count`` override the environment.

With no account configured at all, the command starts a local Azurite for its own duration
(and says so on stderr). A freshly started Azurite is *empty*: that is what ``worker`` and demos
want (the worker creates the hub there), but ``instances ...`` against it only finds nothing —
to inspect a long-lived local account, run ``durable-azstorage azurite`` in another terminal and
export the connection string it prints.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Annotated, Any

import typer

from durable_azstorage.azure.settings import ENV_PREFIX, AzureStorageSettings
from durable_azstorage.cli.output import EXIT_FAILURE, EXIT_USAGE, CliError
from durable_azstorage.testing.local import storage_configured

# The connection options every command that talks to storage takes, declared once. Commands
# use them as parameter types (``task_hub: TaskHubOption = None``); typer reads the option
# from the annotation. ``Optional`` because typer needs it on Python 3.10.
ConnectionStringOption = Annotated[
    str | None,
    typer.Option(
        "--connection-string",
        "-c",
        help=f"Storage connection string (default: {ENV_PREFIX}CONNECTION_STRING, which keeps the "
        "key out of the process list; with none configured a temporary, empty local Azurite is "
        "started).",
        show_default=False,
    ),
]
TaskHubOption = Annotated[
    str | None,
    typer.Option(
        "--task-hub", "-t", help=f"Task hub name (default: {ENV_PREFIX}TASK_HUB or 'default')."
    ),
]
PartitionCountOption = Annotated[
    int | None,
    typer.Option("--partition-count", "-p", help="Partition count, 1-16 (default: env or 4)."),
]
DebugOption = Annotated[
    bool, typer.Option("--debug", envvar=ENV_PREFIX + "DEBUG", help="Show tracebacks on errors.")
]


@dataclass(frozen=True, slots=True)
class Connection:
    """The connection options of one command line (None: not given)."""

    connection_string: str | None = None
    task_hub: str | None = None
    partition_count: int | None = None

    @property
    def configured(self) -> bool:
        """True when an account is named (option or environment), so no Azurite is needed."""
        return bool(self.connection_string) or storage_configured()

    def settings(self, connection_string: str | None = None) -> AzureStorageSettings:
        """Settings from the options over the environment; invalid values are usage errors."""
        overrides: dict[str, Any] = {}
        conn = connection_string or self.connection_string
        if conn:
            overrides.update(connection_string=conn, account_url=None, credential=None)
        if self.task_hub is not None:
            overrides["task_hub"] = self.task_hub
        if self.partition_count is not None:
            overrides["partition_count"] = self.partition_count
        try:
            return AzureStorageSettings.from_env(**overrides)
        except ValueError as exc:  # names the setting, never a secret value
            raise CliError(str(exc), EXIT_USAGE) from None


@dataclass(frozen=True, slots=True)
class Target:
    """Resolved settings; ``local`` is True when a temporary Azurite was started for them."""

    settings: AzureStorageSettings
    local: bool


@contextmanager
def resolve(connection: Connection) -> Iterator[Target]:
    """Yield the command's settings, starting (and finally stopping) Azurite if none is set."""
    if connection.configured:
        yield Target(connection.settings(), local=False)
        return
    connection.settings("UseDevelopmentStorage=true")  # validate hub/partition options first
    from durable_azstorage.testing.azurite import Azurite, AzuriteError

    typer.echo(
        f"no storage account configured (--connection-string or {ENV_PREFIX}CONNECTION_STRING): "
        "starting a temporary local Azurite for this command; it starts empty and is "
        "deleted when the command ends",
        err=True,
    )
    emulator = Azurite(die_with_parent=True)
    try:
        try:
            conn = emulator.start()
        except AzuriteError as exc:
            raise CliError(f"cannot start a local Azurite: {exc}", EXIT_FAILURE) from None
        typer.echo(f"local Azurite running (pid {emulator.pid}): {conn}", err=True)
        yield Target(connection.settings(conn), local=True)
    finally:
        emulator.stop()


def export_to_environment(connection: Connection, target: Target) -> None:
    """Put the resolved connection into ``DURABLE_AZSTORAGE_*`` variables.

    Used by ``worker``: the user's module builds its own settings, typically with
    ``AzureStorageSettings.from_env()``, so it sees exactly what the command line named.
    """
    if target.local or connection.connection_string:
        assert target.settings.connection_string is not None
        os.environ[ENV_PREFIX + "CONNECTION_STRING"] = target.settings.connection_string
        os.environ.pop(ENV_PREFIX + "ACCOUNT_URL", None)
    if connection.task_hub is not None:
        os.environ[ENV_PREFIX + "TASK_HUB"] = connection.task_hub
    if connection.partition_count is not None:
        os.environ[ENV_PREFIX + "PARTITION_COUNT"] = str(connection.partition_count)
