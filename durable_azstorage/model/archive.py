"""Histories of earlier executions: what an episode hands the backend to keep, and how many.

Continue-as-new and restart replace an instance's stored history with the new execution's.
The episode that ends an execution that way hands its full history to the backend
(``OrchestrationCommit.ended_executions``), which archives it *before* committing (step 1 of
the checkpoint), so a crash at any step loses nothing: the re-run episode archives the same
execution again under the same name. Backends keep the newest ``limit`` per instance
(``archived_executions`` setting; 0 = none) and purge deletes them with the instance.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from durable_azstorage.model.history import HistoryEvent

DEFAULT_ARCHIVED_EXECUTIONS = 10
"""Earlier executions kept per instance unless configured otherwise."""

MAX_ARCHIVED_EXECUTIONS = 500
"""At most this many: Azure lists the kept ids in one sentinel column (a table property holds
32,768 UTF-16 characters; 500 ids of 32 hex digits take about 17,500)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class EndedExecution:
    """The whole history of an execution that continue-as-new or a restart ended."""

    execution_id: str
    events: tuple[HistoryEvent, ...]


def validate_archive_limit(limit: object, *, what: str = "archived_executions") -> int:
    if isinstance(limit, bool) or not isinstance(limit, int):
        raise ValueError(f"{what} must be an integer, got {limit!r}")
    if not 0 <= limit <= MAX_ARCHIVED_EXECUTIONS:
        raise ValueError(
            f"{what} must be between 0 (keep none) and {MAX_ARCHIVED_EXECUTIONS}, got {limit}"
        )
    return limit


def retained(
    kept: Sequence[str], ended: Sequence[str], limit: int
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The archive after ``ended`` (oldest first) joins ``kept`` (newest first), and what drops.

    Returns (the newest ``limit`` ids, newest first; the ids of ``kept`` that fall out of
    it). Ended executions beyond the limit are simply never stored, so they need no delete.
    """
    newest_first = list(dict.fromkeys([*reversed(ended), *kept]))
    now_kept = tuple(newest_first[:limit])
    return now_kept, tuple(e for e in kept if e not in now_kept)
