"""The dispatch table: exactly one handler per history event type."""

from __future__ import annotations

from durable_azstorage.model.history import EVENT_TYPES
from durable_azstorage.replay.handlers import HANDLERS


def test_every_event_type_has_exactly_one_handler() -> None:
    assert set(HANDLERS) == set(EVENT_TYPES)
    assert len(HANDLERS) == len(EVENT_TYPES)


def test_handlers_are_distinct_functions_per_behaviour() -> None:
    named = {t.__name__: h.__name__ for t, h in HANDLERS.items()}
    assert named["TaskScheduled"] == "on_task_scheduled"
    assert named["TimerFired"] == "on_timer_fired"
    assert named["ExecutionTerminated"] == "on_execution_terminated"
