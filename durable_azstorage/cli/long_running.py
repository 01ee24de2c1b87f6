"""What the long-running commands (``worker``, ``serve``, ``dashboard``) share: their options,
logging to stderr (text, or JSON lines with the task hub / partition / instance / execution
ids as fields), the Prometheus endpoint (``--metrics-port``), hub creation, and the signal
protocol.

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
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import TYPE_CHECKING

import typer

from durable_azstorage.azure.settings import AzureStorageSettings
from durable_azstorage.cli.hub_monitor import AzureHubMonitor
from durable_azstorage.cli.output import EXIT_FAILURE, EXIT_USAGE, CliError
from durable_azstorage.telemetry.logs import JsonFormatter, LogFields
from durable_azstorage.telemetry.metrics import HubGauges
from durable_azstorage.telemetry.prometheus import MetricsUnavailable, start_prometheus_endpoint

if TYPE_CHECKING:
    from durable_azstorage.backend.protocol import Backend

CREATE_HUB_OPTION: bool = typer.Option(
    False,
    "--create-hub",
    help="Create the task hub first if it does not exist "
    "(always done on a temporary local Azurite).",
)
GRACE_OPTION: float = typer.Option(
    30.0, "--grace", min=0.0, help="Seconds in-flight work may take to finish on stop."
)
LOG_LEVEL_OPTION: str = typer.Option("INFO", "--log-level", help="Logging level (stderr).")
LOG_FORMAT_OPTION: str = typer.Option(
    "text",
    "--log-format",
    help="Log lines as text, or as JSON objects (one per line) carrying "
    "task_hub, partition, instance_id and execution_id as fields.",
)
METRICS_PORT_OPTION: int | None = typer.Option(
    None,
    "--metrics-port",
    min=0,
    max=65535,
    show_default=False,
    help="Serve OpenTelemetry metrics in Prometheus format on this port (all interfaces, "
    "path /metrics), with the hub's queue backlogs sampled every 10 s. Needs the otel extra.",
)
_LOG_FORMATS = ("text", "json")

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def configure_logging(log_level: str, log_format: str = "text") -> None:
    """Log to stderr at ``log_level`` as ``log_format``; an unknown level or format is a usage
    error naming the option."""
    level = logging.getLevelName(log_level.upper())
    if not isinstance(level, int):
        typer.echo(f"error: --log-level: unknown level {log_level!r}", err=True)
        raise typer.Exit(EXIT_USAGE)
    if log_format not in _LOG_FORMATS:
        typer.echo(
            f"error: --log-format: expected one of {', '.join(_LOG_FORMATS)}, got {log_format!r}",
            err=True,
        )
        raise typer.Exit(EXIT_USAGE)
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(LogFields())
    handler.setFormatter(
        JsonFormatter()
        if log_format == "json"
        else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    logging.basicConfig(level=level, handlers=[handler])
    # The Azure SDK logs every HTTP request at INFO; show its warnings unless asked for DEBUG.
    logging.getLogger("azure").setLevel(
        level if level <= logging.DEBUG else max(level, logging.WARNING)
    )


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
            typer.echo(
                "exiting at once; locked work is redelivered when its lock expires", err=True
            )
            os._exit(EXIT_FAILURE)

    for sig in _SIGNALS:
        loop.add_signal_handler(sig, on_signal)
    try:
        yield stop
    finally:
        for sig in _SIGNALS:
            loop.remove_signal_handler(sig)


@asynccontextmanager
async def exposed_metrics(port: int | None, settings: object) -> AsyncIterator[None]:
    """With a ``port``: serve Prometheus metrics for the block and, for an Azure task hub,
    sample its queues and leases for the hub gauges. A missing extra or a taken port is an
    error naming ``--metrics-port``."""
    if port is None:
        yield
        return
    try:
        endpoint = start_prometheus_endpoint(port)
    except MetricsUnavailable as exc:
        raise CliError(f"--metrics-port: {exc}", EXIT_FAILURE) from None
    typer.echo(f"metrics on port {endpoint.port} (/metrics)", err=True)
    monitor = AzureHubMonitor(settings) if isinstance(settings, AzureStorageSettings) else None
    sampling = (
        asyncio.ensure_future(HubGauges(monitor.sample).run()) if monitor is not None else None
    )
    try:
        yield
    finally:
        if sampling is not None:
            sampling.cancel()
            await asyncio.gather(sampling, return_exceptions=True)
        if monitor is not None:
            await monitor.close()
        endpoint.close()


async def create_hub_or_close(backend: Backend) -> None:
    """Create the task hub; on failure release the backend's storage clients, then raise."""
    try:
        await backend.create_task_hub()
    except BaseException:
        await backend.stop()
        raise
