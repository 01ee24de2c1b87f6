"""What one seeded run found: its trace, its violations, the faults it injected; and totals.

The trace is the sequence of scheduled steps and faults, one short line each, so a failing
seed can be read (and replayed with ``--seed``) without a debugger. ``minimal_trace`` keeps
the lines that mention an instance involved in the first violation.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from durable_azstorage.testing.torture.faults import Fault


@dataclass(frozen=True)
class Violation:
    """A broken invariant: which one, about which instance, and what was seen."""

    invariant: str
    instance_id: str
    detail: str

    def __str__(self) -> str:
        return f"[{self.invariant}] {self.instance_id}: {self.detail}"


@dataclass
class SeedResult:
    """The outcome of one seed."""

    seed: int
    steps: int = 0
    trace: list[str] = field(default_factory=list)
    violations: list[Violation] = field(default_factory=list)
    faults: Counter[Fault] = field(default_factory=Counter)

    @property
    def ok(self) -> bool:
        return not self.violations

    def minimal_trace(self, limit: int = 60) -> list[str]:
        """The trace lines about the first violated instance (its root id), at most ``limit``."""
        if not self.violations:
            return []
        root = self.violations[0].instance_id.split("/")[0]
        lines = [line for line in self.trace if root in line or "clock" in line]
        return lines[-limit:]

    def describe(self) -> str:
        head = f"seed {self.seed}: {len(self.violations)} violation(s) after {self.steps} steps"
        body = [f"  {v}" for v in self.violations[:10]]
        trace = [f"    {line}" for line in self.minimal_trace()]
        rerun = (
            f"  reproduce: python -m durable_azstorage.testing.torture --seed {self.seed} --verbose"
        )
        return "\n".join(
            [head, *body, "  trace (steps touching that instance, and clock moves):", *trace, rerun]
        )


@dataclass
class Totals:
    """Sums over many seeds."""

    seeds: int = 0
    steps: int = 0
    faults: Counter[Fault] = field(default_factory=Counter)
    failed: list[SeedResult] = field(default_factory=list)
    by_invariant: Counter[str] = field(default_factory=Counter)

    def add(self, result: SeedResult) -> None:
        self.seeds += 1
        self.steps += result.steps
        self.faults.update(result.faults)
        if not result.ok:
            self.failed.append(result)
            self.by_invariant.update({v.invariant for v in result.violations})

    def describe(self, seconds: float) -> str:
        rate = self.seeds / seconds if seconds > 0 else 0.0
        lines = [
            f"{self.seeds} seeds, {self.steps} steps, {seconds:.1f} s ({rate:.1f} seeds/s); "
            f"{len(self.failed)} seed(s) with violations",
            "faults injected:",
            *(f"  {count:8d}  {fault.value}" for fault, count in self.faults.most_common()),
        ]
        if self.failed:
            lines.append("violations by invariant (seeds):")
            for invariant, count in self.by_invariant.most_common():
                seeds = [
                    r.seed
                    for r in self.failed
                    if any(v.invariant == invariant for v in r.violations)
                ]
                lines.append(f"  {count:6d}  {invariant}: seeds {seeds[:12]}")
        return "\n".join(lines)
