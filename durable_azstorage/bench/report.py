"""A benchmark result: what was measured, where, with which settings — as a table and JSON."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table


@dataclass
class Report:
    """One scenario's outcome.

    ``results`` is the machine-readable part (the JSON ``results`` key); ``rows`` are the
    (metric, value) lines of the summary table, ``tables`` further tables (e.g. a per-operation
    breakdown) and ``notes`` the explanations printed under them.
    """

    scenario: str
    environment: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    results: dict[str, Any] = field(default_factory=dict)
    rows: list[tuple[str, str]] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    started_at: str = field(
        default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds")
    )

    def row(self, metric: str, value: str) -> None:
        self.rows.append((metric, value))

    def as_json(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "started_at": self.started_at,
            "environment": self.environment,
            "settings": self.settings,
            "results": self.results,
            "notes": self.notes,
        }

    def write_json(self, path: Path) -> None:
        path.write_text(json.dumps(self.as_json(), indent=2, default=str) + "\n")

    def print(self, console: Console) -> None:
        storage = self.environment.get("storage", {})
        machine = self.environment.get("machine", {})
        table = Table(title=f"bench {self.scenario}", title_justify="left")
        table.add_column("metric")
        table.add_column("value", justify="right")
        for metric, value in self.rows:
            table.add_row(metric, value)
        console.print(table)
        for extra in self.tables:
            console.print(extra)
        console.print(
            f"machine: {machine.get('cores')} cores, Python {machine.get('python')}, "
            f"{machine.get('platform')}, load average at start "
            f"{machine.get('load_average_at_start')}; storage: {storage.get('kind')}"
            + (f" {storage['azurite_version']}" if storage.get("azurite_version") else "")
            + (f" ({storage['mode']})" if storage.get("mode") else "")
        )
        shown = ", ".join(f"{k}={v}" for k, v in self.settings.items())
        console.print(f"settings: {shown}", soft_wrap=True)
        for note in self.notes:
            console.print(f"note: {note}", soft_wrap=True)


def fmt_seconds(value: float) -> str:
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


def fmt_ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b else "n/a"
