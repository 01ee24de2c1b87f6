"""Drawing ``bench report``: the panels as one PNG, SVG, or a self-contained HTML page.

matplotlib comes with the optional ``bench`` extra and is imported only here, when a report
is drawn, so the engine and the other commands never pay for it. The figure is built with
``matplotlib.figure.Figure`` (no pyplot): no global state, no GUI backend.
"""

from __future__ import annotations

import html
import io
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from durable_azstorage.bench.chart_panels import Panel, panels
from durable_azstorage.bench.result_file import ResultFile

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

FORMATS = (".png", ".svg", ".html")
EXTRA_HINT = "pip install 'durable-azstorage[bench]'"
COLOURS = ("#2b6cb0", "#dd6b20", "#38a169", "#805ad5", "#c53030", "#718096")
SHADES = ("#90cdf4", "#4299e1", "#2b6cb0", "#1a365d")  # light to dark: p50 .. max
LOG_SPAN = 20  # a log axis only when the values span more than this factor
ROW_INCHES = 0.26  # per bar; panels grow with what they hold instead of squeezing it
LEGEND_ABOVE_CHARS = 70  # title + series names that fit on one line above a panel


class MissingExtraError(RuntimeError):
    """The plotting library is not installed."""


def write(files: Sequence[ResultFile], out: Path) -> None:
    """Draw ``files`` into ``out``; its suffix picks the format (``FORMATS``)."""
    if out.suffix.lower() not in FORMATS:
        raise ValueError(f"--out: {out.name}: use a {', '.join(FORMATS)} file name")
    chosen = panels(files)
    if not chosen:
        raise ValueError("nothing to draw: the files hold no runs, latencies, requests or ceiling")
    if out.suffix.lower() == ".html":  # the page carries the title and the sources itself
        out.write_text(_page(files, chosen, _figure(files, chosen, standalone=False)))
    else:
        _figure(files, chosen, standalone=True).savefig(out, dpi=110, bbox_inches="tight")


def _figure(
    files: Sequence[ResultFile],
    chosen: Sequence[Panel],
    *,
    standalone: bool,
) -> Figure:
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise MissingExtraError(
            f"bench report draws with matplotlib, which is not installed: {EXTRA_HINT}"
        ) from None
    heights = [
        1.0 + ROW_INCHES * sum(p.bars_in(i) for i in range(len(p.categories))) for p in chosen
    ]
    figure = Figure(figsize=(11, sum(heights) + 0.9 + 0.18 * len(files)), layout="constrained")
    if standalone:
        figure.suptitle("durable-azstorage bench report", fontsize=14, fontweight="bold")
        figure.text(
            0.01, 0.0, "\n".join(f.describe() for f in files), fontsize=8, color="#4a5568", va="top"
        )
    axes = figure.subplots(len(chosen), 1, height_ratios=heights, squeeze=False)
    for ax, panel in zip(axes[:, 0], chosen, strict=False):
        _draw(ax, panel)
    return figure


def _draw(ax: Axes, panel: Panel) -> None:
    """Horizontal bars, first category on top, each labelled with its value; a row's space
    is shared by the series it has (a row with one value gets one full-height bar)."""
    from matplotlib.ticker import FuncFormatter, LogLocator

    present = [
        [s for s, col in panel.values.items() if col[i] is not None]
        for i in range(len(panel.categories))
    ]
    colours = _colours(panel)
    for series, column in panel.values.items():
        rows = [i for i, v in enumerate(column) if v is not None]
        if not rows:
            continue
        values = [float(column[i] or 0.0) for i in rows]
        heights = [0.8 / len(present[i]) for i in rows]
        offsets = [
            i - 0.4 + h * (present[i].index(series) + 0.5)
            for i, h in zip(rows, heights, strict=False)
        ]
        bars = ax.barh(
            offsets, values, height=[h * 0.92 for h in heights], label=series, color=colours[series]
        )
        ax.bar_label(bars, labels=[_number(v) for v in values], padding=3, fontsize=8)
    ax.set_yticks(range(len(panel.categories)), labels=panel.categories, fontsize=9)
    ax.set_ylim(len(panel.categories) - 0.5, -0.5)  # first category on top
    ax.set_title(panel.title, loc="left", fontsize=11, fontweight="bold")
    drawn = [v for column in panel.values.values() for v in column if v]
    if panel.log_scale and drawn and max(drawn) > LOG_SPAN * min(drawn):
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: _number(x)))
        ax.xaxis.set_minor_formatter(FuncFormatter(lambda x, _: ""))
    ax.set_xlabel(panel.unit + (" (log scale)" if ax.get_xscale() == "log" else ""), fontsize=9)
    ax.margins(x=0.12)
    ax.grid(axis="x", color="#e2e8f0")
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    if sum(1 for col in panel.values.values() if any(v is not None for v in col)) > 1:
        if sum(len(s) for s in panel.values) + len(panel.title) < LEGEND_ABOVE_CHARS:
            # above the plot, right of the title: never over a bar or its label
            ax.legend(
                fontsize=8,
                loc="lower right",
                bbox_to_anchor=(1.0, 1.0),
                frameon=False,
                ncols=len(panel.values),
                borderaxespad=0.2,
            )
        else:  # long names (file and run labels): inside, where bars are shortest
            ax.legend(fontsize=8, loc="best", framealpha=0.9)


def _colours(panel: Panel) -> dict[str, str]:
    palette = SHADES if panel.sequential and len(panel.values) <= len(SHADES) else COLOURS
    return {s: palette[i % len(palette)] for i, s in enumerate(panel.values)}


def _number(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}" if value < 1 else f"{value:.2f}".rstrip("0").rstrip(".")


def _page(files: Sequence[ResultFile], chosen: Sequence[Panel], figure: Figure) -> str:
    """One HTML file: the figure as inline SVG, then each panel's numbers as a table."""
    svg = io.StringIO()
    figure.savefig(svg, format="svg", bbox_inches="tight")
    body = svg.getvalue()
    body = body[body.index("<svg") :]  # drop the XML prolog and doctype: inline in HTML
    sources = "".join(f"<li>{html.escape(f.describe())}</li>" for f in files)
    tables = "".join(_table(p) for p in chosen)
    return (
        "<!doctype html>\n<html lang='en'><head><meta charset='utf-8'>"
        "<title>durable-azstorage bench report</title><style>"
        "body{font-family:system-ui,sans-serif;margin:2em;color:#1a202c}"
        "table{border-collapse:collapse;margin:0 0 1.5em}"
        "td,th{border:1px solid #cbd5e0;padding:2px 8px;text-align:right}"
        "td:first-child,th:first-child{text-align:left}svg{max-width:100%;height:auto}"
        "caption{text-align:left;color:#4a5568;font-size:90%}"
        "</style></head><body><h1>durable-azstorage bench report</h1>"
        f"<ul>{sources}</ul><figure>{body}</figure><h2>The numbers</h2>{tables}"
        "</body></html>\n"
    )


def _table(panel: Panel) -> str:
    head = "".join(f"<th>{html.escape(s)}</th>" for s in panel.values)
    rows = "".join(
        f"<tr><td>{html.escape(c)}</td>"
        + "".join(
            f"<td>{'' if col[i] is None else _number(float(col[i] or 0.0))}</td>"
            for col in panel.values.values()
        )
        + "</tr>"
        for i, c in enumerate(panel.categories)
    )
    return (
        f"<h3>{html.escape(panel.title)}</h3><table><caption>{html.escape(panel.unit)}"
        f"</caption><tr><th></th>{head}</tr>{rows}</table>"
    )
