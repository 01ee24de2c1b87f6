"""Rewind planning: the history a FAILED execution continues from, computed without I/O.

Choice: rewind rewrites the history of the *same* execution (same execution id) instead of
appending a special rewind event the replay would have to understand. The rewritten
history is the failed one minus

* each failed activity: its ``TaskScheduled`` *and* its ``TaskFailed``;
* each failed sub-orchestration's ``SubOrchestrationInstanceFailed`` (its
  ``SubOrchestrationInstanceCreated`` stays: the child is rewound in place, recursively,
  and its eventual completion answers that same task id);
* the ``ExecutionCompleted`` that recorded the failure.

Why this keeps replay deterministic: replay matches the actions the code produces to the
scheduling events by sequence number. Every kept scheduling event is still produced by the
code under the same number (the code runs the same way up to the first failure, whose
result is now simply absent); an action whose ``TaskScheduled`` was dropped has no history
event, so replay treats it as new and the worker schedules the activity again under the
same task id. Successful results (``TaskCompleted``, ``SubOrchestrationInstanceCompleted``,
fired timers, raised events) are replayed, never re-run. Keeping the execution id matters
for sub-orchestrations: a rewound child answers its parent's execution, which must still
be current.

Compared with DTFx's legacy rewind (DTFX_REFERENCE.md §8), which rewrites those rows in place
as ``GenericEvent`` markers so that positions stay put: our replay matches by event id, not by
position, so dropping the rows is equivalent and leaves a history that reads like an ordinary
one. DTFx triggers only the deepest failed instances; here every rewound instance gets a
trigger (a parent's replay simply finds its child task still pending).

The episode is triggered by a ``GenericEvent`` whose data is ``"rewind: <reason>"``; it is
appended to history like any message, so the history records the rewind.

Limitation (documented, checked by nothing): code that *handled* a failure and then scheduled
more work before failing (e.g. a retry policy's timer and second attempt, or a compensation
activity) does not take the same path once the failed task is re-run; replay then reports
non-determinism and the instance fails again, with that error, rather than doing anything
unsafe.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from durable_azstorage.model.history import (
    ExecutionCompleted,
    HistoryEvent,
    SubOrchestrationInstanceCreated,
    SubOrchestrationInstanceFailed,
    TaskFailed,
    TaskScheduled,
)

REWIND_MARKER = "rewind"
"""Prefix of the ``GenericEvent.data`` that triggers the rewound episode."""


@dataclass(frozen=True, slots=True)
class RewindPlan:
    """The rewritten history and the failed children to rewind as well."""

    history: tuple[HistoryEvent, ...]
    failed_children: tuple[str, ...]
    rerun_activities: tuple[str, ...]


def plan_rewind(history: Sequence[HistoryEvent]) -> RewindPlan:
    """Drop the failures of ``history`` (see the module docstring) and name the failed children."""
    failed_tasks = {e.task_scheduled_id for e in history if isinstance(e, TaskFailed)}
    failed_subs = {
        e.task_scheduled_id for e in history if isinstance(e, SubOrchestrationInstanceFailed)
    }
    kept: list[HistoryEvent] = []
    children: list[str] = []
    rerun: list[str] = []
    for event in history:
        if isinstance(event, (TaskFailed, SubOrchestrationInstanceFailed, ExecutionCompleted)):
            continue
        if isinstance(event, TaskScheduled) and event.event_id in failed_tasks:
            rerun.append(event.name)
            continue
        if isinstance(event, SubOrchestrationInstanceCreated) and event.event_id in failed_subs:
            children.append(event.instance_id)
        kept.append(event)
    return RewindPlan(tuple(kept), tuple(dict.fromkeys(children)), tuple(rerun))


def rewind_data(reason: str | None) -> str:
    """The ``GenericEvent.data`` recording a rewind and its reason."""
    return f"{REWIND_MARKER}: {reason}" if reason else REWIND_MARKER
