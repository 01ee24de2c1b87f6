"""The checkpoint protocol's guarantees, each with the fault injected (real Azurite).

* a crash after any checkpoint step loses nothing: the redelivered messages are recognised
  by their ids in the sentinel, not applied again, and the episode's outbound messages are
  re-sent and the Instances row repaired;
* the loser of an ETag race sends nothing;
* a redelivered message is applied once.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import timedelta

import pytest
from builders import MakeBackend, episode, event_message, kinds, start_message, started_of

from durable_azstorage.azure.provider import AzureStorageBackend
from durable_azstorage.azure.settings import AzureStorageSettings
from durable_azstorage.backend.protocol import ActivityWorkItem
from durable_azstorage.model import history as h
from durable_azstorage.model.errors import ConcurrencyConflictError
from durable_azstorage.model.messages import TaskMessage
from durable_azstorage.model.status import OrchestrationStatus

pytestmark = pytest.mark.azurite


class Crash(Exception):
    """Stands in for the process dying between two checkpoint steps."""


def crash_at(step: str) -> Callable[[str, str], object]:
    async def hook(reached: str, instance_id: str) -> None:
        if reached == step:
            raise Crash(f"killed after step {step!r} for {instance_id}")

    return hook


class MutableOwnership:
    def __init__(self, owned: frozenset[int]) -> None:
        self._owned = owned
        self._callbacks: list[Callable[[frozenset[int]], None]] = []

    def owned(self) -> frozenset[int]:
        return self._owned

    def subscribe(self, callback: Callable[[frozenset[int]], None]) -> None:
        self._callbacks.append(callback)

    def set(self, owned: frozenset[int]) -> None:
        self._owned = owned
        for callback in self._callbacks:
            callback(owned)


async def activity_names(
    backend: AzureStorageBackend, expected: int, timeout: float = 10.0
) -> list[str]:
    names = []
    for _ in range(expected):
        item = await backend.lock_next_activity(timeout)
        assert item is not None, f"expected {expected} activity requests, got {names}"
        names.append(item.name)
        await backend.complete_activity(item, _result(item))
    return sorted(names)


def _result(item: ActivityWorkItem) -> TaskMessage:
    return TaskMessage(
        instance=item.instance,
        event=h.TaskCompleted(task_scheduled_id=item.task_id, result='"ok"'),
    )


@pytest.mark.parametrize("step", ["history", "messages", "instance"])
async def test_crash_after_each_step_loses_nothing_and_applies_once(
    make_backend: MakeBackend, step: str
) -> None:
    crashing = await make_backend(checkpoint_hook=crash_at(step))
    start = start_message("crash-1")
    assert await crashing.create_instance(start)
    item = await crashing.lock_next_orchestration(10)
    assert item is not None and item.instance_id == "crash-1"
    with pytest.raises(Crash):
        await crashing.complete_orchestration(item, episode(item, activities=("A", "B")))
    await crashing.stop()  # the process is gone; its messages reappear after the timeout

    survivor = await make_backend()
    # The consumed start message comes back, is recognised, and is not handed out again.
    assert await survivor.lock_next_orchestration(6) is None
    history = await survivor.get_history("crash-1")
    assert kinds(history).count("ExecutionStarted") == 1
    assert kinds(history) == [
        "OrchestratorStarted",
        "ExecutionStarted",
        "TaskScheduled",
        "TaskScheduled",
        "OrchestratorCompleted",
    ]
    # No committed episode loses its outbound messages (duplicates are allowed).
    names = await activity_names(survivor, 2)
    assert names == ["A", "B"]
    state = await survivor.get_instance("crash-1")
    assert state is not None and state.runtime_status is OrchestrationStatus.RUNNING
    # Only the two activity results remain for the instance: the start was deleted.
    item2 = await survivor.lock_next_orchestration(10)
    assert item2 is not None
    assert {type(m.event).__name__ for m in item2.messages} == {"TaskCompleted"}
    assert item2.history == tuple(history)


async def test_losing_writer_of_an_etag_race_sends_nothing(
    make_backend: MakeBackend, fast_settings: AzureStorageSettings
) -> None:
    settings = dataclasses.replace(
        fast_settings, control_queue_visibility_timeout=timedelta(seconds=60)
    )
    ownership = MutableOwnership(frozenset(range(settings.partition_count)))
    loser = await make_backend(settings=settings, ownership=ownership)
    assert await loser.create_instance(start_message("race-1"))
    first = await loser.lock_next_orchestration(10)
    assert first is not None
    await loser.complete_orchestration(first, episode(first))

    await loser.send_message(event_message("race-1", "E1"))
    held = await loser.lock_next_orchestration(10)
    assert held is not None and kinds(m.event for m in held.messages) == ["EventRaised"]
    ownership.set(frozenset())  # stop receiving, keep the lock

    winner = await make_backend(settings=settings)
    await winner.send_message(event_message("race-1", "E2"))
    won = await winner.lock_next_orchestration(10)
    assert won is not None
    assert [m.event.name for m in won.messages] == ["E2"]  # type: ignore[attr-defined]
    await winner.complete_orchestration(won, episode(won, activities=("FromWinner",)))

    with pytest.raises(ConcurrencyConflictError):
        await loser.complete_orchestration(held, episode(held, activities=("FromLoser",)))
    await loser.abandon_orchestration(held)

    assert await activity_names(winner, 1) == ["FromWinner"]
    assert await winner.lock_next_activity(1.0) is None  # the loser sent nothing
    history = await winner.get_history("race-1")
    assert [e.name for e in history if isinstance(e, h.EventRaised)] == ["E2"]
    # The loser's message is applied later, once, by the winner.
    later = await winner.lock_next_orchestration(10)
    assert later is not None
    assert sorted(type(m.event).__name__ for m in later.messages) == [
        "EventRaised",
        "TaskCompleted",
    ]
    await winner.complete_orchestration(later, episode(later))
    history = await winner.get_history("race-1")
    assert sorted(e.name for e in history if isinstance(e, h.EventRaised)) == ["E1", "E2"]


async def test_redelivered_message_after_commit_is_applied_once(make_backend: MakeBackend) -> None:
    backend = await make_backend(checkpoint_hook=crash_at("instance"))
    assert await backend.create_instance(start_message("dup-1"))
    first = await backend.lock_next_orchestration(10)
    assert first is not None
    with pytest.raises(Crash):
        await backend.complete_orchestration(first, episode(first))
    # Same process, lock still held: the worker abandons, the message comes straight back.
    await backend.abandon_orchestration(first)
    backend.checkpoint_hook = None
    await backend.send_message(event_message("dup-1", "Later"))
    item = await backend.lock_next_orchestration(10)
    assert item is not None
    assert kinds(m.event for m in item.messages) == ["EventRaised"]
    assert kinds(item.history).count("ExecutionStarted") == 1
    assert started_of(item).instance.instance_id == "dup-1"
