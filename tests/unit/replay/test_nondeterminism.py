"""Divergence from history raises NonDeterminismError naming the step (sequence number, what
history recorded, what the code did now)."""

from __future__ import annotations

from collections.abc import Generator
from datetime import timedelta
from typing import Any

import pytest

from durable_azstorage.authoring.context import OrchestrationContext
from durable_azstorage.authoring.registry import Registry
from durable_azstorage.model.errors import NonDeterminismError
from durable_azstorage.model.status import OrchestrationStatus
from durable_azstorage.replay.episode import run_episode
from durable_azstorage.replay.executor import execute
from durable_azstorage.serialization.converter import JsonDataConverter

from ..builders import (
    IID,
    at,
    completed,
    msg,
    orch_completed,
    orch_started,
    scheduled,
    sent,
    started,
    sub_created,
    timer_created,
)


def _replay(fn: Any, past: list[Any]) -> None:
    r = Registry()
    r.add_orchestrator(fn, name="orch")
    execute(r, IID, past, [orch_started(at(99)), completed(0)])


ORIGINAL = [
    orch_started(),
    started("orch"),
    scheduled(0, "reserve"),
    scheduled(1, "charge"),
    orch_completed(),
]


def test_reordered_calls_name_the_step_and_both_sides() -> None:
    def reordered(ctx: OrchestrationContext, _: Any) -> Generator[Any, Any, None]:
        yield ctx.call_activity("charge")
        yield ctx.call_activity("reserve")

    with pytest.raises(NonDeterminismError) as info:
        _replay(reordered, ORIGINAL)
    message = str(info.value)
    assert "sequence number 0" in message
    assert "history recorded TaskScheduled 'reserve'" in message
    assert "call_activity('charge')" in message
    assert "'orch'" in message and IID in message


def test_a_renamed_activity_names_the_old_and_new_name() -> None:
    def renamed(ctx: OrchestrationContext, _: Any) -> Generator[Any, Any, None]:
        yield ctx.call_activity("reserve")
        yield ctx.call_activity("charge_card")

    with pytest.raises(NonDeterminismError) as info:
        _replay(
            renamed,
            [
                orch_started(),
                started("orch"),
                scheduled(0, "reserve"),
                orch_completed(),
                orch_started(),
                completed(0),
                scheduled(1, "charge"),
                orch_completed(),
            ],
        )
    message = str(info.value)
    assert "sequence number 1" in message
    assert "TaskScheduled 'charge'" in message and "call_activity('charge_card')" in message


def test_a_removed_timer_is_reported_at_its_sequence_number() -> None:
    def without_timer(ctx: OrchestrationContext, _: Any) -> Generator[Any, Any, None]:
        yield ctx.call_activity("charge")

    history = [orch_started(), started("orch"), timer_created(0, at(60)), orch_completed()]
    with pytest.raises(NonDeterminismError) as info:
        _replay(without_timer, history)
    message = str(info.value)
    assert "sequence number 0" in message
    assert "TimerCreated" in message and "call_activity('charge')" in message


def test_a_removed_call_at_the_end_says_the_code_scheduled_nothing() -> None:
    def shorter(ctx: OrchestrationContext, _: Any) -> Generator[Any, Any, None]:
        yield ctx.create_timer(timedelta(seconds=1))

    history = [
        orch_started(),
        started("orch"),
        timer_created(0, at(1)),
        sent(1, "x", "Ping"),
        orch_completed(),
    ]
    with pytest.raises(NonDeterminismError) as info:
        _replay(shorter, history)
    assert "sequence number 1" in str(info.value)
    assert "EventSent 'Ping' to 'x'" in str(info.value)
    assert "scheduled nothing" in str(info.value)


def test_a_sub_orchestration_swapped_for_an_activity() -> None:
    def swapped(ctx: OrchestrationContext, _: Any) -> Generator[Any, Any, None]:
        yield ctx.call_activity("child")

    with pytest.raises(NonDeterminismError) as info:
        _replay(
            swapped, [orch_started(), started("orch"), sub_created(0, "child"), orch_completed()]
        )
    assert "SubOrchestrationInstanceCreated 'child'" in str(info.value)


def test_the_episode_fails_the_instance_with_the_non_determinism_message() -> None:
    def changed(ctx: OrchestrationContext, _: Any) -> Generator[Any, Any, None]:
        yield ctx.call_activity("charge")

    r = Registry()
    r.add_orchestrator(changed, name="orch")
    history = [orch_started(), started("orch"), scheduled(0, "reserve"), orch_completed()]
    episode = run_episode(
        r, IID, history, [msg(completed(0))], now=at(5), converter=JsonDataConverter()
    )
    assert episode.state is not None
    assert episode.state.runtime_status is OrchestrationStatus.FAILED
    details = episode.state.failure_details
    assert details is not None and details.error_type.endswith("NonDeterminismError")
    assert "sequence number 0" in details.message and "call_activity('charge')" in details.message
