"""A benchmark result file (``bench ... --json-file``) read back for ``bench report``.

The file is checked against what the report draws from it before anything is drawn, so a
truncated or hand-edited file fails with the file name and the JSON path of the first
problem (``seq.json: results.runs["x"].latency_s.p99: expected a number, got "fast"``)
instead of a traceback from inside the plotting library.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LATENCY_KEYS = ("p50", "p95", "p99", "max")
RUN_KEYS = ("orchestrations", "orchestrations_per_s", "activities_per_s")


class ResultFileError(ValueError):
    """A result file that is not JSON or lacks what the report needs; says which and where."""


@dataclass(frozen=True)
class ResultFile:
    """One scenario's JSON document (the ``Report.as_json`` shape), validated."""

    path: Path
    scenario: str
    environment: dict[str, Any]
    results: dict[str, Any]

    @property
    def runs(self) -> dict[str, dict[str, Any]]:
        """Named runs with throughput and latency (``sequence`` and ``scale``)."""
        runs: dict[str, dict[str, Any]] = self.results.get("runs", {})
        return runs

    @property
    def ceiling(self) -> dict[str, Any] | None:
        """The request ceiling: the results of ``ceiling``, or embedded by ``--with-ceiling``."""
        if self.scenario == "ceiling":
            return self.results
        embedded: dict[str, Any] | None = self.results.get("ceiling")
        return embedded

    def describe(self) -> str:
        """Where it ran, one line: machine, load, storage."""
        machine = self.environment.get("machine", {})
        storage = self.environment.get("storage", {})
        load = machine.get("load_average_at_start")
        return (
            f"{self.path.name}: bench {self.scenario}, {machine.get('cores')} cores, "
            f"load {load[0] if load else '?'}, {storage.get('kind', '?')}"
            + (f" {storage['azurite_version']}" if storage.get("azurite_version") else "")
        )


def load(path: Path) -> ResultFile:
    """Read and check one file; ``ResultFileError`` names the file and the first problem."""
    try:
        data = json.loads(path.read_text())
    except OSError as exc:
        raise ResultFileError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except ValueError as exc:
        raise ResultFileError(f"{path}: not JSON ({exc})") from None
    check = _Checker(path)
    root = check.obj(data, "")
    scenario = check.text(root, "scenario")
    results = check.obj(root.get("results"), "results")
    checks = _SCENARIOS.get(scenario)
    if checks is None:
        raise ResultFileError(
            f"{path}: scenario: {scenario!r} is not a bench scenario "
            f"({', '.join(sorted(_SCENARIOS))})"
        )
    checks(check, results)
    environment = root.get("environment", {})
    return ResultFile(path, scenario, environment if isinstance(environment, dict) else {}, results)


class _Checker:
    """Type checks that report the JSON path of what failed."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, where: str, expected: str, value: Any) -> ResultFileError:
        shown = "missing" if value is None else f"got {json.dumps(value)[:60]}"
        return ResultFileError(
            f"{self.path}: {where or 'the document'}: expected {expected}, {shown}"
        )

    def obj(self, value: Any, where: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(where, "an object", value)
        return value

    def text(self, parent: dict[str, Any], key: str, where: str = "") -> str:
        value = parent.get(key)
        if not isinstance(value, str):
            raise self.fail(_join(where, key), "a string", value)
        return value

    def number(self, parent: dict[str, Any], key: str, where: str) -> float:
        value = parent.get(key)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.fail(_join(where, key), "a number", value)
        return float(value)

    def numbers(self, parent: dict[str, Any], keys: tuple[str, ...], where: str) -> None:
        for key in keys:
            self.number(parent, key, where)

    def counts(self, value: Any, where: str) -> None:
        """An object of operation name -> request count."""
        for key in self.obj(value, where):
            self.number(value, key, where)


def _join(where: str, key: str) -> str:
    step = key if key.isidentifier() else json.dumps(key)
    if not where:
        return step
    return f"{where}.{step}" if key.isidentifier() else f"{where}[{step}]"


def _runs(check: _Checker, results: dict[str, Any]) -> None:
    runs = check.obj(results.get("runs"), "results.runs")
    if not runs:
        raise check.fail("results.runs", "at least one run", {})
    for name, run in runs.items():
        where = _join("results.runs", name)
        run = check.obj(run, where)
        check.numbers(run, RUN_KEYS, where)
        latency = check.obj(run.get("latency_s"), f"{where}.latency_s")
        check.numbers(latency, LATENCY_KEYS, f"{where}.latency_s")
        if "storage_requests" in run:
            requests = check.obj(run["storage_requests"], f"{where}.storage_requests")
            check.number(requests, "per_s", f"{where}.storage_requests")
            check.counts(requests.get("by_operation"), f"{where}.storage_requests.by_operation")
            if "worker_by_operation" in requests:
                check.counts(
                    requests["worker_by_operation"], f"{where}.storage_requests.worker_by_operation"
                )
    if "ceiling" in results:
        _ceiling(check, check.obj(results["ceiling"], "results.ceiling"), "results.ceiling")


def _ceiling(check: _Checker, results: dict[str, Any], where: str = "results") -> None:
    check.number(results, "requests_per_s", where)
    phases = check.obj(results.get("phases"), f"{where}.phases")
    for name, phase in phases.items():
        check.number(
            check.obj(phase, _join(f"{where}.phases", name)),
            "requests_per_s",
            _join(f"{where}.phases", name),
        )


def _fanout(check: _Checker, results: dict[str, Any]) -> None:
    check.numbers(results, ("activities", "activities_per_s", "time_to_completion_s"), "results")


def _latency(check: _Checker, results: dict[str, Any]) -> None:
    modes = [k for k, v in results.items() if isinstance(v, dict)]
    if not modes:
        raise check.fail("results", "at least one client mode with p50/p99/max", results)
    for mode in modes:
        check.numbers(results[mode], ("p50", "p99", "max"), _join("results", mode))


def _cost(check: _Checker, results: dict[str, Any]) -> None:
    check.number(results, "orchestrations", "results")
    check.counts(
        check.obj(results.get("worker"), "results.worker").get("by_operation"),
        "results.worker.by_operation",
    )


_SCENARIOS = {
    "sequence": _runs,
    "scale": _runs,
    "fanout": _fanout,
    "latency": _latency,
    "cost": _cost,
    "ceiling": _ceiling,
}
