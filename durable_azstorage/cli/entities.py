"""``durable-azstorage entities ...``: list, show and clean durable entities.

Entities are instances with ``@name@key`` ids in the same task hub; these commands read their
records through ``TaskHubClient`` (``get_entity``, ``get_all_entities``,
``clean_entity_storage``). Tables for people, ``--json`` for scripts.
"""

from __future__ import annotations

from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from durable_azstorage.cli.connection import (
    ConnectionStringOption,
    DebugOption,
    PartitionCountOption,
    TaskHubOption,
)
from durable_azstorage.cli.instance_client import JSON_OPTION, open_client
from durable_azstorage.cli.output import (
    EXIT_CODES_HELP,
    EXIT_NOT_FOUND,
    CliError,
    payload,
    print_json,
)
from durable_azstorage.client.entities import EntityMetadata, EntityQuery
from durable_azstorage.model.entities import EntityInstanceId

app = typer.Typer(no_args_is_help=True, epilog=EXIT_CODES_HELP)


def entity_to_dict(entity: EntityMetadata) -> dict[str, Any]:
    return {
        "id": str(entity.id),
        "name": entity.id.entity,
        "key": entity.id.key,
        "last_modified": entity.last_modified,
        "locked_by": entity.locked_by,
        "backlog_queue_size": entity.backlog_queue_size,
        "state": payload(entity.state) if entity.includes_state else None,
    }


@app.command("list")
def list_(
    prefix: str | None = typer.Option(
        None, "--prefix", help="Entity id prefix, e.g. '@counter@' for one entity name."
    ),
    transient: bool = typer.Option(
        False,
        "--transient",
        help="Also list entities without state (locked or with requests waiting).",
    ),
    state: bool = typer.Option(True, "--state/--no-state", help="Include each entity's state."),
    as_json: bool = JSON_OPTION,
    connection_string: ConnectionStringOption = None,
    task_hub: TaskHubOption = None,
    partition_count: PartitionCountOption = None,
    debug: DebugOption = False,
) -> None:
    """List entities (those with state, unless --transient). JSON: a list of entities."""
    with open_client(debug, connection_string, task_hub, partition_count) as client:
        query = EntityQuery(
            instance_id_starts_with=prefix, include_state=state, include_transient=transient
        )
        found = client.get_all_entities(query)
        if as_json:
            print_json([entity_to_dict(e) for e in found])
            return
        table = Table(show_edge=False, pad_edge=False)
        for column in ("entity id", "last modified (UTC)", "locked by", "backlog", "state"):
            table.add_column(column, overflow="fold")
        for entity in found:
            table.add_row(
                str(entity.id),
                entity.last_modified.strftime("%Y-%m-%d %H:%M:%S"),
                entity.locked_by or "",
                str(entity.backlog_queue_size),
                entity.state or "",
            )
        Console().print(table)


@app.command()
def show(
    entity_id: str = typer.Argument(..., help="Entity id, '@name@key'.", show_default=False),
    as_json: bool = JSON_OPTION,
    connection_string: ConnectionStringOption = None,
    task_hub: TaskHubOption = None,
    partition_count: PartitionCountOption = None,
    debug: DebugOption = False,
) -> None:
    """Show one entity's state, lock and backlog."""
    with open_client(debug, connection_string, task_hub, partition_count) as client:
        parsed = EntityInstanceId.parse(entity_id)
        found = client.get_entity(parsed)
        if found is None:
            raise CliError(f"entity {entity_id!r} not found (or it has no state)", EXIT_NOT_FOUND)
        if as_json:
            print_json(entity_to_dict(found))
            return
        for label, value in entity_to_dict(found).items():
            typer.echo(f"{label:20} {value}")


@app.command()
def clean(
    as_json: bool = JSON_OPTION,
    connection_string: ConnectionStringOption = None,
    task_hub: TaskHubOption = None,
    partition_count: PartitionCountOption = None,
    debug: DebugOption = False,
) -> None:
    """Release locks held by orchestrations that no longer run; remove empty entities."""
    with open_client(debug, connection_string, task_hub, partition_count) as client:
        result = client.clean_entity_storage()
        if as_json:
            print_json(result)
        else:
            typer.echo(
                f"removed {result.empty_entities_removed} empty entit(ies), released "
                f"{result.orphaned_locks_released} orphaned lock(s)"
            )
