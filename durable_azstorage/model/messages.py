"""Messages between instances, activities and clients.

Everything travelling through a queue is a ``TaskMessage``: a history event addressed to an
orchestration instance. Routing follows the event: ``TaskScheduled`` goes to the work-item
queue (an activity request from ``instance``); every other event goes to the control queue of
``instance.instance_id``. Delivery is delayed until ``visible_at()`` for timers and scheduled
starts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from durable_azstorage.model.history import (
    EventRaised,
    ExecutionStarted,
    HistoryEvent,
    OrchestrationInstance,
    TaskScheduled,
    TimerFired,
)


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskMessage:
    instance: OrchestrationInstance
    event: HistoryEvent
    sender: OrchestrationInstance | None = None
    episode: int | None = None

    @property
    def is_activity_request(self) -> bool:
        return isinstance(self.event, TaskScheduled)

    def visible_at(self) -> datetime | None:
        """When the message may be delivered, or None for "now"."""
        if isinstance(self.event, TimerFired):
            return self.event.fire_at
        if isinstance(self.event, ExecutionStarted):
            return self.event.scheduled_start_time
        if isinstance(self.event, EventRaised):
            return self.event.scheduled_time
        return None
