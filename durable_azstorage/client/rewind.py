"""Rewind planning: the history a FAILED execution continues from, computed without I/O.

Rewind rewrites the history of the *same* execution (same execution id: a rewound child
still answers its parent's execution) and sends a ``GenericEvent("rewind: <reason>")`` that
makes a worker replay it. Replay matches the scheduling events of history (TaskScheduled,
TimerCreated, SubOrchestrationInstanceCreated, EventSent) to the calls the code makes, by
sequence number; a call without an event is new and is carried out. So the rewritten
history must be one the code reproduces exactly, whatever it does next.

**The cut.** Let ``f`` be the position of the *first* failure event (TaskFailed or
SubOrchestrationInstanceFailed; if there is none, the ExecutionCompleted of a code that
raised by itself). Everything the code did in reaction to it is recorded after ``f``, and
once the failed task is re-run the code may react differently (a RetryPolicy's timer and
second attempt, a compensation activity, an ``except`` branch). Before ``f`` the code saw
exactly the events recorded there, so it makes the same calls under the same numbers.
The rewritten history therefore keeps

* every event before ``f``, minus the scheduling events of tasks that must run again:
  a TaskScheduled whose task failed (anywhere) or has no kept result, a TimerCreated that
  has no kept TimerFired. The code makes these calls again and, with no event to match,
  they are carried out again under the same sequence number (same activity and input, same
  ``fire_at``). "No kept result" covers results that arrived after the instance failed:
  they were dropped then, so the task runs again rather than waiting forever;
* after ``f`` only what does not depend on the code's reaction: EventRaised (external
  input is never lost), ExecutionSuspended/Resumed, GenericEvent markers, the results
  (TaskCompleted, SubOrchestrationInstanceCompleted, TimerFired) of tasks whose scheduling
  event is kept, and the OrchestratorStarted/Completed framing of the episodes that still
  hold such an event (OrchestratorStarted sets ``current_utc_datetime`` for the code that
  runs after it). No scheduling event is kept after ``f``, so nothing after ``f`` can
  disagree with the code; everything else after ``f`` (retry timers, later attempts,
  compensation, EventSent, the ExecutionCompleted) is dropped and happens again only if
  the code, re-run, does it again.

**Children.** A kept SubOrchestrationInstanceCreated without a kept answer is settled
from the child's state (``settle_children``): Failed → rewound in place, recursively (its
completion answers the same task id); Completed (its answer arrived after the parent had
failed, and was dropped) → its answer is added to the history; Running/Pending/Suspended →
kept, it answers when it ends; purged → its creation is dropped, so the re-run code
creates and runs it again (as the portable SDK's reference backend does); Terminated →
the rewind is refused. If the child's
current execution answers another task (a dropped retry attempt with an explicit instance
id re-created it), the creation is dropped too and the code creates the child again.
Children created after ``f`` (or re-created as just said) are *orphans*: the rewritten
history no longer names them. Default child ids are ``<parent>:<sequence number>`` and the
re-run code uses the same numbers after ``f``, so a new child can get an orphan's id; the
client therefore purges ended orphans before the re-run (also so that a recursive purge of
the parent still reaches every child) and refuses the rewind while one still runs.

**Costs and limits** (documented, by design): a failure the code caught and recovered from
is also "first"; everything after it is redone. Tasks scheduled in the episode of ``f``
are recorded after ``f`` (an episode records its decisions after its incoming events), so
they run again even when they reacted only to earlier results. A task whose result was
still in flight at rewind time may run twice (the second answer is dropped as a duplicate:
activities are at-least-once anyway). A RetryPolicy's ``retry_timeout`` is measured from
the original first attempt, so a re-run that fails long after it is not retried. Side
effects of the reaction (compensation, events sent) happen again if the code reaches them.

Compared with DTFx's legacy rewind (DTFX_REFERENCE.md §8), which turns failed rows into
``GenericEvent`` markers in place and keeps everything else, this handles code that
reacted to a failure; our replay matches by event id, not by position, so dropping rows is
safe and leaves a history that reads like an ordinary one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from durable_azstorage.model.errors import InvalidOperationError
from durable_azstorage.model.history import (
    EventRaised,
    ExecutionCompleted,
    ExecutionResumed,
    ExecutionSuspended,
    GenericEvent,
    HistoryEvent,
    OrchestrationInstance,
    OrchestratorCompleted,
    OrchestratorStarted,
    SubOrchestrationInstanceCompleted,
    SubOrchestrationInstanceCreated,
    SubOrchestrationInstanceFailed,
    TaskCompleted,
    TaskFailed,
    TaskScheduled,
    TimerCreated,
    TimerFired,
)
from durable_azstorage.model.status import OrchestrationStatus

REWIND_MARKER = "rewind"
"""Prefix of the ``GenericEvent.data`` that triggers the rewound episode."""

_INPUTS = (EventRaised, ExecutionSuspended, ExecutionResumed, GenericEvent)
"""Events kept after the cut whatever they are: they do not come from the code."""

_Predicate = Callable[[HistoryEvent], bool]

_WAITING = (
    OrchestrationStatus.RUNNING,
    OrchestrationStatus.PENDING,
    OrchestrationStatus.SUSPENDED,
)


@dataclass(frozen=True, slots=True)
class ChildRef:
    """A kept sub-orchestration creation that has no kept answer."""

    task_id: int
    instance_id: str


@dataclass(frozen=True, slots=True)
class RewindPlan:
    """The kept history (a subsequence of the failed one) and what it leaves open."""

    history: tuple[HistoryEvent, ...]
    cut: int | None
    """Position of the first failure (or of the failing ExecutionCompleted); None if neither."""
    rerun_activities: tuple[str, ...]
    open_children: tuple[ChildRef, ...]
    dropped_children: tuple[str, ...]
    """Instance ids of sub-orchestrations created after the cut."""


@dataclass(frozen=True, slots=True)
class ChildView:
    """What the client read about a child: its state and whom its current execution answers."""

    status: OrchestrationStatus
    output: str | None
    completed_at: datetime | None
    parent: OrchestrationInstance | None
    parent_task_id: int | None


@dataclass(frozen=True, slots=True)
class Settlement:
    """The history to write, the children to rewind in place, the orphans to purge."""

    history: tuple[HistoryEvent, ...]
    rewind_children: tuple[str, ...]
    orphans: tuple[str, ...]


def find_cut(history: Sequence[HistoryEvent]) -> int | None:
    """Position of the first failure event, else of the ExecutionCompleted, else None."""
    for i, event in enumerate(history):
        if isinstance(event, (TaskFailed, SubOrchestrationInstanceFailed)):
            return i
    for i, event in enumerate(history):
        if isinstance(event, ExecutionCompleted):
            return i
    return None


def plan_rewind(history: Sequence[HistoryEvent]) -> RewindPlan:
    """The history the rewound execution continues from (see the module docstring)."""
    cut = find_cut(history)
    end = len(history) if cut is None else cut
    before, after = history[:end], history[end + 1 :]
    failed = {e.task_scheduled_id for e in history if isinstance(e, TaskFailed)}
    tasks = {
        e.event_id for e in before if isinstance(e, TaskScheduled) and e.event_id not in failed
    }
    timers = {e.event_id for e in before if isinstance(e, TimerCreated)}
    subs = {
        e.event_id: e.instance_id for e in before if isinstance(e, SubOrchestrationInstanceCreated)
    }

    def answers(event: HistoryEvent) -> bool:
        if isinstance(event, TaskCompleted):
            return event.task_scheduled_id in tasks
        if isinstance(event, SubOrchestrationInstanceCompleted):
            return event.task_scheduled_id in subs
        return isinstance(event, TimerFired) and event.timer_id in timers

    results = [e for e in history if answers(e)]
    done_tasks = {e.task_scheduled_id for e in results if isinstance(e, TaskCompleted)}
    fired = {e.timer_id for e in results if isinstance(e, TimerFired)}
    done_subs = {
        e.task_scheduled_id for e in results if isinstance(e, SubOrchestrationInstanceCompleted)
    }
    kept: list[HistoryEvent] = []
    rerun: list[str] = []
    for event in before:
        if isinstance(event, TaskScheduled) and event.event_id not in done_tasks:
            rerun.append(event.name)
        elif not (isinstance(event, TimerCreated) and event.event_id not in fired):
            kept.append(event)
    kept.extend(_after_cut(after, answers))
    open_children = tuple(ChildRef(k, c) for k, c in subs.items() if k not in done_subs)
    dropped = tuple(
        dict.fromkeys(
            e.instance_id for e in after if isinstance(e, SubOrchestrationInstanceCreated)
        )
    )
    return RewindPlan(tuple(kept), cut, tuple(rerun), open_children, dropped)


def _after_cut(events: Sequence[HistoryEvent], answers: _Predicate) -> list[HistoryEvent]:
    """The events after the cut that do not depend on the code, with their episode framing.

    The episode of the cut is open on entry (its OrchestratorStarted is kept), so its
    OrchestratorCompleted is kept too. A suspension the failing code never saw (it ended
    first) is not carried over: the rewound instance would otherwise sit suspended.
    """
    kept: list[HistoryEvent] = []
    episode: list[HistoryEvent] = []
    framed = True  # inside the cut's episode, whose OrchestratorStarted was kept

    def flush(closing: HistoryEvent | None) -> None:
        if framed or any(not isinstance(e, OrchestratorStarted) for e in episode):
            kept.extend(episode if closing is None else [*episode, closing])

    for event in events:
        if isinstance(event, OrchestratorStarted):
            if any(not isinstance(e, OrchestratorStarted) for e in episode):
                flush(None)
            episode, framed = [event], False
        elif isinstance(event, OrchestratorCompleted):
            flush(event)
            episode, framed = [], False
        elif isinstance(event, _INPUTS) or answers(event):
            episode.append(event)
    if any(not isinstance(e, OrchestratorStarted) for e in episode):
        flush(None)
    return _without_dangling_suspension(kept)


def _without_dangling_suspension(events: list[HistoryEvent]) -> list[HistoryEvent]:
    last_suspend = None
    for i, event in enumerate(events):
        if isinstance(event, ExecutionSuspended):
            last_suspend = i
        elif isinstance(event, ExecutionResumed):
            last_suspend = None
    return events if last_suspend is None else events[:last_suspend] + events[last_suspend + 1 :]


def settle_children(
    plan: RewindPlan,
    instance: OrchestrationInstance,
    children: Mapping[str, ChildView | None],
    *,
    now: datetime,
) -> Settlement:
    """Decide each open child of ``plan`` from its view (see "Children" above).

    ``children`` maps every ``plan.open_children`` instance id to what was read (None: it
    does not exist). Raises ``InvalidOperationError`` naming the child that blocks the rewind.
    """
    history = list(plan.history)
    rewind: list[str] = []
    recreated: list[str] = []
    for ref in plan.open_children:
        view = children.get(ref.instance_id)
        what = f"sub-orchestration {ref.instance_id!r} of {instance.instance_id!r}"
        if view is None:
            # Purged (as the SDK's reference backend allows): the code creates it again.
            history = [e for e in history if not _creates(e, ref.task_id)]
            continue
        if view.parent is None or view.parent.instance_id != instance.instance_id:
            owner = view.parent.instance_id if view.parent else "nobody"
            raise InvalidOperationError(
                f"cannot rewind {what}: that instance id now belongs to an instance started "
                f"by {owner!r}"
            )
        if view.parent.execution_id != instance.execution_id or view.parent_task_id != ref.task_id:
            history = [e for e in history if not _creates(e, ref.task_id)]
            recreated.append(ref.instance_id)
        elif view.status is OrchestrationStatus.FAILED:
            rewind.append(ref.instance_id)
        elif view.status is OrchestrationStatus.COMPLETED:
            history.append(
                SubOrchestrationInstanceCompleted(
                    timestamp=view.completed_at or now,
                    task_scheduled_id=ref.task_id,
                    result=view.output,
                )
            )
        elif view.status not in _WAITING:
            raise InvalidOperationError(
                f"cannot rewind {what}: it is {view.status.value}; only Failed instances can "
                "be rewound"
            )
    still_named = {e.instance_id for e in history if isinstance(e, SubOrchestrationInstanceCreated)}
    orphans = [c for c in (*plan.dropped_children, *recreated) if c not in still_named]
    return Settlement(tuple(history), tuple(dict.fromkeys(rewind)), tuple(dict.fromkeys(orphans)))


def _creates(event: HistoryEvent, task_id: int) -> bool:
    return isinstance(event, SubOrchestrationInstanceCreated) and event.event_id == task_id


def rewind_data(reason: str | None) -> str:
    """The ``GenericEvent.data`` recording a rewind and its reason."""
    return f"{REWIND_MARKER}: {reason}" if reason else REWIND_MARKER
