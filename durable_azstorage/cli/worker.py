"""``durable-azstorage worker --app module:attr``: run a worker defined in the user's module.

``attr`` is a ``TaskHubWorker`` or a zero-argument function returning one. The connection
options are resolved first and exported as ``DURABLE_AZSTORAGE_*`` variables *before* the module
is imported, so a module that builds ``TaskHubWorker(AzureStorageSettings.from_env())`` runs
against what the command line named (or against the temporary Azurite started when nothing is
configured; the hub is then created, since that Azurite starts empty).

Ctrl-C or SIGTERM stops gracefully: no new work is fetched, in-flight work gets ``--grace``
seconds, then the process exits 0. A second signal exits at once (locked work is redelivered
after its lock expires).
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import sys
from datetime import timedelta
from pathlib import Path

import typer

from durable_azstorage.backend.protocol import NamedHub, SettingsBacked
from durable_azstorage.cli.connection import (
    Connection,
    ConnectionStringOption,
    DebugOption,
    PartitionCountOption,
    TaskHubOption,
    export_to_environment,
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
    EXIT_NOT_FOUND,
    EXIT_USAGE,
    CliError,
    reporting,
)
from durable_azstorage.model.errors import TaskHubNotFoundError
from durable_azstorage.worker.worker import TaskHubWorker


def load_worker(ref: str, app_dir: Path) -> TaskHubWorker:
    """Import ``module:attr`` (``attr`` may be dotted) and return the worker it names."""
    module_name, sep, attr = ref.partition(":")
    if not sep or not module_name or not attr:
        raise CliError(
            f"--app: expected MODULE:ATTRIBUTE such as myapp.workers:worker, got {ref!r}",
            EXIT_USAGE,
        )
    folder = str(app_dir.resolve())
    if folder not in sys.path:
        sys.path.insert(0, folder)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is None or not module_name.startswith(exc.name):
            raise  # the module exists but imports something missing: a real failure
        raise CliError(
            f"--app: cannot import module {module_name!r} from {folder} or sys.path; "
            "run from its folder or pass --app-dir",
            EXIT_USAGE,
        ) from None
    target: object = module
    for part in attr.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise CliError(
                f"--app: module {module_name!r} has no attribute {attr!r}", EXIT_USAGE
            ) from None
    if isinstance(target, TaskHubWorker):
        return target
    if callable(target) and not isinstance(target, type):
        try:
            inspect.signature(target).bind()
        except TypeError:
            raise CliError(
                f"--app: {ref} needs arguments {inspect.signature(target)}; name a TaskHubWorker "
                "or a zero-argument function returning one",
                EXIT_USAGE,
            ) from None
        except ValueError:  # no signature available (some builtins): just call it
            pass
        made = target()
        if isinstance(made, TaskHubWorker):
            return made
        raise CliError(
            f"--app: {ref} returned a {type(made).__name__}, not a TaskHubWorker", EXIT_USAGE
        )
    raise CliError(
        f"--app: {ref} is a {type(target).__name__}, not a TaskHubWorker or a zero-argument "
        "function returning one",
        EXIT_USAGE,
    )


async def serve(
    worker: TaskHubWorker,
    *,
    create_hub: bool,
    grace: float,
    metrics_port: int | None = None,
    settings: object = None,
    started_message: str | None = None,
) -> None:
    """Run ``worker`` until SIGINT/SIGTERM, then stop it gracefully."""
    async with exposed_metrics(metrics_port, settings):
        await _serve(worker, create_hub=create_hub, grace=grace, started_message=started_message)


STOPS_GRACEFULLY = "Ctrl-C or SIGTERM stops it"


async def _serve(
    worker: TaskHubWorker, *, create_hub: bool, grace: float, started_message: str | None
) -> None:
    with stop_on_signal(f"stopping: finishing in-flight work (up to {grace:g}s)") as stop:
        if started_message is not None:
            # printed once a signal stops gracefully: a supervisor may wait for this line
            typer.echo(started_message, err=True)
        if create_hub:
            await create_hub_or_close(worker.backend)
        run = asyncio.ensure_future(worker.run_async())
        stopped = asyncio.ensure_future(stop.wait())
        await asyncio.wait({run, stopped}, return_when=asyncio.FIRST_COMPLETED)
        if not run.done():
            # Ask until run_async has seen it (a signal may arrive while it is starting).
            while not run.done():
                await worker.stop_async(timedelta(seconds=grace))
                await asyncio.wait({run}, timeout=0.2)
        stopped.cancel()
        run.result()  # start-up errors (e.g. missing task hub) surface here


def worker(
    app_ref: str = typer.Option(
        ...,
        "--app",
        "-a",
        help="MODULE:ATTRIBUTE naming a TaskHubWorker or a zero-argument function returning one.",
        show_default=False,
    ),
    app_dir: Path = typer.Option(
        Path("."), "--app-dir", help="Folder to import the module from (added to sys.path)."
    ),
    create_hub: bool = CREATE_HUB_OPTION,
    grace: float = GRACE_OPTION,
    log_level: str = LOG_LEVEL_OPTION,
    log_format: str = LOG_FORMAT_OPTION,
    metrics_port: int | None = METRICS_PORT_OPTION,
    connection_string: ConnectionStringOption = None,
    task_hub: TaskHubOption = None,
    partition_count: PartitionCountOption = None,
    debug: DebugOption = False,
) -> None:
    """Run the worker defined in your module until Ctrl-C or SIGTERM (graceful stop, exit 0).

    The connection (options, environment, or a temporary Azurite) is exported as
    DURABLE_AZSTORAGE_* variables before your module is imported: build the worker with
    TaskHubWorker(AzureStorageSettings.from_env()).
    """
    configure_logging(log_level, log_format)
    connection = Connection(connection_string, task_hub, partition_count)
    with reporting(debug), resolve(connection) as target:
        export_to_environment(connection, target)
        loaded = load_worker(app_ref, app_dir)
        used = loaded.backend  # the module's settings, else the ones exported to it
        settings = used.settings if isinstance(used, SettingsBacked) else target.settings
        hub = settings.task_hub if isinstance(settings, NamedHub) else "?"
        try:
            asyncio.run(
                serve(
                    loaded,
                    create_hub=create_hub or target.local,
                    grace=grace,
                    metrics_port=metrics_port,
                    settings=settings,
                    started_message=f"worker {app_ref} starting on task hub {hub!r}; "
                    + STOPS_GRACEFULLY,
                )
            )
        except TaskHubNotFoundError as exc:
            raise CliError(f"{exc} (or pass --create-hub)", EXIT_NOT_FOUND) from None
        typer.echo("worker stopped", err=True)
