"""``durable-azstorage poison list|show|replay|delete``: the quarantine of poison messages.

Messages delivered more than ``max_dequeue_count`` times, or that cannot be decoded, are set
aside in the hub's poison store (``azure.messaging.poison_store``) instead of being
redelivered forever. Operators inspect them, fix the cause, then ``replay`` (back onto the
original queue) or ``delete`` them (asks unless ``--yes``). Keys may be given in full
(``$poison/<queue>/<id>.json``) or short (``<queue>/<id>``), as ``list`` prints them. An
unknown key exits 3.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from durable_azstorage.cli.connection import (
    Connection,
    ConnectionStringOption,
    DebugOption,
    PartitionCountOption,
    TaskHubOption,
    resolve,
)
from durable_azstorage.cli.output import (
    EXIT_CODES_HELP,
    EXIT_FAILURE,
    EXIT_NOT_FOUND,
    EXIT_USAGE,
    CliError,
    print_json,
    reporting,
)

if TYPE_CHECKING:  # the Azure SDK is imported only when a command runs (fast --help)
    from durable_azstorage.azure.messaging.poison_store import PoisonRecord
    from durable_azstorage.azure.provider import AzureStorageBackend

app = typer.Typer(no_args_is_help=True, epilog=EXIT_CODES_HELP)
T = TypeVar("T")

_JSON = typer.Option(False, "--json", help="Print JSON (for scripts).")
_KEY = typer.Argument(..., help="Poison key, as `poison list` prints it.", show_default=False)
_PREFIX = "$poison/"
_SUFFIX = ".json"


def full_key(key: str) -> str:
    """Accept ``<queue>/<id>`` as well as the stored key."""
    key = key.strip()
    if not key:
        raise CliError("the poison key must not be empty", EXIT_USAGE)
    if not key.startswith(_PREFIX):
        key = _PREFIX + key
    return key if key.endswith(_SUFFIX) else key + _SUFFIX


def short_key(key: str) -> str:
    return key.removeprefix(_PREFIX).removesuffix(_SUFFIX)


def _run(
    debug: bool,
    connection_string: str | None,
    task_hub: str | None,
    partition_count: int | None,
    action: Callable[[AzureStorageBackend], Awaitable[T]],
) -> T:
    """Run ``action`` on a (not started) backend for the resolved hub; errors are one line."""
    from durable_azstorage.azure.provider import AzureStorageBackend

    async def go() -> T:
        backend = AzureStorageBackend(target.settings)
        try:
            return await action(backend)
        finally:
            await backend.stop()

    connection = Connection(connection_string, task_hub, partition_count)
    with reporting(debug), resolve(connection) as target:
        return asyncio.run(go())
    raise AssertionError("unreachable")  # pragma: no cover - reporting re-raises as Exit


def _record_dict(record: PoisonRecord, *, body: bool) -> dict[str, Any]:
    out: dict[str, Any] = {
        "key": short_key(record.key),
        "queue": record.queue_name,
        "message_id": record.message_id,
        "instance_id": record.instance_id,
        "dequeue_count": record.dequeue_count,
        "reason": record.reason,
        "quarantined_at": record.quarantined_at.isoformat(),
    }
    if body:
        out["body"] = record.body
    return out


@app.command("list")
def list_(
    as_json: bool = _JSON,
    connection_string: ConnectionStringOption = None,
    task_hub: TaskHubOption = None,
    partition_count: PartitionCountOption = None,
    debug: DebugOption = False,
) -> None:
    """List quarantined messages, oldest key first. JSON: a list of records (no bodies)."""

    async def action(backend: AzureStorageBackend) -> list[PoisonRecord]:
        return await backend.list_poison()

    records = _run(debug, connection_string, task_hub, partition_count, action)
    if as_json:
        print_json([_record_dict(r, body=False) for r in records])
        return
    table = Table(show_edge=False, pad_edge=False)
    for column in ("key", "instance id", "deliveries", "quarantined (UTC)", "reason"):
        table.add_column(column, overflow="fold")
    for r in records:
        table.add_row(
            short_key(r.key),
            r.instance_id or "-",
            str(r.dequeue_count),
            r.quarantined_at.strftime("%Y-%m-%d %H:%M:%S"),
            r.reason,
        )
    _console().print(table)
    typer.echo(f"{len(records)} poison message(s)", err=True)


@app.command()
def show(
    key: str = _KEY,
    as_json: bool = _JSON,
    connection_string: ConnectionStringOption = None,
    task_hub: TaskHubOption = None,
    partition_count: PartitionCountOption = None,
    debug: DebugOption = False,
) -> None:
    """Show one quarantined message with its original body."""
    wanted = full_key(key)

    async def action(backend: AzureStorageBackend) -> PoisonRecord | None:
        return await backend.get_poison(wanted)

    record = _run(debug, connection_string, task_hub, partition_count, action)
    if record is None:
        _fail(debug, f"no poison message {short_key(wanted)!r} in this task hub", EXIT_NOT_FOUND)
        return
    doc = _record_dict(record, body=True)
    if as_json:
        print_json(doc)
        return
    for name, value in doc.items():
        typer.echo(f"{name:>15}: {value}")


@app.command()
def replay(
    key: str = _KEY,
    connection_string: ConnectionStringOption = None,
    task_hub: TaskHubOption = None,
    partition_count: PartitionCountOption = None,
    debug: DebugOption = False,
) -> None:
    """Put a quarantined message back on its queue (after fixing its cause) and drop it here."""
    wanted = full_key(key)

    async def action(backend: AzureStorageBackend) -> bool:
        return await backend.replay_poison(wanted)

    if not _run(debug, connection_string, task_hub, partition_count, action):
        _fail(debug, f"no poison message {short_key(wanted)!r} in this task hub", EXIT_NOT_FOUND)
    typer.echo(f"replayed {short_key(wanted)}")


@app.command()
def delete(
    key: str = _KEY,
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
    connection_string: ConnectionStringOption = None,
    task_hub: TaskHubOption = None,
    partition_count: PartitionCountOption = None,
    debug: DebugOption = False,
) -> None:
    """Delete a quarantined message for good (its instance never gets it); asks unless --yes."""
    wanted = full_key(key)
    if not yes:
        if not sys.stdin.isatty():
            _fail(
                debug, "delete needs confirmation: pass --yes (stdin is not a terminal)", EXIT_USAGE
            )
        if not typer.confirm(
            f"delete poison message {short_key(wanted)}?", default=False, err=True
        ):
            _fail(debug, "aborted, nothing changed", EXIT_FAILURE)

    async def action(backend: AzureStorageBackend) -> bool:
        return await backend.delete_poison(wanted)

    if not _run(debug, connection_string, task_hub, partition_count, action):
        _fail(debug, f"no poison message {short_key(wanted)!r} in this task hub", EXIT_NOT_FOUND)
    typer.echo(f"deleted {short_key(wanted)}")


def _fail(debug: bool, message: str, code: int) -> None:
    with reporting(debug):
        raise CliError(message, code)


def _console() -> Console:
    """Markup off (ids may hold [brackets]); wide when piped so keys are not folded."""
    return Console(markup=False, highlight=False, width=None if sys.stdout.isatty() else 240)
