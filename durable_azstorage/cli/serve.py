"""``durable-azstorage serve``: the gRPC sidecar for the portable Durable Task SDKs.

Apps written with Microsoft's portable SDKs (``durabletask`` for Python, .NET, Java,
JavaScript) point their ``TaskHubGrpcClient``/``TaskHubGrpcWorker`` at ``--host:--port`` and
run on this task hub. The connection is resolved like every other command (options,
environment, or a temporary local Azurite, on which the hub is created).

The one stdout line, printed once serving, names the address, the hub and the partitions
this process owns; everything else goes to stderr. Ctrl-C or SIGTERM stops gracefully:
no new work items are handed out, in-flight ones get ``--grace`` seconds, the partitions
are released for other sidecars, and the process exits 0. A second signal exits at once.
``DeleteTaskHub`` and ``CreateTaskHub(recreateIfExists)`` are refused unless
``--allow-hub-management`` is given.
"""

from __future__ import annotations

import asyncio
import dataclasses
import sys
from typing import TYPE_CHECKING

import typer

from durable_azstorage.cli.connection import (
    Connection,
    ConnectionStringOption,
    DebugOption,
    PartitionCountOption,
    TaskHubOption,
    resolve,
)
from durable_azstorage.cli.long_running import (
    CREATE_HUB_OPTION,
    GRACE_OPTION,
    LOG_FORMAT_OPTION,
    LOG_LEVEL_OPTION,
    METRICS_PORT_OPTION,
    configure_logging,
    create_hub_or_close,
    exposed_metrics,
    stop_on_signal,
)
from durable_azstorage.cli.output import (
    EXIT_FAILURE,
    EXIT_NOT_FOUND,
    CliError,
    reporting,
)
from durable_azstorage.model.errors import TaskHubNotFoundError

if TYPE_CHECKING:
    from durable_azstorage.azure.settings import AzureStorageSettings

SIDECAR_EXTRA_HINT = (
    'the gRPC sidecar needs the "sidecar" extra: pip install "durable-azstorage[sidecar]"'
)
_SIDECAR_PACKAGES = ("grpc", "durabletask", "google.protobuf", "google")


async def run_sidecar(
    settings: AzureStorageSettings,
    *,
    host: str,
    port: int,
    create_hub: bool,
    grace: float,
    allow_hub_management: bool,
    metrics_port: int | None = None,
) -> None:
    """Serve until SIGINT/SIGTERM, then stop gracefully (partitions released)."""
    from durable_azstorage.sidecar.server import SidecarServer

    async with exposed_metrics(metrics_port, settings):
        with stop_on_signal(
            f"stopping: finishing in-flight work items (up to {grace:g}s), then releasing partitions"
        ) as stop:
            backend = settings.create_backend()
            if create_hub:
                await create_hub_or_close(backend)
            server = SidecarServer(
                backend, host=host, port=port, allow_hub_management=allow_hub_management
            )
            try:
                await server.start()
            except BaseException:
                await backend.stop()
                raise
            typer.echo(server.describe())
            sys.stdout.flush()
            typer.echo("Ctrl-C or SIGTERM stops it", err=True)
            await stop.wait()
            await server.stop(grace=grace)


def serve(
    host: str = typer.Option(
        "127.0.0.1",
        "--host",
        help="Address to listen on (loopback by default; the sidecar "
        "has no authentication, so expose it only to your own app).",
    ),
    port: int = typer.Option(
        4001, "--port", min=0, max=65535, help="Port to listen on (0: any free port)."
    ),
    create_hub: bool = CREATE_HUB_OPTION,
    allow_hub_management: bool = typer.Option(
        False,
        "--allow-hub-management",
        help="Serve DeleteTaskHub and "
        "CreateTaskHub(recreateIfExists), which wipe the hub under every running engine; "
        "refused (PERMISSION_DENIED) without this flag, since any local process can call "
        "the sidecar.",
    ),
    shared_partitions: bool = typer.Option(
        False,
        "--shared-partitions",
        help="Receive every control queue instead of leasing "
        "partitions (set it on every sidecar of the hub): when the SDK workers of different "
        "sidecars have different work-item filters or versions, an orchestration one "
        "sidecar cannot run reaches another. Costs more polling and commit races.",
    ),
    grace: float = GRACE_OPTION,
    log_level: str = LOG_LEVEL_OPTION,
    log_format: str = LOG_FORMAT_OPTION,
    metrics_port: int | None = METRICS_PORT_OPTION,
    connection_string: ConnectionStringOption = None,
    task_hub: TaskHubOption = None,
    partition_count: PartitionCountOption = None,
    debug: DebugOption = False,
) -> None:
    """Serve the task hub to the portable Durable Task SDKs over gRPC until Ctrl-C or SIGTERM.

    Point TaskHubGrpcClient / TaskHubGrpcWorker (host_address="HOST:PORT") at it. Needs the
    "sidecar" extra of durable-azstorage (grpcio and durabletask).
    """
    configure_logging(log_level, log_format)
    try:
        from durable_azstorage.sidecar.server import (
            ListenError,  # fails without the extra
        )
    except ImportError as exc:
        if not (exc.name or "").startswith(_SIDECAR_PACKAGES):
            raise
        missing = (exc.name or "").split(".")[0]
        typer.echo(f"error: {SIDECAR_EXTRA_HINT} (missing module {missing!r})", err=True)
        raise typer.Exit(EXIT_FAILURE) from None
    connection = Connection(connection_string, task_hub, partition_count)
    with reporting(debug), resolve(connection) as target:
        typer.echo(
            f"sidecar starting on task hub {target.settings.task_hub!r} ({host}:{port})", err=True
        )
        settings = target.settings
        if shared_partitions:
            settings = dataclasses.replace(settings, shared_partitions=True)
        try:
            asyncio.run(
                run_sidecar(
                    settings,
                    host=host,
                    port=port,
                    create_hub=create_hub or target.local,
                    grace=grace,
                    allow_hub_management=allow_hub_management,
                    metrics_port=metrics_port,
                )
            )
        except TaskHubNotFoundError as exc:
            raise CliError(f"{exc} (or pass --create-hub)", EXIT_NOT_FOUND) from None
        except ListenError as exc:
            raise CliError(str(exc), EXIT_FAILURE) from None
        typer.echo("sidecar stopped", err=True)
