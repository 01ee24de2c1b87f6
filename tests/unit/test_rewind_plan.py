"""``plan_rewind``: which events a rewind drops and which failed children it names."""

from __future__ import annotations

from datetime import datetime, timezone

from durable_azstorage.client.rewind import plan_rewind, rewind_data
from durable_azstorage.model.failure import FailureDetails
from durable_azstorage.model.history import (
    ExecutionCompleted,
    ExecutionStarted,
    HistoryEvent,
    OrchestrationInstance,
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

FAIL = FailureDetails(error_type="builtins.RuntimeError", message="broken")


def failed_history() -> list[HistoryEvent]:
    start = OrchestrationInstance(instance_id="p", execution_id="e1")
    return [
        OrchestratorStarted(),
        ExecutionStarted(name="parent", instance=start),
        TaskScheduled(event_id=0, name="ok"),
        TaskScheduled(event_id=1, name="bad"),
        SubOrchestrationInstanceCreated(event_id=2, name="child", instance_id="p-good"),
        SubOrchestrationInstanceCreated(event_id=3, name="child", instance_id="p-bad"),
        TimerCreated(event_id=4, fire_at=start_time()),
        TaskCompleted(task_scheduled_id=0, result="1"),
        TaskFailed(task_scheduled_id=1, failure_details=FAIL),
        SubOrchestrationInstanceCompleted(task_scheduled_id=2, result="2"),
        SubOrchestrationInstanceFailed(task_scheduled_id=3, failure_details=FAIL),
        TimerFired(timer_id=4, fire_at=start_time()),
        ExecutionCompleted(status=OrchestrationStatus.FAILED, failure_details=FAIL),
    ]


def start_time() -> datetime:
    return datetime(2026, 1, 1, tzinfo=timezone.utc)


def test_failures_are_dropped_and_successes_kept() -> None:
    plan = plan_rewind(failed_history())
    kinds = [(type(e).__name__, getattr(e, "event_id", None)) for e in plan.history]
    assert ("TaskScheduled", 1) not in kinds  # the failed activity is scheduled again
    assert not any(isinstance(e, (TaskFailed, SubOrchestrationInstanceFailed, ExecutionCompleted))
                   for e in plan.history)
    kept_ids = {e.event_id for e in plan.history if isinstance(e, (TaskScheduled,
                SubOrchestrationInstanceCreated, TimerCreated))}
    assert kept_ids == {0, 2, 3, 4}  # the failed child's creation stays: it is rewound in place
    assert sum(isinstance(e, (TaskCompleted, SubOrchestrationInstanceCompleted, TimerFired))
               for e in plan.history) == 3
    assert plan.failed_children == ("p-bad",)
    assert plan.rerun_activities == ("bad",)


def test_history_without_failures_is_unchanged_but_for_completion() -> None:
    history = [e for e in failed_history()
               if not isinstance(e, (TaskFailed, SubOrchestrationInstanceFailed))]
    plan = plan_rewind(history)
    assert list(plan.history) == history[:-1]
    assert plan.failed_children == () and plan.rerun_activities == ()


def test_rewind_marker_data() -> None:
    assert rewind_data(None) == "rewind"
    assert rewind_data("fixed") == "rewind: fixed"
