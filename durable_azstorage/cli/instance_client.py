"""What the ``instances`` commands share: the client they open and their common options.

``cli.instances`` (find, inspect, start, control) and ``cli.instance_admin`` (restart,
rewind, counts, stale, the filter purge) both build on this module; ``cli.instances``
registers the commands of both on its app.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import typer

from durable_azstorage.cli.connection import Connection, resolve
from durable_azstorage.cli.output import EXIT_NOT_FOUND, CliError, is_missing_resource, reporting
from durable_azstorage.client.client import TaskHubClient
from durable_azstorage.model.errors import OrchestrationNotFoundError

INSTANCE_ID = typer.Argument(..., help="Instance id.", show_default=False)
JSON_OPTION = typer.Option(False, "--json", help="Print JSON (for scripts).")
REASON_OPTION = typer.Option(None, "--reason", help="Reason recorded in the history.")


@contextmanager
def open_client(
    debug: bool, connection_string: str | None, task_hub: str | None, partition_count: int | None
) -> Iterator[TaskHubClient]:
    """Resolve the connection, open a client, and report failures as one line + exit code."""
    connection = Connection(connection_string, task_hub, partition_count)
    with reporting(debug), resolve(connection) as target:
        hub = target.settings.task_hub
        try:
            with TaskHubClient(target.settings) as client:
                yield client
        except OrchestrationNotFoundError as exc:
            raise CliError(f"{exc} in task hub {hub!r}", EXIT_NOT_FOUND) from exc
        except Exception as exc:
            if not is_missing_resource(exc):
                raise
            raise CliError(
                f"task hub {hub!r} does not exist in account {target.settings.account_name!r} "
                f"(create it with `durable-azstorage hub create -t {hub}`)",
                EXIT_NOT_FOUND,
            ) from exc
