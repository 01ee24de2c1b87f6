"""``instances restart|rewind|counts|stale`` and the filter form of ``instances purge``.

Registered on ``cli.instances.app`` by that module. The filter purge counts
the matching instances first (for the question and the progress bar), then purges with the
client's bounded concurrency; with ``--timeout`` an unfinished purge exits 1, and running the
same command again continues (purged instances no longer match).
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from durable_azstorage.cli import arguments
from durable_azstorage.cli.connection import (
    ConnectionStringOption,
    DebugOption,
    PartitionCountOption,
    TaskHubOption,
)
from durable_azstorage.cli.instance_client import (
    INSTANCE_ID,
    JSON_OPTION,
    REASON_OPTION,
    open_client,
)
from durable_azstorage.cli.output import EXIT_FAILURE, CliError, confirm, print_json
from durable_azstorage.client.client import TaskHubClient
from durable_azstorage.client.management import purge_statuses
from durable_azstorage.model.query import OrchestrationQuery, PurgeInstancesResult

_STATUS_HELP = (
    "Runtime status; repeat or comma-separate for several (Running, Pending, Completed, "
    "Failed, Terminated, Suspended, ContinuedAsNew)."
)


def purge_by_filter(
    client: TaskHubClient,
    status: list[str] | None,
    created_from: str | None,
    created_to: str | None,
    timeout: float | None,
    yes: bool,
    as_json: bool,
) -> None:
    statuses = purge_statuses(arguments.statuses(status))  # ValueError: usage, before counting
    query = OrchestrationQuery(
        runtime_status=statuses,
        created_time_from=arguments.utc_time(created_from, "--created-from"),
        created_time_to=arguments.utc_time(created_to, "--created-to"),
    )
    total = sum(client.count_orchestrations_by_status(query).values())
    names = "/".join(s.value for s in statuses)
    if total == 0:
        result = PurgeInstancesResult(deleted_instance_count=0)
    else:
        confirm(yes, f"purge {total} {names} instance(s)? This cannot be undone", "purge")
        with _bar(f"purging {names} instances", total) as advance:
            result = client.purge_orchestrations_by(
                created_time_from=query.created_time_from,
                created_time_to=query.created_time_to,
                runtime_status=statuses,
                timeout=timeout,
                progress=advance,
            )
    if as_json:
        print_json(
            {
                "deleted_instance_count": result.deleted_instance_count,
                "is_complete": result.is_complete,
            }
        )
    else:
        typer.echo(f"purged {result.deleted_instance_count} instance(s)")
    if not result.is_complete:
        raise CliError(
            f"timed out after {timeout:g}s with matching instances left; run the "
            "same command again to continue",
            EXIT_FAILURE,
        )


@contextmanager
def _bar(description: str, total: int) -> Iterator[Callable[[int], None]]:
    """A progress bar on stderr (a terminal only); the callback takes the count done so far."""
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
        disable=not sys.stderr.isatty(),
    ) as bar:
        task = bar.add_task(description, total=total)
        yield lambda done: bar.update(task, completed=done)


def restart(
    instance_id: str = INSTANCE_ID,
    new_id: bool = typer.Option(
        False, "--new-id", help="Start it under a new random instance id instead."
    ),
    as_json: bool = JSON_OPTION,
    connection_string: ConnectionStringOption = None,
    task_hub: TaskHubOption = None,
    partition_count: PartitionCountOption = None,
    debug: DebugOption = False,
) -> None:
    """Start an ended instance again with the same name, version, tags and input; prints the id.

    Exit 1 if it has not ended, 3 if unknown.
    """
    with open_client(debug, connection_string, task_hub, partition_count) as client:
        started = client.restart_orchestration(instance_id, restart_with_new_instance_id=new_id)
        if as_json:
            print_json({"instance_id": started})
        else:
            typer.echo(started)


def rewind(
    instance_id: str = INSTANCE_ID,
    reason: str | None = REASON_OPTION,
    connection_string: ConnectionStringOption = None,
    task_hub: TaskHubOption = None,
    partition_count: PartitionCountOption = None,
    debug: DebugOption = False,
) -> None:
    """Resume a Failed instance: failed activities and sub-orchestrations run again.

    Successful results are kept; failed sub-orchestrations are rewound too. Exit 1 if the
    instance (or a failed child) is not Failed, 3 if unknown.
    """
    with open_client(debug, connection_string, task_hub, partition_count) as client:
        client.rewind_orchestration(instance_id, reason=reason)
        typer.echo(f"rewind of {instance_id} requested")


def counts(
    status: list[str] | None = typer.Option(None, "--status", "-s", help=_STATUS_HELP),
    created_from: str | None = typer.Option(
        None, "--created-from", help="Created at or after this ISO 8601 time (no offset: UTC)."
    ),
    created_to: str | None = typer.Option(
        None, "--created-to", help="Created at or before this ISO 8601 time (no offset: UTC)."
    ),
    prefix: str | None = typer.Option(None, "--prefix", help="Instance id prefix."),
    as_json: bool = JSON_OPTION,
    connection_string: ConnectionStringOption = None,
    task_hub: TaskHubOption = None,
    partition_count: PartitionCountOption = None,
    debug: DebugOption = False,
) -> None:
    """Count instances per runtime status. JSON: {"Running": 3, ..., "total": n}."""
    with open_client(debug, connection_string, task_hub, partition_count) as client:
        query = OrchestrationQuery(
            runtime_status=arguments.statuses(status),
            created_time_from=arguments.utc_time(created_from, "--created-from"),
            created_time_to=arguments.utc_time(created_to, "--created-to"),
            instance_id_prefix=prefix,
        )
        found = client.count_orchestrations_by_status(query)
        rows = {s.value: n for s, n in found.items()}
        if as_json:
            print_json({**rows, "total": sum(rows.values())})
            return
        table = Table(show_edge=False, pad_edge=False)
        table.add_column("status")
        table.add_column("instances", justify="right")
        for name, n in rows.items():
            table.add_row(name, str(n))
        table.add_row("total", str(sum(rows.values())))
        _console().print(table)


def stale(
    repair: bool = typer.Option(
        False, "--repair", help="Rewrite the repairable rows from the history."
    ),
    as_json: bool = JSON_OPTION,
    connection_string: ConnectionStringOption = None,
    task_hub: TaskHubOption = None,
    partition_count: PartitionCountOption = None,
    debug: DebugOption = False,
) -> None:
    """List instances whose Instances row disagrees with their history (and --repair them).

    Problems: status, execution, missing-row (repairable) and missing-history (purge it).
    JSON: {"stale": [...], "repaired": [ids]}.
    """
    with open_client(debug, connection_string, task_hub, partition_count) as client:
        found = client.find_stale_instances()
        repaired = client.repair_stale_instances(found) if repair and found else []
        if as_json:
            print_json(
                {
                    "stale": [dataclasses.asdict(s) | {"repairable": s.repairable} for s in found],
                    "repaired": [s.instance_id for s in repaired],
                }
            )
            return
        table = Table(show_edge=False, pad_edge=False)
        for column in ("instance id", "problem", "row status", "history status", "repairable"):
            table.add_column(column, overflow="fold")
        for s in found:
            table.add_row(
                s.instance_id,
                s.problem,
                s.row_status.value if s.row_status else "-",
                s.history_status.value if s.history_status else "-",
                "yes" if s.repairable else "no",
            )
        _console().print(table)
        typer.echo(
            f"{len(found)} stale instance(s)" + (f"; repaired {len(repaired)}" if repair else ""),
            err=True,
        )


def _console() -> Console:
    """Markup off (ids may hold [brackets]); wide when piped so keys are not folded."""
    return Console(markup=False, highlight=False, width=None if sys.stdout.isatty() else 240)
