"""A tiny deterministic runtime for replay tests: runs episodes until nothing is left to do.

It plays the worker's role over plain lists (no backend, no event loop): it keeps each
instance's committed history, delivers queued messages in FIFO batches per instance, runs
activities synchronously, and advances a virtual clock to the next due timer when idle.
Every committed generation's history is kept so tests can replay it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from durable_azstorage.authoring.context import ActivityContext
from durable_azstorage.authoring.registry import Registry
from durable_azstorage.model.failure import FailureDetails
from durable_azstorage.model.history import (
    EventRaised,
    ExecutionStarted,
    HistoryEvent,
    OrchestrationInstance,
    TaskCompleted,
    TaskFailed,
    TaskScheduled,
    TimerFired,
)
from durable_azstorage.model.messages import TaskMessage
from durable_azstorage.model.state import InstanceState
from durable_azstorage.replay.episode import Episode, run_episode
from durable_azstorage.serialization.converter import JsonDataConverter

from ..builders import T0


@dataclass
class Driver:
    registry: Registry
    now: datetime = T0
    converter: JsonDataConverter = field(default_factory=JsonDataConverter)
    histories: dict[str, list[HistoryEvent]] = field(default_factory=dict)
    generations: list[tuple[str, list[HistoryEvent]]] = field(default_factory=list)
    states: dict[str, InstanceState] = field(default_factory=dict)
    episodes: list[tuple[str, Episode]] = field(default_factory=list)
    queue: list[TaskMessage] = field(default_factory=list)
    timers: list[TaskMessage] = field(default_factory=list)
    on_idle: Callable[[Driver], bool] | None = None
    idle_before_timers: bool = False
    _ids: int = 0

    def new_execution_id(self) -> str:
        self._ids += 1
        return f"x{self._ids}"

    def start(self, name: str, input: Any = None, instance_id: str = "inst-1") -> str:
        instance = OrchestrationInstance(
            instance_id=instance_id, execution_id=self.new_execution_id()
        )
        event = ExecutionStarted(
            timestamp=self.now, name=name, instance=instance, input=self.converter.serialize(input)
        )
        self.queue.append(TaskMessage(instance=instance, event=event))
        return instance_id

    def raise_event(self, instance_id: str, name: str, data: Any = None) -> None:
        event = EventRaised(timestamp=self.now, name=name, input=self.converter.serialize(data))
        self.queue.append(
            TaskMessage(instance=OrchestrationInstance(instance_id=instance_id), event=event)
        )

    def send(self, instance_id: str, event: HistoryEvent) -> None:
        self.queue.append(
            TaskMessage(instance=OrchestrationInstance(instance_id=instance_id), event=event)
        )

    def run(self, max_steps: int = 10_000) -> None:
        for _ in range(max_steps):
            if self.queue:
                self._step()
            elif self.idle_before_timers and self.on_idle is not None and self.on_idle(self):
                continue
            elif self.timers:
                self.timers.sort(key=lambda m: m.visible_at() or self.now)
                due = self.timers.pop(0)
                self.now = max(self.now, due.visible_at() or self.now)
                self.queue.append(due)
            elif self.on_idle is None or not self.on_idle(self):
                return
        raise AssertionError("the simulation did not settle")

    def _step(self) -> None:
        target = self.queue[0].instance.instance_id
        batch = [m for m in self.queue if m.instance.instance_id == target]
        self.queue = [m for m in self.queue if m.instance.instance_id != target]
        self.now += timedelta(milliseconds=1)
        history = self.histories.get(target, [])
        episode = run_episode(
            self.registry,
            target,
            history,
            batch,
            now=self.now,
            converter=self.converter,
            new_execution_id=self.new_execution_id,
        )
        self.episodes.append((target, episode))
        if episode.new_execution:
            if history:
                self.generations.append((target, history))
            self.histories[target] = list(episode.new_events)
        else:
            self.histories[target] = [*history, *episode.new_events]
        if episode.state is not None:
            self.states[target] = episode.state
        self.queue.extend(episode.orchestrator_messages)
        self.timers.extend(episode.timer_messages)
        for request in episode.activity_messages:
            self.queue.append(self._run_activity(request))

    def _run_activity(self, request: TaskMessage) -> TaskMessage:
        event = request.event
        assert isinstance(event, TaskScheduled)
        fn = self.registry.get_activity(event.name)
        ctx = ActivityContext(
            orchestration_id=request.instance.instance_id,
            task_id=event.event_id,
            task_name=event.name,
        )
        result: HistoryEvent
        try:
            if fn is None:
                raise LookupError(f"activity {event.name!r} is not registered")
            value = fn(ctx, self.converter.deserialize(event.input))
            result = TaskCompleted(
                task_scheduled_id=event.event_id,
                result=self.converter.serialize(value),
                timestamp=self.now,
            )
        except Exception as exc:  # noqa: BLE001 - reported as the activity's failure
            result = TaskFailed(
                task_scheduled_id=event.event_id,
                failure_details=FailureDetails.from_exception(exc),
                timestamp=self.now,
            )
        return TaskMessage(instance=request.instance, event=result)

    def all_histories(self) -> list[tuple[str, list[HistoryEvent]]]:
        """Every generation ever committed (replaced ones first), per instance."""
        return [*self.generations, *self.histories.items()]

    def fired_timers(self) -> list[TimerFired]:
        return [e for h in self.histories.values() for e in h if isinstance(e, TimerFired)]
