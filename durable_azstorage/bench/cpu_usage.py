"""The CPU each process of a benchmark run used: which one bounded the throughput.

On a small machine the benchmark, the workers and an auto-started Azurite share the cores. A
run in which Azurite (single-threaded Node.js) kept one core busy was bounded by the emulator,
and more worker processes cannot make it faster; a run in which the engine's process kept a
core busy was bounded by the engine. The figures are cores busy on average over the run (CPU
seconds / wall seconds, a process's children included), next to the machine's core count.

Reading other processes' CPU needs psutil (the ``bench`` extra); without it a run reports
that the figures are missing, and everything else.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from types import ModuleType
from typing import Any

MISSING = "install the bench extra (psutil) for CPU figures"


class CpuMeter:
    """Measures named groups of processes between ``start()`` and ``stop()``."""

    def __init__(self, groups: Mapping[str, Sequence[int | None]]) -> None:
        self._groups = {label: [p for p in pids if p is not None] for label, pids in groups.items()}
        self._psutil = _psutil()
        self._start: dict[str, float] = {}
        self._wall = 0.0

    def start(self) -> None:
        self._start = self._cpu_seconds()
        self._wall = time.perf_counter()

    def stop(self) -> dict[str, Any]:
        """``{"cores": N, "busy": {label: cores busy}}``, or ``{"missing": why}``."""
        if self._psutil is None:
            return {"missing": MISSING}
        wall = max(time.perf_counter() - self._wall, 1e-9)
        now = self._cpu_seconds()
        busy = {label: round((now[label] - self._start[label]) / wall, 2) for label in now}
        return {"cores": os.cpu_count(), "busy": busy}

    def _cpu_seconds(self) -> dict[str, float]:
        """CPU seconds per group: its processes and their descendants, except descendants
        another group names (Azurite and worker processes are the benchmark's children)."""
        psutil = self._psutil
        if psutil is None:
            return {}
        families = {label: _family(psutil, pids) for label, pids in self._groups.items()}
        out: dict[str, float] = {}
        for label, family in families.items():
            others = set().union(*(f for other, f in families.items() if other != label))
            own = set(self._groups[label])
            total = 0.0
            for pid in family:
                if pid in others and pid not in own:
                    continue
                try:
                    times = psutil.Process(pid).cpu_times()
                except psutil.Error:
                    continue  # gone: counts nothing
                total += times.user + times.system
            out[label] = total
        return out


def _psutil() -> ModuleType | None:
    try:
        import psutil
    except ImportError:
        return None
    return psutil


def _family(psutil: Any, pids: Sequence[int]) -> set[int]:
    family: set[int] = set()
    for pid in pids:
        try:
            process = psutil.Process(pid)
            family |= {pid, *(c.pid for c in process.children(recursive=True))}
        except psutil.Error:
            continue
    return family


def describe(cpu: Mapping[str, Any]) -> str:
    """One table cell: ``azurite 0.95, workers 0.80 of 2 cores``."""
    if "missing" in cpu:
        return str(cpu["missing"])
    busy = ", ".join(f"{label} {value:.2f}" for label, value in cpu["busy"].items())
    return f"{busy} of {cpu['cores']} cores"


__all__ = ["MISSING", "CpuMeter", "describe"]
