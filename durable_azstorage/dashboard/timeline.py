"""The Gantt view of one execution: activities, timers and sub-orchestrations as bars.

Built from the history alone (pure, no I/O): a scheduling event opens a bar at its
timestamp, the event answering it (``task_scheduled_id`` / ``timer_id``) closes it. A bar
still open ends at ``now`` for a running instance, or at the last event for an ended one,
and is drawn as pending. Positions are percentages of the whole span, so the page draws
the bars as SVG without scripts.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from durable_azstorage.model.history import (
    HistoryEvent,
    SubOrchestrationInstanceCompleted,
    SubOrchestrationInstanceCreated,
    SubOrchestrationInstanceFailed,
    TaskCompleted,
    TaskFailed,
    TaskScheduled,
    TimerCreated,
    TimerFired,
)

ROW_HEIGHT = 22


@dataclass(frozen=True, slots=True, kw_only=True)
class Bar:
    kind: str  # "activity", "timer" or "suborchestration"
    label: str
    start: datetime
    end: datetime | None = None
    outcome: str = "pending"  # "completed", "failed" or "pending"
    task_id: int = -1
    child_instance_id: str | None = None
    offset: float = 0.0  # percent of the span from its start
    width: float = 0.0  # percent of the span

    @property
    def duration(self) -> timedelta | None:
        return None if self.end is None else self.end - self.start


@dataclass(frozen=True, slots=True)
class Timeline:
    start: datetime | None
    end: datetime | None
    bars: list[Bar] = field(default_factory=list)

    @property
    def height(self) -> int:
        return ROW_HEIGHT * len(self.bars)

    @property
    def span(self) -> timedelta:
        if self.start is None or self.end is None:
            return timedelta(0)
        return self.end - self.start


def build_timeline(history: list[HistoryEvent], *, running: bool, now: datetime) -> Timeline:
    """Bars in scheduling order, positioned over the history's time span."""
    open_bars: dict[int, Bar] = {}
    closed: dict[int, Bar] = {}
    for event in history:
        opened = _opened(event)
        if opened is not None:
            open_bars[event.event_id] = opened
            continue
        answer = _answer(event)
        if answer is not None and answer[0] in open_bars:
            task_id, outcome = answer
            closed[task_id] = replace(open_bars[task_id], end=event.timestamp, outcome=outcome)
    if not history:
        return Timeline(None, None)
    start = history[0].timestamp
    last = max(e.timestamp for e in history)
    end = max(now, last) if running else last
    bars = [closed.get(i, bar) for i, bar in open_bars.items()]
    return Timeline(start, end, [_place(b, start, end) for b in bars])


def _opened(event: HistoryEvent) -> Bar | None:
    if isinstance(event, TaskScheduled):
        return Bar(kind="activity", label=event.name, start=event.timestamp, task_id=event.event_id)
    if isinstance(event, TimerCreated):
        label = f"timer until {event.fire_at.isoformat(timespec='seconds')}"
        return Bar(kind="timer", label=label, start=event.timestamp, task_id=event.event_id)
    if isinstance(event, SubOrchestrationInstanceCreated):
        return Bar(
            kind="suborchestration",
            label=event.name,
            start=event.timestamp,
            task_id=event.event_id,
            child_instance_id=event.instance_id,
        )
    return None


def _answer(event: HistoryEvent) -> tuple[int, str] | None:
    if isinstance(event, (TaskCompleted, SubOrchestrationInstanceCompleted)):
        return event.task_scheduled_id, "completed"
    if isinstance(event, (TaskFailed, SubOrchestrationInstanceFailed)):
        return event.task_scheduled_id, "failed"
    if isinstance(event, TimerFired):
        return event.timer_id, "completed"
    return None


def _place(bar: Bar, start: datetime, end: datetime) -> Bar:
    total = (end - start).total_seconds()
    if total <= 0:
        return replace(bar, offset=0.0, width=100.0)
    bar_end = bar.end if bar.end is not None else end
    offset = (bar.start - start).total_seconds() / total * 100
    width = max((bar_end - bar.start).total_seconds() / total * 100, 0.5)
    return replace(
        bar, offset=round(min(offset, 99.5), 3), width=round(min(width, 100 - offset), 3)
    )
