"""``durable-azstorage bench ...``: measure the engine (throughput, latency, cost, scale-out).

Every scenario runs against the configured account (``--connection-string`` or the
``DURABLE_AZSTORAGE_*`` environment) or, with none, against an Azurite started for the run
on disk; each creates its own uniquely named task hub and deletes it afterwards. Results are
printed as a table (stdout) with the machine, storage and settings; ``--json`` prints them as
JSON instead (for scripts) and ``--json-file FILE`` also writes that JSON to a file, which
``bench report`` draws as plots. Progress goes to stderr.

``--json FILE`` (the old spelling of ``--json-file``) still works, with a warning: typer has
no option that is a flag or takes a value, so the path arrives as an extra argument.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)

from durable_azstorage.bench.environment import StorageTarget, storage_target
from durable_azstorage.bench.report import Report
from durable_azstorage.cli.bench_report import report
from durable_azstorage.cli.connection import ConnectionStringOption, DebugOption
from durable_azstorage.cli.output import EXIT_USAGE, CliError, print_json, reporting

app = typer.Typer(no_args_is_help=True, help=__doc__)

JSON_OPTION: Any = typer.Option(False, "--json", help="Print the results as JSON (no table).")
JSON_FILE_OPTION: Any = typer.Option(
    None, "--json-file", dir_okay=False, help="Also write the results as JSON to this file."
)
# No positional arguments: an extra one can only be the path of the old ``--json FILE``.
SCENARIO: dict[str, Any] = {"context_settings": {"allow_extra_args": True}}
PARTITIONS_OPTION: Any = typer.Option(
    4,
    "--partition-count",
    "-p",
    min=1,
    max=16,
    help="Partitions (control queues) of the bench hubs.",
)
POLL_OPTION: Any = typer.Option(
    10.0, "--max-poll-interval", min=0.05, help="Seconds: upper bound of the idle poll back-off."
)
IN_MEMORY_OPTION: Any = typer.Option(
    False,
    "--in-memory",
    help="Auto-started Azurite in memory instead of on disk (stalls after heavy churn).",
)

Scenario = Callable[[StorageTarget, Progress], Coroutine[Any, Any, Report]]


def _run(
    scenario: Scenario,
    *,
    json: JsonRequest,
    connection_string: str | None,
    partition_count: int = 4,
    max_poll_interval: float = 10.0,
    in_memory: bool = False,
    debug: bool = False,
) -> None:
    logging.getLogger("azure").setLevel(logging.WARNING)
    out = Console()
    if not out.is_terminal:  # files and pipes: wide enough for the operation names
        out = Console(width=120)
    err = Console(stderr=True)
    with reporting(debug):
        to_stdout, json_path = json.resolve(err)
        if json_path is not None and not json_path.parent.is_dir():
            raise CliError(f"--json-file: folder {json_path.parent} does not exist", EXIT_USAGE)
        err.print(
            "[dim]bench: connecting (an Azurite is started if no account is configured)[/dim]"
        )
        overrides = {
            "partition_count": partition_count,
            "max_poll_interval": timedelta(seconds=max_poll_interval),
        }
        with storage_target(connection_string, in_memory=in_memory, **overrides) as target:
            columns = (
                SpinnerColumn(),
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
            )
            with Progress(*columns, console=err, transient=True) as progress:
                report = asyncio.run(scenario(target, progress))
        if to_stdout:
            print_json(report.as_json())
        else:
            report.print(out)
        if json_path is not None:
            report.write_json(json_path)
            err.print(f"results written to {json_path}")


@dataclass(frozen=True)
class JsonRequest:
    """What ``--json`` / ``--json-file`` (and stray arguments) asked for."""

    ctx: typer.Context
    flag: bool
    file: Path | None

    def resolve(self, err: Console) -> tuple[bool, Path | None]:
        """(print JSON to stdout?, file to write) — accepting the old ``--json FILE``."""
        extra = list(self.ctx.args)
        if self.flag and len(extra) == 1 and self.file is None:
            err.print(
                f"warning: `--json {extra[0]}` is deprecated; it means "
                f"`--json-file {extra[0]}` (`--json` alone prints JSON)",
                markup=False,
                highlight=False,
                soft_wrap=True,
            )
            return False, Path(extra[0])
        if extra:
            raise CliError(f"unexpected argument(s): {' '.join(extra)}", EXIT_USAGE)
        return self.flag, self.file


@app.command(**SCENARIO)
def sequence(
    ctx: typer.Context,
    count: int = typer.Option(20, "--count", "-n", min=1, help="Orchestrations per run."),
    compare_sessions: bool = typer.Option(
        True,
        "--compare-sessions/--sessions-only",
        help="Run with extended sessions on and off and report the ratio.",
    ),
    with_ceiling: bool = typer.Option(
        False,
        "--with-ceiling",
        help="Measure the request ceiling first (as `bench ceiling`) and report each run's "
        "storage requests/s as a ratio to it.",
    ),
    ceiling_count: int | None = typer.Option(
        None,
        "--ceiling-count",
        min=1,
        help="Messages of the --with-ceiling measurement [default: --count, at least 200: "
        "about the deepest the run's queues get].",
    ),
    as_json: bool = JSON_OPTION,
    json_file: Optional[Path] = JSON_FILE_OPTION,  # noqa: UP045 - typer needs Optional on 3.10
    partition_count: int = PARTITIONS_OPTION,
    max_poll_interval: float = POLL_OPTION,
    in_memory: bool = IN_MEMORY_OPTION,
    connection_string: ConnectionStringOption = None,
    debug: DebugOption = False,
) -> None:
    """N orchestrations x 5 sequential activities: orchestrations/s, activities/s, latency."""
    from durable_azstorage.bench.throughput import sequence as scenario

    _run(
        lambda t, p: scenario(
            t,
            p,
            count=count,
            compare_sessions=compare_sessions,
            ceiling_count=(ceiling_count or max(200, count)) if with_ceiling else None,
        ),
        json=JsonRequest(ctx, as_json, json_file),
        connection_string=connection_string,
        partition_count=partition_count,
        max_poll_interval=max_poll_interval,
        in_memory=in_memory,
        debug=debug,
    )


@app.command(**SCENARIO)
def ceiling(
    ctx: typer.Context,
    count: int = typer.Option(
        1000,
        "--count",
        "-n",
        min=1,
        help="Messages put, received and deleted; count/4 table batches.",
    ),
    concurrency: int = typer.Option(
        32, "--concurrency", min=1, max=256, help="Requests in flight."
    ),
    batch_rows: int = typer.Option(
        4, "--batch-rows", min=1, max=100, help="Upserts per entity-group transaction."
    ),
    as_json: bool = JSON_OPTION,
    json_file: Path | None = JSON_FILE_OPTION,
    in_memory: bool = IN_MEMORY_OPTION,
    connection_string: ConnectionStringOption = None,
    debug: DebugOption = False,
) -> None:
    """Raw storage requests/s from this process: queue put/get/delete, table batches."""
    from durable_azstorage.bench.ceiling import ceiling as scenario

    _run(
        lambda t, p: scenario(t, p, count=count, concurrency=concurrency, batch_rows=batch_rows),
        json=JsonRequest(ctx, as_json, json_file),
        connection_string=connection_string,
        in_memory=in_memory,
        debug=debug,
    )


@app.command(**SCENARIO)
def fanout(
    ctx: typer.Context,
    size: int = typer.Option(1000, "--size", "-s", min=1, help="Parallel activities."),
    activity_prefetch: int | None = typer.Option(
        None,
        "--activity-prefetch",
        min=1,
        max=32,
        help="Experiment: work-item messages per receive (backend default otherwise).",
    ),
    as_json: bool = JSON_OPTION,
    json_file: Path | None = JSON_FILE_OPTION,
    partition_count: int = PARTITIONS_OPTION,
    max_poll_interval: float = POLL_OPTION,
    in_memory: bool = IN_MEMORY_OPTION,
    connection_string: ConnectionStringOption = None,
    debug: DebugOption = False,
) -> None:
    """One orchestration with --size parallel activities: time to completion."""
    from durable_azstorage.bench.throughput import fanout as scenario

    _run(
        lambda t, p: scenario(t, p, size=size, activity_prefetch=activity_prefetch),
        json=JsonRequest(ctx, as_json, json_file),
        connection_string=connection_string,
        partition_count=partition_count,
        max_poll_interval=max_poll_interval,
        in_memory=in_memory,
        debug=debug,
    )


@app.command(**SCENARIO)
def latency(
    ctx: typer.Context,
    idle: float = typer.Option(10.0, "--idle", min=0.0, help="Seconds the worker idles first."),
    repeat: int = typer.Option(3, "--repeat", "-r", min=1, help="Samples per client mode."),
    compare_shared: bool = typer.Option(
        True,
        "--compare-shared/--separate-only",
        help="Also measure a client sharing the worker's backend (in-process wake-up).",
    ),
    as_json: bool = JSON_OPTION,
    json_file: Path | None = JSON_FILE_OPTION,
    partition_count: int = PARTITIONS_OPTION,
    max_poll_interval: float = POLL_OPTION,
    in_memory: bool = IN_MEMORY_OPTION,
    connection_string: ConnectionStringOption = None,
    debug: DebugOption = False,
) -> None:
    """Single-activity orchestration after the worker idled: start-to-completion latency."""
    from durable_azstorage.bench.latency import latency as scenario

    _run(
        lambda t, p: scenario(t, p, idle=idle, repeat=repeat, compare_shared=compare_shared),
        json=JsonRequest(ctx, as_json, json_file),
        connection_string=connection_string,
        partition_count=partition_count,
        max_poll_interval=max_poll_interval,
        in_memory=in_memory,
        debug=debug,
    )


@app.command(**SCENARIO)
def cost(
    ctx: typer.Context,
    count: int = typer.Option(10, "--count", "-n", min=1, help="Orchestrations to measure."),
    settle: float = typer.Option(
        25.0, "--settle", min=0.0, help="Seconds to let the poll back-off reach its maximum."
    ),
    idle_window: float = typer.Option(
        30.0, "--idle-window", min=0.0, help="Seconds of idle requests to count (0: skip)."
    ),
    as_json: bool = JSON_OPTION,
    json_file: Path | None = JSON_FILE_OPTION,
    partition_count: int = PARTITIONS_OPTION,
    max_poll_interval: float = POLL_OPTION,
    in_memory: bool = IN_MEMORY_OPTION,
    connection_string: ConnectionStringOption = None,
    debug: DebugOption = False,
) -> None:
    """Storage requests per orchestration and per activity, and idle requests per minute."""
    from durable_azstorage.bench.cost import cost as scenario

    _run(
        lambda t, p: scenario(t, p, count=count, settle=settle, idle_window=idle_window),
        json=JsonRequest(ctx, as_json, json_file),
        connection_string=connection_string,
        partition_count=partition_count,
        max_poll_interval=max_poll_interval,
        in_memory=in_memory,
        debug=debug,
    )


@app.command(**SCENARIO)
def scale(
    ctx: typer.Context,
    count: int = typer.Option(40, "--count", "-n", min=1, help="Orchestrations per run."),
    processes: str = typer.Option("1,2,4", "--processes", help="Worker process counts."),
    settle: float = typer.Option(
        2.0, "--settle", min=0.0, help="Seconds to wait after the partitions are spread."
    ),
    balance_timeout: float = typer.Option(
        60.0,
        "--balance-timeout",
        min=0.0,
        help="Seconds to wait until every process owns a partition before measuring.",
    ),
    as_json: bool = JSON_OPTION,
    json_file: Path | None = JSON_FILE_OPTION,
    partition_count: int = PARTITIONS_OPTION,
    max_poll_interval: float = POLL_OPTION,
    in_memory: bool = IN_MEMORY_OPTION,
    connection_string: ConnectionStringOption = None,
    debug: DebugOption = False,
) -> None:
    """The sequence scenario with 1, 2 and 4 worker processes; ratio to one process."""
    from durable_azstorage.bench.scale import scale as scenario

    with reporting(debug):
        counts = _process_counts(processes)
    _run(
        lambda t, p: scenario(
            t, p, count=count, processes=counts, settle=settle, balance_timeout=balance_timeout
        ),
        json=JsonRequest(ctx, as_json, json_file),
        connection_string=connection_string,
        partition_count=partition_count,
        max_poll_interval=max_poll_interval,
        in_memory=in_memory,
        debug=debug,
    )


def _process_counts(processes: str) -> list[int]:
    try:
        counts = [int(p) for p in processes.split(",") if p.strip()]
    except ValueError:
        raise CliError(
            f"--processes: expected numbers like 1,2,4, got {processes!r}", EXIT_USAGE
        ) from None
    if not counts or min(counts) < 1:
        raise CliError(f"--processes: expected numbers >= 1, got {processes!r}", EXIT_USAGE)
    return counts


app.command()(report)  # last in the help: it reads what the scenarios above write
