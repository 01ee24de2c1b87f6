"""``durable-azstorage bench report FILE.json ... --out report.html|.png|.svg``.

Draws result files written with ``--json-file`` (any scenarios, several runs side by side)
as plots: throughput, latency percentiles, storage requests by operation, and the runs'
storage requests/s next to the request ceiling (``bench ceiling`` or ``--with-ceiling``).
Needs the ``bench`` extra (matplotlib); says so when it is missing.
"""

from __future__ import annotations

from pathlib import Path

import typer

from durable_azstorage.cli.connection import DebugOption
from durable_azstorage.cli.output import EXIT_USAGE, CliError, reporting


def report(
    files: list[Path] = typer.Argument(
        ..., help="Result files written by --json-file.", dir_okay=False
    ),
    out: Path = typer.Option(
        ..., "--out", "-o", dir_okay=False, help="report.html (self-contained page), .png or .svg."
    ),
    debug: DebugOption = False,
) -> None:
    """Plot benchmark results (throughput, latency, requests by operation, ceiling)."""
    from durable_azstorage.bench import charts
    from durable_azstorage.bench.result_file import ResultFileError, load

    with reporting(debug):
        if not out.parent.is_dir():
            raise CliError(f"--out: folder {out.parent} does not exist", EXIT_USAGE)
        try:
            results = [load(f) for f in files]
        except ResultFileError as exc:
            raise CliError(str(exc), EXIT_USAGE) from None
        try:
            charts.write(results, out)
        except charts.MissingExtraError as exc:
            raise CliError(str(exc)) from None
        typer.echo(f"report written to {out}", err=True)
