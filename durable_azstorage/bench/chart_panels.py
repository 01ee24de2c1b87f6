"""What ``bench report`` draws, as plain data: one ``Panel`` per question a reader asks.

Kept apart from the drawing (``charts``) so the selection of numbers is tested without the
plotting library: every panel is a grouped horizontal bar chart (rows = ``categories``, one
bar colour per ``series``), drawn only when some file has data for it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from durable_azstorage.bench.result_file import LATENCY_KEYS, ResultFile

CEILING_PHASES = {
    "queue_put": "queue put",
    "queue_get": "queue get",
    "queue_delete": "queue delete",
    "table_batch": "table batch",
}


@dataclass
class Panel:
    """A titled grouped bar chart; ``values[series][i]`` belongs to ``categories[i]``."""

    title: str
    unit: str
    categories: list[str] = field(default_factory=list)
    values: dict[str, list[float | None]] = field(default_factory=dict)
    log_scale: bool = False
    sequential: bool = False  # series are grades of one thing (percentiles): shades, not hues

    def __post_init__(self) -> None:
        for series in list(self.values):  # declared series keep their order, empty so far
            self.values[series] = [None] * len(self.categories)

    def add(self, category: str, values: dict[str, float]) -> None:
        """One row; a series it lacks is left empty (no bar), not drawn as zero."""
        if category not in self.categories:
            self.categories.append(category)
            for column in self.values.values():
                column.append(None)
        row = self.categories.index(category)
        for series, value in values.items():
            column = self.values.setdefault(series, [None] * len(self.categories))
            column[row] = value

    def add_series(self, series: str, counts: dict[str, int], per: int) -> None:
        """Operations as rows (largest first), this source as one series, per orchestration."""
        for op, n in sorted(counts.items(), key=lambda kv: -kv[1]):
            self.add(op, {series: round(n / per, 2) if per else 0.0})

    def bars_in(self, row: int) -> int:
        """How many bars ``row`` has (its height grows with them)."""
        return max(1, sum(1 for column in self.values.values() if column[row] is not None))

    @property
    def empty(self) -> bool:
        return not self.categories


def panels(files: Sequence[ResultFile]) -> list[Panel]:
    """The non-empty panels for these files, in reading order."""
    name = _namer(files)
    throughput = Panel(
        "Throughput", "per second", values={"orchestrations/s": [], "activities/s": []}
    )
    latency = Panel(
        "Latency (start to completion)",
        "seconds",
        log_scale=True,
        values={k: [] for k in LATENCY_KEYS},
        sequential=True,
    )
    operations = Panel(
        "Storage requests by operation",
        "requests per orchestration (the worker's; client starts and status polls apart)",
    )
    ceiling = Panel(
        "Storage requests/s: the ceiling and the runs",
        "requests per second",
        values={"ceiling": [], "run": []},
    )
    for f in files:
        limit = f.ceiling
        if limit is not None:
            prefix = "" if f.scenario == "ceiling" else "ceiling: "
            for phase, r in limit["phases"].items():
                ceiling.add(
                    name(f, prefix + CEILING_PHASES.get(phase, phase)),
                    {"ceiling": r["requests_per_s"]},
                )
            ceiling.add(name(f, prefix + "all phases"), {"ceiling": limit["requests_per_s"]})
        for run, r in f.runs.items():
            label = name(f, f"{run} worker process(es)" if f.scenario == "scale" else run)
            throughput.add(
                label,
                {
                    "orchestrations/s": r["orchestrations_per_s"],
                    "activities/s": r["activities_per_s"],
                },
            )
            latency.add(label, {k: r["latency_s"][k] for k in LATENCY_KEYS})
            requests = r.get("storage_requests")
            if requests is not None:
                if "worker_by_operation" in requests:
                    operations.add_series(
                        label, requests["worker_by_operation"], r["orchestrations"]
                    )
                ratio = requests.get("ratio_to_ceiling")
                shown = "" if ratio is None else f" ({ratio:.0%} of the ceiling for its mix)"
                if "worker_per_s" in requests:
                    ceiling.add(f"{label}: worker{shown}", {"run": requests["worker_per_s"]})
                ceiling.add(f"{label}: worker + client", {"run": requests["per_s"]})
        if f.scenario == "fanout":
            label = name(f, f"fan-out of {f.results['activities']}")
            throughput.add(label, {"activities/s": f.results["activities_per_s"]})
            latency.add(f"{label} (time to completion)", {"max": f.results["time_to_completion_s"]})
        if f.scenario == "latency":
            for mode, r in f.results.items():
                if isinstance(r, dict):
                    latency.add(name(f, mode), {k: r[k] for k in ("p50", "p99", "max")})
        if f.scenario == "cost":
            operations.add_series(
                name(f, "worker"), f.results["worker"]["by_operation"], f.results["orchestrations"]
            )
    return [p for p in (throughput, latency, operations, ceiling) if not p.empty]


def _namer(files: Sequence[ResultFile]) -> _Namer:
    scenarios = [f.scenario for f in files]
    return _Namer(ambiguous={s for s in scenarios if scenarios.count(s) > 1})


@dataclass(frozen=True)
class _Namer:
    """Row labels: ``scenario · run``, with the file name when a scenario appears twice."""

    ambiguous: set[str]

    def __call__(self, f: ResultFile, run: str) -> str:
        source = f"{f.path.stem} ({f.scenario})" if f.scenario in self.ambiguous else f.scenario
        return f"{source} · {run}"
