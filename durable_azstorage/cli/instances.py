"""``durable-azstorage instances ...``: find, inspect, start and control orchestration instances.

A thin layer over ``TaskHubClient``. Tables for people, ``--json`` for scripts; payloads given on
the command line (``--input``, ``--data``) are JSON. Destructive operations (``terminate``,
``purge``) ask for confirmation, or need ``--yes`` when stdin is not a terminal.
"""

from __future__ import annotations

import dataclasses

import typer

from durable_azstorage.cli import arguments, instance_admin
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
from durable_azstorage.cli.output import (
    EXIT_CODES_HELP,
    EXIT_FAILURE,
    EXIT_USAGE,
    CliError,
    confirm,
    counting,
    event_to_dict,
    print_history,
    print_json,
    print_state,
    print_states,
    state_to_dict,
)
from durable_azstorage.client.client import TaskHubClient
from durable_azstorage.client.state import OrchestrationState
from durable_azstorage.model.errors import OrchestrationNotFoundError
from durable_azstorage.model.query import OrchestrationQuery
from durable_azstorage.model.status import OrchestrationStatus

app = typer.Typer(no_args_is_help=True, epilog=EXIT_CODES_HELP)

_YES = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation.")
_RECURSIVE = typer.Option(True, "--recursive/--no-recursive", help="Include sub-orchestrations.")


def _require(client: TaskHubClient, instance_id: str, payloads: bool) -> OrchestrationState:
    state = client.get_orchestration_state(instance_id, fetch_payloads=payloads)
    if state is None:
        raise OrchestrationNotFoundError(instance_id)
    return state


def _every_page(client: TaskHubClient, query: OrchestrationQuery) -> list[OrchestrationState]:
    """Follow continuation tokens (counting on a terminal: 100k instances take a while)."""
    states: list[OrchestrationState] = []
    with counting("listing instances") as advance:
        while True:
            page = client.query_orchestrations(query)
            states += page.items
            advance(len(page.items))
            if page.continuation_token is None:
                return states
            query = dataclasses.replace(query, continuation_token=page.continuation_token)


@app.command("list")
def list_(
    status: list[str] | None = typer.Option(  # noqa: UP006,UP007 - typer needs these on 3.10
        None,
        "--status",
        "-s",
        help="Runtime status; repeat or comma-separate for several (Running, Pending, Completed, "
        "Failed, Terminated, Suspended, ContinuedAsNew).",
    ),
    created_from: str | None = typer.Option(
        None, "--created-from", help="Created at or after this ISO 8601 time (no offset: UTC)."
    ),
    created_to: str | None = typer.Option(
        None, "--created-to", help="Created at or before this ISO 8601 time (no offset: UTC)."
    ),
    prefix: str | None = typer.Option(None, "--prefix", help="Instance id prefix."),
    page_size: int = typer.Option(100, "--page-size", min=1, max=1000, help="Instances per page."),
    all_pages: bool = typer.Option(False, "--all", help="Follow every page."),
    continuation_token: str | None = typer.Option(
        None, "--continuation-token", help="Continue after a previous page."
    ),
    payloads: bool = typer.Option(False, "--payloads", help="Include inputs/outputs (JSON)."),
    as_json: bool = JSON_OPTION,
    connection_string: ConnectionStringOption = None,
    task_hub: TaskHubOption = None,
    partition_count: PartitionCountOption = None,
    debug: DebugOption = False,
) -> None:
    """List instances, one page at a time (or --all); the next page's token goes to stderr.

    JSON: {"items": [...], "continuation_token": "..." or null}.
    """
    with open_client(debug, connection_string, task_hub, partition_count) as client:
        if all_pages and continuation_token:
            raise CliError("--all and --continuation-token exclude each other", EXIT_USAGE)
        query = OrchestrationQuery(
            runtime_status=arguments.statuses(status),
            created_time_from=arguments.utc_time(created_from, "--created-from"),
            created_time_to=arguments.utc_time(created_to, "--created-to"),
            instance_id_prefix=prefix,
            page_size=page_size,
            continuation_token=continuation_token,
            fetch_inputs_and_outputs=payloads,
        )
        token: str | None = None
        if all_pages:
            states = _every_page(client, query)
        else:
            page = client.query_orchestrations(query)
            states, token = page.items, page.continuation_token
        if as_json:
            print_json(
                {
                    "items": [state_to_dict(s, payloads=payloads) for s in states],
                    "continuation_token": token,
                }
            )
            return
        print_states(states)
        more = f"; more: --continuation-token {token}" if token else ""
        typer.echo(f"{len(states)} instance(s){more}", err=True)


@app.command()
def show(
    instance_id: str = INSTANCE_ID,
    payloads: bool = typer.Option(
        True, "--payloads/--no-payloads", help="Fetch input, output and custom status."
    ),
    as_json: bool = JSON_OPTION,
    connection_string: ConnectionStringOption = None,
    task_hub: TaskHubOption = None,
    partition_count: PartitionCountOption = None,
    debug: DebugOption = False,
) -> None:
    """Show an instance's status and payloads (large payloads are fetched from blobs)."""
    with open_client(debug, connection_string, task_hub, partition_count) as client:
        state = _require(client, instance_id, payloads)
        if as_json:
            print_json(state_to_dict(state, payloads=payloads))
        else:
            print_state(state)


@app.command()
def history(
    instance_id: str = INSTANCE_ID,
    execution_id: str | None = typer.Option(
        None,
        "--execution-id",
        help="Show this execution instead of the current one (an earlier one that is kept).",
    ),
    executions: bool = typer.Option(
        False, "--executions", help="List the executions whose history is kept, oldest first."
    ),
    as_json: bool = JSON_OPTION,
    connection_string: ConnectionStringOption = None,
    task_hub: TaskHubOption = None,
    partition_count: PartitionCountOption = None,
    debug: DebugOption = False,
) -> None:
    """Show the current execution's history events, oldest first (empty while Pending).

    Earlier executions (continue-as-new, restart) are kept up to the hub's
    archived_executions setting: --executions lists them, --execution-id shows one.
    """
    with open_client(debug, connection_string, task_hub, partition_count) as client:
        if executions:
            ids = client.list_execution_ids(instance_id)
            if as_json:
                print_json(ids)
            else:
                for shown in ids:
                    typer.echo(shown)
            return
        events = client.get_orchestration_history(instance_id, execution_id=execution_id)
        if as_json:
            print_json([event_to_dict(e) for e in events])
        else:
            print_history(events)
            if not events:
                typer.echo(
                    "no history yet (a Pending instance has none until a worker runs it)", err=True
                )


@app.command()
def wait(
    instance_id: str = INSTANCE_ID,
    timeout: float = typer.Option(60.0, "--timeout", min=0.0, help="Seconds to wait at most."),
    until_started: bool = typer.Option(
        False, "--started", help="Wait only until it has left Pending."
    ),
    as_json: bool = JSON_OPTION,
    connection_string: ConnectionStringOption = None,
    task_hub: TaskHubOption = None,
    partition_count: PartitionCountOption = None,
    debug: DebugOption = False,
) -> None:
    """Wait until an instance has ended (or started) and show it.

    Exit 0 when it completed (or started); 1 when it failed or was terminated, or on timeout.
    """
    with open_client(debug, connection_string, task_hub, partition_count) as client:
        _require(client, instance_id, payloads=False)
        if until_started:
            state = client.wait_for_orchestration_start(
                instance_id, fetch_payloads=True, timeout=timeout
            )
        else:
            state = client.wait_for_orchestration_completion(instance_id, timeout=timeout)
        if as_json:
            print_json(state_to_dict(state, payloads=True))
        else:
            print_state(state)
        if not until_started and state.runtime_status is not OrchestrationStatus.COMPLETED:
            raise CliError(f"{instance_id} ended {state.runtime_status.value}", EXIT_FAILURE)


@app.command()
def start(
    name: str = typer.Option(..., "--name", "-n", help="Orchestrator name.", show_default=False),
    input: str | None = typer.Option(
        None, "--input", "-i", help="Input as JSON, e.g. '\"Tokyo\"' or '{\"n\": 3}'."
    ),
    instance_id: str | None = typer.Option(
        None, "--instance-id", help="Instance id (default: a random one)."
    ),
    start_at: str | None = typer.Option(
        None, "--start-at", help="Start no earlier than this ISO 8601 time (no offset: UTC)."
    ),
    version: str | None = typer.Option(None, "--version", help="Orchestration version."),
    tag: list[str] | None = typer.Option(None, "--tag", help="KEY=VALUE tag; repeat for several."),
    as_json: bool = JSON_OPTION,
    connection_string: ConnectionStringOption = None,
    task_hub: TaskHubOption = None,
    partition_count: PartitionCountOption = None,
    debug: DebugOption = False,
) -> None:
    """Schedule a new instance and print its id (it stays Pending until a worker runs it)."""
    with open_client(debug, connection_string, task_hub, partition_count) as client:
        data = arguments.json_value(input, "--input")
        when = arguments.utc_time(start_at, "--start-at")
        new_id = client.schedule_new_orchestration(
            name,
            input=data,
            instance_id=instance_id,
            start_at=when,
            version=version,
            tags=arguments.tags(tag),
        )
        if as_json:
            print_json({"instance_id": new_id})
        else:
            typer.echo(new_id)


@app.command("raise")
def raise_(
    instance_id: str = INSTANCE_ID,
    event: str = typer.Option(..., "--event", "-e", help="Event name.", show_default=False),
    data: str | None = typer.Option(None, "--data", "-d", help="Event data as JSON."),
    connection_string: ConnectionStringOption = None,
    task_hub: TaskHubOption = None,
    partition_count: PartitionCountOption = None,
    debug: DebugOption = False,
) -> None:
    """Send an external event to an instance."""
    with open_client(debug, connection_string, task_hub, partition_count) as client:
        payload = arguments.json_value(data, "--data")
        client.raise_orchestration_event(instance_id, event, data=payload)
        typer.echo(f"raised {event!r} on {instance_id}")


@app.command()
def terminate(
    instance_id: str = INSTANCE_ID,
    reason: str | None = typer.Option(
        None, "--reason", help="Reason; becomes the instance's output."
    ),
    recursive: bool = _RECURSIVE,
    yes: bool = _YES,
    connection_string: ConnectionStringOption = None,
    task_hub: TaskHubOption = None,
    partition_count: PartitionCountOption = None,
    debug: DebugOption = False,
) -> None:
    """Terminate an instance (a worker carries it out); asks unless --yes."""
    with open_client(debug, connection_string, task_hub, partition_count) as client:
        state = _require(client, instance_id, payloads=False)
        confirm(
            yes,
            f"terminate {instance_id} ({state.name}, {state.runtime_status.value})?",
            "terminate",
        )
        client.terminate_orchestration(instance_id, output=reason, recursive=recursive)
        typer.echo(f"termination of {instance_id} requested")


@app.command()
def suspend(
    instance_id: str = INSTANCE_ID,
    reason: str | None = REASON_OPTION,
    connection_string: ConnectionStringOption = None,
    task_hub: TaskHubOption = None,
    partition_count: PartitionCountOption = None,
    debug: DebugOption = False,
) -> None:
    """Suspend an instance: it keeps its state but processes no events until resumed."""
    with open_client(debug, connection_string, task_hub, partition_count) as client:
        client.suspend_orchestration(instance_id, reason=reason)
        typer.echo(f"suspension of {instance_id} requested")


@app.command()
def resume(
    instance_id: str = INSTANCE_ID,
    reason: str | None = REASON_OPTION,
    connection_string: ConnectionStringOption = None,
    task_hub: TaskHubOption = None,
    partition_count: PartitionCountOption = None,
    debug: DebugOption = False,
) -> None:
    """Resume a suspended instance."""
    with open_client(debug, connection_string, task_hub, partition_count) as client:
        client.resume_orchestration(instance_id, reason=reason)
        typer.echo(f"resumption of {instance_id} requested")


@app.command()
def purge(
    instance_id: str | None = typer.Argument(
        None,
        help="Instance id; omit it to purge by filter (--status, --created-from/-to).",
        show_default=False,
    ),
    recursive: bool = _RECURSIVE,
    status: list[str] | None = typer.Option(
        None,
        "--status",
        "-s",
        help="Filter purge: Completed, Failed and/or Terminated (required; running instances "
        "are never purged).",
    ),
    created_from: str | None = typer.Option(
        None, "--created-from", help="Filter purge: created at or after (ISO 8601, no offset: UTC)."
    ),
    created_to: str | None = typer.Option(
        None, "--created-to", help="Filter purge: created at or before (ISO 8601, no offset: UTC)."
    ),
    timeout: float | None = typer.Option(
        None,
        "--timeout",
        min=0.0,
        help="Filter purge: stop after this many seconds (exit 1, run again to continue).",
    ),
    yes: bool = _YES,
    as_json: bool = JSON_OPTION,
    connection_string: ConnectionStringOption = None,
    task_hub: TaskHubOption = None,
    partition_count: PartitionCountOption = None,
    debug: DebugOption = False,
) -> None:
    """Delete ended instances' history, state and blobs: one instance, or every match of a filter.

    One instance (and its sub-orchestrations): instances that have not ended are refused
    (exit 1); an unknown one exits 3. By filter: --status names ended statuses only (else
    exit 2), a progress bar shows on a terminal; with --timeout an unfinished purge exits 1
    and says so (JSON "is_complete": false), and running it again continues. Asks unless --yes.
    """
    with open_client(debug, connection_string, task_hub, partition_count) as client:
        filtered = status or created_from or created_to or timeout is not None
        if instance_id is None:
            instance_admin.purge_by_filter(
                client, status, created_from, created_to, timeout, yes, as_json
            )
            return
        if filtered:
            raise CliError(
                "give an instance id or filter options (--status, --created-from, "
                "--created-to, --timeout), not both",
                EXIT_USAGE,
            )
        state = _require(client, instance_id, payloads=False)
        scope = " and its sub-orchestrations" if recursive else ""
        confirm(
            yes,
            f"purge {instance_id} ({state.name}, {state.runtime_status.value}){scope}? "
            "This cannot be undone",
            "purge",
        )
        result = client.purge_orchestration(instance_id, recursive=recursive)
        if as_json:
            print_json(
                {
                    "deleted_instance_count": result.deleted_instance_count,
                    "is_complete": result.is_complete,
                }
            )
        else:
            typer.echo(f"purged {result.deleted_instance_count} instance(s)")


# The management commands live in their own module; registered last, so they come last in help.
for _command in (
    instance_admin.restart,
    instance_admin.rewind,
    instance_admin.counts,
    instance_admin.stale,
):
    app.command()(_command)
