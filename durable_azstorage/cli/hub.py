"""``durable-azstorage hub create|delete|info|list|partitions|scale``: task hub resources from the shell.

The same connection options, ``--debug`` and error reporting as the other groups
(``cli.connection``, ``cli.output.reporting``): ``--connection-string`` over the environment
(``AzureStorageSettings.from_env``), ``--task-hub`` and ``--partition-count`` over both.
Unlike ``instances``, hub commands never start a temporary Azurite when no account is
configured: a hub created there would vanish with it, so that is a usage error naming the
variable to set.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import TYPE_CHECKING, TypeVar

import typer

from durable_azstorage.azure.settings import ENV_PREFIX, AzureStorageSettings
from durable_azstorage.cli.connection import (
    Connection,
    ConnectionStringOption,
    DebugOption,
    PartitionCountOption,
    TaskHubOption,
)
from durable_azstorage.cli.output import EXIT_USAGE, CliError, confirm, reporting

if TYPE_CHECKING:  # the Azure SDK is imported only when a command runs (fast --help)
    from durable_azstorage.azure.partitioning.lease_table import PartitionInfo
    from durable_azstorage.azure.storage.clients import StorageClients
    from durable_azstorage.model.scale import ScaleAdvisor, ScaleRecommendation
    from durable_azstorage.model.taskhub import TaskHubInfo

app = typer.Typer(no_args_is_help=True)
T = TypeVar("T")

_JSON = typer.Option(False, "--json", help="Print JSON.")


def _settings(connection: Connection) -> AzureStorageSettings:
    if not connection.configured:
        raise CliError(
            f"no storage account configured: pass --connection-string or set {ENV_PREFIX}CONNECTION_STRING "
            "(hub commands never start a temporary Azurite: a hub there would vanish with it)",
            EXIT_USAGE,
        )
    return connection.settings()


def _run(settings: AzureStorageSettings, action: Callable[[StorageClients], Awaitable[T]]) -> T:
    from durable_azstorage.azure.storage.clients import StorageClients

    async def go() -> T:
        async with StorageClients(settings) as clients:
            return await action(clients)

    return asyncio.run(go())


def _show(info: TaskHubInfo, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(asdict(info), default=str))
        return
    typer.echo(f"task hub:        {info.task_hub}")
    typer.echo(f"partition count: {info.partition_count}")
    typer.echo(f"created:         {info.created_time.isoformat()} by {info.created_by}")
    typer.echo("resources:       " + ", ".join(info.resources))
    if info.missing:
        typer.echo("MISSING:         " + ", ".join(info.missing))


@app.command()
def create(
    task_hub: TaskHubOption = None,
    partition_count: PartitionCountOption = None,
    as_json: bool = _JSON,
    connection_string: ConnectionStringOption = None,
    debug: DebugOption = False,
) -> None:
    """Create the task hub (idempotent; fails if it exists with another partition count)."""
    from durable_azstorage.azure.tracking.taskhub import TaskHubResources

    with reporting(debug):
        settings = _settings(Connection(connection_string, task_hub, partition_count))
        _show(_run(settings, lambda c: TaskHubResources(c).create_if_not_exists()), as_json)


@app.command()
def info(
    task_hub: TaskHubOption = None,
    as_json: bool = _JSON,
    connection_string: ConnectionStringOption = None,
    debug: DebugOption = False,
) -> None:
    """Show the hub's partition count, creation time and resources (missing ones flagged)."""
    from durable_azstorage.azure.tracking.taskhub import TaskHubResources

    with reporting(debug):
        settings = _settings(Connection(connection_string, task_hub))
        _show(_run(settings, lambda c: TaskHubResources(c).info()), as_json)


@app.command()
def delete(
    task_hub: TaskHubOption = None,
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
    connection_string: ConnectionStringOption = None,
    debug: DebugOption = False,
) -> None:
    """Delete every resource of the task hub (all instances and history are lost); asks unless --yes."""
    from durable_azstorage.azure.tracking.taskhub import TaskHubResources

    with reporting(debug):
        settings = _settings(Connection(connection_string, task_hub))
        confirm(
            yes,
            f"delete task hub {settings.task_hub} with all its instances and history?",
            "hub delete",
        )
        existed = _run(settings, lambda c: TaskHubResources(c).delete())
        typer.echo(
            f"deleted task hub {settings.task_hub}"
            if existed
            else f"task hub {settings.task_hub} did not exist (leftovers removed)"
        )


@app.command("list")
def list_(
    as_json: bool = _JSON,
    connection_string: ConnectionStringOption = None,
    debug: DebugOption = False,
) -> None:
    """List the task hubs in the account."""
    from durable_azstorage.azure.tracking.taskhub import list_task_hubs

    with reporting(debug):
        hubs = _run(_settings(Connection(connection_string)), list_task_hubs)
    if as_json:
        typer.echo(json.dumps([asdict(h) for h in hubs], default=str))
        return
    for hub in hubs:
        typer.echo(
            f"{hub.task_hub}\t{hub.partition_count} partitions\t{hub.created_time.isoformat()}"
        )


@app.command()
def partitions(
    task_hub: TaskHubOption = None,
    as_json: bool = _JSON,
    connection_string: ConnectionStringOption = None,
    debug: DebugOption = False,
) -> None:
    """Show each partition's lease owner, expiry, backlog and oldest visible message age."""
    with reporting(debug):
        settings = _settings(Connection(connection_string, task_hub))
        _show_partitions(_run(settings, _describe), as_json)


async def _describe(clients: StorageClients) -> list[PartitionInfo]:
    """The hub's own partition count (not the environment's) decides which queues exist."""
    from durable_azstorage.azure.partitioning.lease_table import describe_partitions
    from durable_azstorage.azure.storage.naming import TaskHubNames
    from durable_azstorage.azure.tracking.taskhub import TaskHubResources

    info = await TaskHubResources(clients).info()
    names = TaskHubNames(clients.settings.task_hub, info.partition_count)
    return await describe_partitions(clients, names)


def _show_partitions(infos: list[PartitionInfo], as_json: bool) -> None:
    if as_json:
        rows = [
            {
                **asdict(i),
                "owned_since": i.owned_since.isoformat() if i.owned_since else None,
                "expires_at": i.expires_at.isoformat() if i.expires_at else None,
                "oldest_message_age": None
                if i.oldest_message_age is None
                else i.oldest_message_age.total_seconds(),
            }
            for i in infos
        ]
        typer.echo(json.dumps(rows, default=str))
        return
    typer.echo("partition  owner                     expires                    backlog  oldest")
    for i in infos:
        owner = i.owner or "-"
        if i.is_draining:
            owner += f" (draining -> {i.next_owner or 'anybody'})"
        elif i.next_owner:
            owner += f" (requested by {i.next_owner})"
        expires = i.expires_at.isoformat(timespec="seconds") if i.expires_at else "-"
        age = (
            "-" if i.oldest_message_age is None else f"{i.oldest_message_age.total_seconds():.1f}s"
        )
        typer.echo(
            f"{i.partition:<10} {owner:<25} {expires:<26} {i.approximate_messages:>7}  {age}"
        )


@app.command()
def scale(
    workers: int = typer.Option(
        ..., "--workers", "-w", min=0, help="How many workers run now.", show_default=False
    ),
    task_hub: TaskHubOption = None,
    sample_interval: float = typer.Option(
        1.0, "--sample-interval", min=0.0, help="Seconds between the queue samples taken."
    ),
    as_json: bool = _JSON,
    connection_string: ConnectionStringOption = None,
    debug: DebugOption = False,
) -> None:
    """Advise an autoscaler: add a worker, remove one, or keep the count, and why.

    Judged from the latency (oldest visible message's age) of every queue over 5 samples
    taken --sample-interval apart, as the .NET provider's performance monitor does.
    """
    from durable_azstorage.client.async_client import AsyncTaskHubClient

    with reporting(debug):
        settings = _settings(Connection(connection_string, task_hub))

        async def advise() -> tuple[ScaleRecommendation, ScaleAdvisor]:
            async with AsyncTaskHubClient(settings) as client:
                advice = await client.get_scale_recommendation(
                    workers, sample_interval=sample_interval
                )
                return advice, client.scale_advisor

        advice, advisor = asyncio.run(advise())
    _show_scale(advice, advisor, workers, as_json)


def _show_scale(
    advice: ScaleRecommendation, advisor: ScaleAdvisor, workers: int, as_json: bool
) -> None:
    latest = advisor.latest
    assert latest is not None  # the advice sampled at least once
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "action": advice.action.value,
                    "reason": advice.reason,
                    "keep_workers_alive": advice.keep_workers_alive,
                    "current_workers": workers,
                    "partition_count": len(latest.partitions),
                    "work_item_queue_length": latest.work_items,
                    "work_item_latencies_ms": advisor.work_items.values,
                    "control_queue_lengths": [p.messages for p in latest.partitions],
                    "control_queue_latencies_ms": [h.values for h in advisor.control],
                }
            )
        )
        return
    typer.echo(f"recommendation: {advice.action.value} ({advice.reason})")
    if not advice.keep_workers_alive:
        typer.echo("the hub is idle: every worker may stop")
    typer.echo(f"work items: {latest.work_items} queued, latency ms {advisor.work_items.values}")
    for partition, history in zip(latest.partitions, advisor.control, strict=False):
        typer.echo(
            f"partition {partition.partition}: {partition.messages} queued, latency ms {history.values}"
        )
