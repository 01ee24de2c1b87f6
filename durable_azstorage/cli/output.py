"""What the CLI prints: rich tables for people, JSON for scripts, one-line errors.

Every command runs inside ``reporting(debug)``, which turns exceptions into one ``error: ...``
line on stderr and the documented exit code (tracebacks only with ``--debug``):

====  ==========================================================================
0     success
1     failure (storage error, refused operation, timeout, unexpected error)
2     usage (bad option value, bad JSON, missing ``--yes`` without a terminal)
3     not found (unknown instance, or the task hub does not exist)
====  ==========================================================================
"""

from __future__ import annotations

import dataclasses
import enum
import json
import sys
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn
from rich.table import Table

from durable_azstorage.client.state import OrchestrationState
from durable_azstorage.model.errors import (
    DurableTaskError,
    InvalidOperationError,
    OrchestrationNotFoundError,
    TaskHubNotFoundError,
)
from durable_azstorage.model.history import HistoryEvent

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_NOT_FOUND = 3

EXIT_CODES_HELP = (
    "Exit codes: 0 ok, 1 failure, 2 usage error, 3 not found (unknown instance or task hub)."
)


class CliError(Exception):
    """An expected failure with its exit code; printed as one line."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def confirm(yes: bool, question: str, option_hint: str) -> None:
    """Proceed with ``--yes``; ask on a terminal; refuse (exit 2) without one."""
    if yes:
        return
    if not sys.stdin.isatty():
        raise CliError(
            f"{option_hint} needs confirmation: pass --yes (stdin is not a terminal)", EXIT_USAGE
        )
    if not typer.confirm(question, default=False, err=True):
        raise CliError("aborted, nothing changed", EXIT_FAILURE)


def _one_line(text: str) -> str:
    first = text.strip().splitlines()
    return first[0] if first else ""


def _classify(exc: BaseException) -> tuple[int, str]:
    """Exit code and message for an exception a command let escape."""
    if isinstance(exc, CliError):
        return exc.exit_code, str(exc)
    if isinstance(exc, (OrchestrationNotFoundError, TaskHubNotFoundError)):
        return EXIT_NOT_FOUND, str(exc)
    if isinstance(exc, InvalidOperationError):  # a ValueError, but not a usage error
        return EXIT_FAILURE, str(exc)
    if isinstance(exc, DurableTaskError):
        return EXIT_FAILURE, str(exc)
    if isinstance(exc, TimeoutError):
        return EXIT_FAILURE, str(exc) or "timed out"
    if isinstance(exc, ValueError):
        return EXIT_USAGE, str(exc)
    azure = _classify_azure(exc)
    if azure is not None:
        return azure
    return (
        EXIT_FAILURE,
        f"{type(exc).__name__}: {_one_line(str(exc))} (rerun with --debug for details)",
    )


def is_missing_resource(exc: BaseException) -> bool:
    """True for the storage SDK's 404 (a table, queue or container of the hub is missing)."""
    if "azure" not in sys.modules:
        return False
    from azure.core.exceptions import ResourceNotFoundError

    return isinstance(exc, ResourceNotFoundError)


def _classify_azure(exc: BaseException) -> tuple[int, str] | None:
    if "azure" not in sys.modules:  # the SDK was never loaded, so this is not one of its errors
        return None
    from azure.core.exceptions import (
        AzureError,
        ResourceNotFoundError,
        ServiceRequestError,
    )

    if isinstance(exc, ResourceNotFoundError):
        return EXIT_NOT_FOUND, (
            f"storage resource not found ({_one_line(exc.message or str(exc))}); "
            "does the task hub exist? create it with `durable-azstorage hub create -t HUB`"
        )
    if isinstance(exc, ServiceRequestError):
        return EXIT_FAILURE, f"cannot reach the storage account: {_one_line(str(exc))}"
    if isinstance(exc, AzureError):
        return EXIT_FAILURE, f"storage error: {_one_line(exc.message or str(exc))}"
    return None


@contextmanager
def reporting(debug: bool) -> Iterator[None]:
    """Run a command body: exceptions become one ``error:`` line and an exit code."""
    try:
        yield
    except (typer.Exit, typer.Abort, SystemExit):
        raise
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        raise typer.Exit(130) from None
    except Exception as exc:
        code, message = _classify(exc)
        if debug:
            traceback.print_exc(file=sys.stderr)
        flat = " ".join(line.strip() for line in message.splitlines() if line.strip())
        typer.echo(f"error: {flat}", err=True)
        raise typer.Exit(code) from None


# --- JSON -------------------------------------------------------------------------------------
def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    return str(value)


def print_json(value: Any) -> None:
    """One JSON document on stdout (datetimes ISO 8601, enums by value)."""
    typer.echo(json.dumps(value, default=_default, ensure_ascii=False))


def payload(text: str | None) -> Any:
    """A stored payload as a JSON value (the raw text if it is not JSON)."""
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


def state_to_dict(state: OrchestrationState, *, payloads: bool) -> dict[str, Any]:
    """The JSON view of an instance; payloads decoded from their stored JSON text."""
    out: dict[str, Any] = {
        "instance_id": state.instance_id,
        "name": state.name,
        "runtime_status": state.runtime_status.value,
        "created_at": state.created_at,
        "last_updated_at": state.last_updated_at,
        "completed_at": state.completed_at,
        "version": state.version,
        "tags": state.tags,
        "parent_instance_id": state.parent_instance_id,
        "failure_details": state.failure_details,
    }
    if payloads:
        out["input"] = payload(state.serialized_input)
        out["output"] = payload(state.serialized_output)
        out["custom_status"] = payload(state.serialized_custom_status)
    return out


def event_to_dict(event: HistoryEvent) -> dict[str, Any]:
    """A history event as JSON: ``type`` plus its fields (payload fields decoded)."""
    out: dict[str, Any] = {"type": type(event).__name__}
    for f in dataclasses.fields(event):
        value = getattr(event, f.name)
        out[f.name] = payload(value) if f.name in ("input", "result", "data") else value
    return out


# --- progress -------------------------------------------------------------------------------
@contextmanager
def counting(description: str) -> Iterator[Callable[[int], None]]:
    """A transient spinner with a running count on stderr, only when stderr is a terminal."""
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}: {task.completed}"),
        console=Console(stderr=True),
        transient=True,
        disable=not sys.stderr.isatty(),
    ) as bar:
        task = bar.add_task(description, total=None)
        yield lambda n: bar.update(task, advance=n)


# --- tables -----------------------------------------------------------------------------------
def _console() -> Console:
    # Markup off: instance ids and payloads may contain [brackets]. Wide when piped, so
    # ids are not folded for grep.
    return Console(markup=False, highlight=False, width=None if sys.stdout.isatty() else 240)


def _when(value: datetime | None) -> str:
    return "" if value is None else value.strftime("%Y-%m-%d %H:%M:%S")


def print_states(states: Sequence[OrchestrationState]) -> None:
    """A table of instances (no payloads)."""
    table = Table(show_edge=False, pad_edge=False)
    for column in ("instance id", "name", "status", "created (UTC)", "last updated (UTC)"):
        table.add_column(column, overflow="fold")
    for s in states:
        table.add_row(
            s.instance_id,
            s.name,
            s.runtime_status.value,
            _when(s.created_at),
            _when(s.last_updated_at),
        )
    _console().print(table)


def _pretty(text: str | None) -> str:
    if text is None:
        return "-"
    try:
        value = json.loads(text)
    except ValueError:  # not JSON: show as stored
        return text
    return json.dumps(value, indent=2, ensure_ascii=False)


def print_state(state: OrchestrationState) -> None:
    """One instance with its payloads, as a two-column table."""
    table = Table(show_header=False, show_edge=False, pad_edge=False, box=None)
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    rows: list[tuple[str, str]] = [
        ("instance id", state.instance_id),
        ("name", state.name),
        ("status", state.runtime_status.value),
        ("created", _when(state.created_at)),
        ("last updated", _when(state.last_updated_at)),
        ("completed", _when(state.completed_at) or "-"),
    ]
    if state.version:
        rows.append(("version", state.version))
    if state.parent_instance_id:
        rows.append(("parent", state.parent_instance_id))
    if state.tags:
        rows.append(("tags", ", ".join(f"{k}={v}" for k, v in sorted(state.tags.items()))))
    rows += [
        ("input", _pretty(state.serialized_input)),
        ("output", _pretty(state.serialized_output)),
        ("custom status", _pretty(state.serialized_custom_status)),
    ]
    if state.failure_details is not None:
        fd = state.failure_details
        rows.append(("failure", f"{fd.error_type}: {fd.message}"))
    for key, value in rows:
        table.add_row(key, value)
    _console().print(table)


def _summary(event: HistoryEvent) -> str:
    parts = []
    for f in dataclasses.fields(event):
        if f.name in ("event_id", "timestamp"):
            continue
        value = getattr(event, f.name)
        if value is None or value == "" or (f.name == "generation" and value == 0):
            continue
        if isinstance(value, datetime):
            value = value.isoformat()
        elif isinstance(value, enum.Enum):
            value = value.value
        elif dataclasses.is_dataclass(value):
            value = _default(value)
        parts.append(f"{f.name}={value}")
    return ", ".join(parts)


def print_history(events: Sequence[HistoryEvent]) -> None:
    """A table of history events, oldest first."""
    table = Table(show_edge=False, pad_edge=False)
    table.add_column("#", justify="right")
    table.add_column("timestamp (UTC)")
    table.add_column("event")
    table.add_column("id", justify="right")
    table.add_column("details", overflow="fold")
    for index, event in enumerate(events):
        table.add_row(
            str(index),
            event.timestamp.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3],
            type(event).__name__,
            "" if event.event_id < 0 else str(event.event_id),
            _summary(event),
        )
    _console().print(table)
