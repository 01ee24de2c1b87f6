"""The Gantt bars built from a history (pure: no storage, no event loop)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from durable_azstorage.dashboard.timeline import build_timeline
from durable_azstorage.model.failure import FailureDetails
from durable_azstorage.model.history import (
    ExecutionStarted,
    HistoryEvent,
    OrchestrationInstance,
    SubOrchestrationInstanceCreated,
    TaskCompleted,
    TaskFailed,
    TaskScheduled,
    TimerCreated,
    TimerFired,
)

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def history() -> list[HistoryEvent]:
    instance = OrchestrationInstance(instance_id="i")
    return [
        ExecutionStarted(timestamp=at(0), name="o", instance=instance),
        TaskScheduled(event_id=0, timestamp=at(0), name="fetch"),
        TaskScheduled(event_id=1, timestamp=at(0), name="flaky"),
        TimerCreated(event_id=2, timestamp=at(1), fire_at=at(6)),
        TaskCompleted(timestamp=at(2), task_scheduled_id=0, result='"ok"'),
        TaskFailed(
            timestamp=at(4),
            task_scheduled_id=1,
            failure_details=FailureDetails(message="boom", error_type="builtins.OSError"),
        ),
        TimerFired(timestamp=at(6), timer_id=2, fire_at=at(6)),
        SubOrchestrationInstanceCreated(
            event_id=3, timestamp=at(8), name="child", instance_id="i:0003"
        ),
    ]


def test_bars_open_at_scheduling_and_close_at_the_answer() -> None:
    timeline = build_timeline(history(), running=False, now=at(100))
    assert [(b.kind, b.label, b.outcome) for b in timeline.bars] == [
        ("activity", "fetch", "completed"),
        ("activity", "flaky", "failed"),
        ("timer", "timer until 2026-12-01T12:00:06+00:00", "completed"),
        ("suborchestration", "child", "pending"),
    ]
    fetch, flaky, timer, child = timeline.bars
    assert fetch.duration == timedelta(seconds=2) and flaky.duration == timedelta(seconds=4)
    assert timer.duration == timedelta(seconds=5)
    assert child.duration is None and child.child_instance_id == "i:0003"


def test_positions_are_percentages_of_the_span() -> None:
    ended = build_timeline(history(), running=False, now=at(100))
    assert ended.span == timedelta(seconds=8)  # an ended instance spans its history only
    fetch, _, timer, child = ended.bars
    assert (fetch.offset, fetch.width) == (0.0, 25.0)
    assert (timer.offset, timer.width) == (12.5, 62.5)
    assert child.offset == 99.5  # a bar at the very end stays visible
    running = build_timeline(history(), running=True, now=at(16))
    assert running.span == timedelta(seconds=16)  # a running one spans until now
    assert running.bars[3].offset == 50.0 and running.bars[3].width == 50.0


def test_an_empty_history_has_no_bars() -> None:
    timeline = build_timeline([], running=True, now=T0)
    assert timeline.bars == [] and timeline.span == timedelta(0) and timeline.height == 0
