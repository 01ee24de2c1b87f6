"""What a generation's history says about which incoming messages may be applied.

The episode asks the ledger about each message before recording it: a result for a task
that was never scheduled, a second result for the same task, a message for another
execution, or anything for an instance that ended is dropped with a reason instead of
reaching history (duplicates are normal under at-least-once delivery).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta

from durable_azstorage.model.history import (
    EventRaised,
    ExecutionCompleted,
    ExecutionResumed,
    ExecutionStarted,
    ExecutionSuspended,
    ExecutionTerminated,
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
from durable_azstorage.model.messages import TaskMessage
from durable_azstorage.model.status import OrchestrationStatus

EARLY_TIMER_TOLERANCE = timedelta(seconds=1)
"""A timer delivered less than this before its ``fire_at`` fires anyway (clock skew)."""

RE_ARM = "re-arm"
"""Prefix of the reason for an early timer: the episode sends it again, delayed."""


class Ledger:
    """Bookkeeping over one generation's events (history plus what this episode accepted)."""

    def __init__(self, events: Iterable[HistoryEvent] = ()) -> None:
        self.started: ExecutionStarted | None = None
        self.ended: OrchestrationStatus | None = None
        self.suspended = False
        self.tasks: dict[int, int] = {}  # task id -> schedule_index of its latest scheduling
        self.subs: dict[int, int] = {}  # sub-orchestration task id -> latest schedule_index
        self.timers: set[int] = set()
        self.answered: set[tuple[str, int]] = set()
        self.events_from: set[str] = set()  # source ids of the events from other instances
        for event in events:
            self.record(event)

    @property
    def execution_id(self) -> str | None:
        return self.started.instance.execution_id if self.started else None

    def record(self, event: HistoryEvent) -> None:
        if isinstance(event, ExecutionStarted):
            self.started = self.started or event
        elif isinstance(event, ExecutionCompleted):
            self.ended = event.status
        elif isinstance(event, ExecutionTerminated):
            self.ended = OrchestrationStatus.TERMINATED
        elif isinstance(event, ExecutionSuspended):
            self.suspended = True
        elif isinstance(event, ExecutionResumed):
            self.suspended = False
        elif isinstance(event, TaskScheduled):
            # Scheduling an id again opens a new attempt: the portable SDKs retry a task under
            # its original id, so its next answer is not a duplicate (our code never reuses ids).
            # Answers name the attempt (schedule_index), so one to an earlier attempt is stale.
            self.tasks[event.event_id] = event.schedule_index or 0
            self.answered.discard(("task", event.event_id))
        elif isinstance(event, SubOrchestrationInstanceCreated):
            self.subs[event.event_id] = event.schedule_index or 0
            self.answered.discard(("sub", event.event_id))
        elif isinstance(event, TimerCreated):
            self.timers.add(event.event_id)
        elif isinstance(event, (TaskCompleted, TaskFailed)):
            self.answered.add(("task", event.task_scheduled_id))
        elif isinstance(event, (SubOrchestrationInstanceCompleted, SubOrchestrationInstanceFailed)):
            self.answered.add(("sub", event.task_scheduled_id))
        elif isinstance(event, TimerFired):
            self.answered.add(("timer", event.timer_id))
        elif isinstance(event, EventRaised) and event.source_id is not None:
            self.events_from.add(event.source_id)

    def refusal(self, message: TaskMessage, now: datetime) -> str | None:
        """Why ``message`` must not be applied to this generation, or None to apply it.

        ``ExecutionStarted`` messages are judged by the episode (they may open a generation).
        """
        event = message.event
        if self.started is None:
            return "no such instance (it has not been started)"
        if self.ended is not None:
            return f"the instance already ended ({self.ended.value})"
        target = message.instance.execution_id
        if target is not None and target != self.execution_id:
            return f"addressed to execution {target!r}, but the current execution is {self.execution_id!r}"
        if isinstance(event, (TaskCompleted, TaskFailed)):
            return self._answer_refusal(
                "task", event.task_scheduled_id, event.schedule_index, self.tasks, "TaskScheduled"
            )
        if isinstance(event, (SubOrchestrationInstanceCompleted, SubOrchestrationInstanceFailed)):
            return self._answer_refusal(
                "sub",
                event.task_scheduled_id,
                event.schedule_index,
                self.subs,
                "SubOrchestrationInstanceCreated",
            )
        if isinstance(event, TimerFired):
            refusal = self._answer_refusal(
                "timer", event.timer_id, None, self.timers, "TimerCreated"
            )
            if refusal is None and event.fire_at - now > EARLY_TIMER_TOLERANCE:
                return (
                    f"{RE_ARM}: timer {event.timer_id} is not due until {event.fire_at.isoformat()}"
                )
            return refusal
        if isinstance(event, EventRaised) and event.source_id in self.events_from:
            return f"duplicate event {event.name!r} from {event.source_id} (sent again)"
        if isinstance(event, ExecutionSuspended) and self.suspended:
            return "the instance is already suspended"
        if isinstance(event, ExecutionResumed) and not self.suspended:
            return "the instance is not suspended"
        return None

    def _answer_refusal(
        self,
        kind: str,
        task_id: int,
        schedule_index: int | None,
        scheduled: Mapping[int, int] | set[int],
        scheduling: str,
    ) -> str | None:
        """Why an answer to ``task_id`` is refused: never scheduled, already answered, or
        (tasks and sub-orchestrations, which the SDKs retry under one id) an answer to an
        earlier scheduling than the latest."""
        if task_id not in scheduled:
            return f"no {scheduling} event with id {task_id} in this execution's history"
        if (kind, task_id) in self.answered:
            return f"duplicate {kind} response for id {task_id}"
        if isinstance(scheduled, Mapping) and (schedule_index or 0) != scheduled[task_id]:
            return (
                f"stale answer to scheduling {schedule_index or 0} of {kind} {task_id}; it was "
                f"scheduled again (scheduling {scheduled[task_id]})"
            )
        return None
