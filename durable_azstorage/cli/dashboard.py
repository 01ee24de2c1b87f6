"""``durable-azstorage dashboard``: the web dashboard of a task hub.

The connection is resolved like every other command (options, environment, or a temporary
local Azurite on which the hub is created). The one stdout line is the URL to open; the
rest goes to stderr. Bound to a non-loopback address it refuses to start without a token
(exit 2). Ctrl-C or SIGTERM stops it. Needs the "dashboard" extra (Jinja2).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

import typer

from durable_azstorage.azure.settings import ENV_PREFIX
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
    EXIT_USAGE,
    CliError,
    reporting,
)
from durable_azstorage.model.errors import TaskHubNotFoundError

if TYPE_CHECKING:
    from durable_azstorage.azure.provider import AzureStorageBackend
    from durable_azstorage.azure.settings import AzureStorageSettings

DASHBOARD_EXTRA_HINT = (
    'the dashboard needs the "dashboard" extra: pip install "durable-azstorage[dashboard]"'
)
TOKEN_ENV = ENV_PREFIX + "DASHBOARD_TOKEN"


async def run_dashboard(
    settings: AzureStorageSettings,
    *,
    host: str,
    port: int,
    read_only: bool,
    token: str | None,
    create_hub: bool,
    metrics_port: int | None = None,
) -> None:
    """Serve until SIGINT/SIGTERM; the backend and monitor are closed on the way out."""

    def ready(url: str) -> None:
        typer.echo(url)
        sys.stdout.flush()
        typer.echo(
            f"dashboard of task hub {settings.task_hub!r} at {url}"
            f"{' (read-only)' if read_only else ''}; Ctrl-C or SIGTERM stops it",
            err=True,
        )

    async with exposed_metrics(metrics_port, settings):
        await _serve_dashboard(settings, host, port, read_only, token, create_hub, ready)


async def _serve_dashboard(
    settings: AzureStorageSettings,
    host: str,
    port: int,
    read_only: bool,
    token: str | None,
    create_hub: bool,
    ready: Callable[[str], None],
) -> None:
    from durable_azstorage.azure.provider import AzureStorageBackend
    from durable_azstorage.cli.hub_monitor import AzureHubMonitor
    from durable_azstorage.dashboard.app import create_app
    from durable_azstorage.dashboard.server import serve_until

    with stop_on_signal("stopping the dashboard") as stop:
        backend = AzureStorageBackend(settings)
        if create_hub:
            await create_hub_or_close(backend)
        else:
            await _require_hub(backend)
        monitor = AzureHubMonitor(settings, backend.request_counter)
        try:
            app = create_app(backend, read_only=read_only, token=token, monitor=monitor)
            await serve_until(app, host, port, stop, ready)
        finally:
            await monitor.close()
            await backend.stop()


async def _require_hub(backend: AzureStorageBackend) -> None:
    """Fail at start (exit 3) rather than serve error pages for a hub that is not there."""
    try:
        await backend.get_task_hub_info()
    except TaskHubNotFoundError as exc:
        await backend.stop()
        raise CliError(f"{exc} (or pass --create-hub)", EXIT_NOT_FOUND) from None
    except BaseException:
        await backend.stop()
        raise


def dashboard(
    host: str = typer.Option(
        "127.0.0.1", "--host", help="Address to listen on (a non-loopback address needs --token)."
    ),
    port: int = typer.Option(8080, "--port", min=0, max=65535, help="Port (0: any free port)."),
    read_only: bool = typer.Option(
        False, "--read-only", help="Hide and refuse every action (terminate, purge, ...)."
    ),
    token: str | None = typer.Option(
        None,
        "--token",
        envvar=TOKEN_ENV,
        show_default=False,
        help=f"Require this token (bearer header or login) for every page and call "
        f"(default: {TOKEN_ENV}, which keeps it out of the process list).",
    ),
    create_hub: bool = CREATE_HUB_OPTION,
    log_level: str = LOG_LEVEL_OPTION,
    log_format: str = LOG_FORMAT_OPTION,
    metrics_port: int | None = METRICS_PORT_OPTION,
    connection_string: ConnectionStringOption = None,
    task_hub: TaskHubOption = None,
    partition_count: PartitionCountOption = None,
    debug: DebugOption = False,
) -> None:
    """Serve the web dashboard of the task hub until Ctrl-C or SIGTERM; prints its URL.

    Overview, instances with filters, instance detail with history and timeline, actions,
    poison messages, and a JSON API under /api/. Needs the "dashboard" extra (Jinja2).
    """
    configure_logging(log_level, log_format)
    with reporting(debug):
        try:
            from durable_azstorage.dashboard import rendering  # noqa: F401 - fails without the extra
        except ImportError as exc:
            raise CliError(
                f"{DASHBOARD_EXTRA_HINT} (missing module {exc.name!r})", EXIT_FAILURE
            ) from None
        from durable_azstorage.dashboard.server import BindRefused, check_bind

        try:
            check_bind(host, token)
        except BindRefused as exc:
            raise CliError(str(exc), EXIT_USAGE) from None
    connection = Connection(connection_string, task_hub, partition_count)
    with reporting(debug), resolve(connection) as target:
        asyncio.run(
            run_dashboard(
                target.settings,
                host=host,
                port=port,
                read_only=read_only,
                token=token,
                create_hub=create_hub or target.local,
                metrics_port=metrics_port,
            )
        )
        typer.echo("dashboard stopped", err=True)
