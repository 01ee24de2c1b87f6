"""InMemoryBackend specifics: the fake clock, wake-ups, hub lifecycle, input validation.

The shared contract is tested in tests/conformance; these cover what only this backend has.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import threading
from datetime import datetime, timedelta, timezone

import pytest

from durable_azstorage.backend.clock import FakeClock, SystemClock
from durable_azstorage.backend.memory import InMemoryBackend
from durable_azstorage.backend.protocol import Backend, OrchestrationCommit
from durable_azstorage.model import history as h
from durable_azstorage.model.errors import (
    ConcurrencyConflictError,
    LockLostError,
    TaskHubNotFoundError,
)
from durable_azstorage.model.messages import TaskMessage
from durable_azstorage.model.query import OrchestrationQuery
from durable_azstorage.model.state import CreateOrchestrationAction, OrchestrationIdReusePolicy
from durable_azstorage.model.status import OrchestrationStatus

LOCK = timedelta(seconds=60)
LONG_WAIT = 30.0  # a wake-up that fails to happen shows up as a None after this long


def _start(instance_id: str, **kwargs: object) -> TaskMessage:
    target = h.OrchestrationInstance(instance_id=instance_id, execution_id="e1")
    event = h.ExecutionStarted(name="Orch", instance=target, **kwargs)  # type: ignore[arg-type]
    return TaskMessage(instance=target, event=event)


def _activity(instance_id: str, name: str = "A") -> TaskMessage:
    return TaskMessage(
        instance=h.OrchestrationInstance(instance_id=instance_id, execution_id="e1"),
        event=h.TaskScheduled(event_id=0, name=name),
    )


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2026, 3, 1, tzinfo=timezone.utc))


@pytest.fixture
def backend(clock: FakeClock) -> InMemoryBackend:
    return InMemoryBackend(clock=clock, lock_timeout=LOCK)


def test_satisfies_the_backend_protocol(backend: InMemoryBackend) -> None:
    assert isinstance(backend, Backend)


def test_lock_timeout_must_be_positive() -> None:
    with pytest.raises(ValueError, match="lock_timeout must be positive"):
        InMemoryBackend(lock_timeout=timedelta(0))


def test_fake_clock_only_moves_forward(clock: FakeClock) -> None:
    before = clock.now()
    assert clock.advance(timedelta(minutes=2)) == before + timedelta(minutes=2)
    with pytest.raises(ValueError, match="cannot go backwards"):
        clock.advance(-1)
    with pytest.raises(ValueError, match="timezone-aware"):
        FakeClock(datetime(2026, 1, 1))


async def test_lock_expires_exactly_at_the_lock_timeout(
    backend: InMemoryBackend, clock: FakeClock
) -> None:
    await backend.create_instance(_start("x"))
    first = await backend.lock_next_orchestration(0)
    assert first is not None

    clock.advance(LOCK - timedelta(microseconds=1))
    assert await backend.lock_next_orchestration(0) is None
    clock.advance(timedelta(microseconds=1))
    second = await backend.lock_next_orchestration(0)

    assert second is not None and second.dequeue_count == 2
    with pytest.raises(LockLostError, match="expired or was taken"):
        await backend.renew_orchestration(first)


async def test_waiter_is_woken_by_an_enqueue(backend: InMemoryBackend) -> None:
    waiting = asyncio.create_task(backend.lock_next_activity(LONG_WAIT))
    await asyncio.sleep(0)
    assert not waiting.done()

    await backend.send_message(_activity("x"))

    item = await waiting
    assert item is not None and item.name == "A"


async def test_waiter_is_woken_when_the_clock_reaches_a_delay(
    backend: InMemoryBackend, clock: FakeClock
) -> None:
    fire_at = clock.now() + timedelta(hours=1)
    await backend.create_instance(_start("t", scheduled_start_time=fire_at))
    waiting = asyncio.create_task(backend.lock_next_orchestration(LONG_WAIT))
    await asyncio.sleep(0)

    clock.advance(timedelta(minutes=59))
    await asyncio.sleep(0)
    assert not waiting.done(), "delivered before its scheduled start"
    clock.advance(timedelta(minutes=1))

    item = await waiting
    assert item is not None and item.instance_id == "t"


async def test_waiter_is_woken_when_an_instance_lock_is_released(
    backend: InMemoryBackend,
) -> None:
    await backend.create_instance(_start("r"))
    item = await backend.lock_next_orchestration(0)
    assert item is not None
    await backend.send_message(
        TaskMessage(instance=item.messages[0].instance, event=h.EventRaised(name="e"))
    )
    waiting = asyncio.create_task(backend.lock_next_orchestration(LONG_WAIT))
    await asyncio.sleep(0)
    assert not waiting.done()

    await backend.abandon_orchestration(item)

    again = await waiting
    assert again is not None and len(again.messages) == 2


async def test_real_clock_delay_is_awaited_without_polling(monkeypatch: pytest.MonkeyPatch) -> None:
    backend = InMemoryBackend(clock=SystemClock())
    attempts = 0
    original = backend._try_lock_activity

    def counting() -> object:
        nonlocal attempts
        attempts += 1
        return original()

    monkeypatch.setattr(backend, "_try_lock_activity", counting)
    await backend.send_message(_activity("x"))
    request = await backend.lock_next_activity(0)
    assert request is not None
    await backend.abandon_activity(request, delay=timedelta(milliseconds=200))
    attempts = 0

    again = await backend.lock_next_activity(LONG_WAIT)

    assert again is not None and again.dequeue_count == 2
    assert attempts <= 3, f"{attempts} attempts: the waiter should sleep until the deadline"


async def test_waiter_is_woken_from_another_thread(backend: InMemoryBackend) -> None:
    waiting = asyncio.create_task(backend.lock_next_activity(LONG_WAIT))
    await asyncio.sleep(0)

    thread = threading.Thread(target=lambda: asyncio.run(backend.send_message(_activity("x"))))
    thread.start()
    item = await waiting
    thread.join()

    assert item is not None


async def test_stop_wakes_waiters_and_start_resumes(backend: InMemoryBackend) -> None:
    waiting = asyncio.create_task(backend.lock_next_orchestration(LONG_WAIT))
    await asyncio.sleep(0)

    await backend.stop()

    assert await waiting is None
    await backend.create_instance(_start("s"))
    assert await backend.lock_next_orchestration(0) is None
    await backend.start()
    assert await backend.lock_next_orchestration(0) is not None


async def test_deleted_hub_refuses_work_until_created_again(backend: InMemoryBackend) -> None:
    await backend.create_instance(_start("d"))

    await backend.delete_task_hub()

    with pytest.raises(TaskHubNotFoundError):
        await backend.start()
    with pytest.raises(TaskHubNotFoundError):
        await backend.create_instance(_start("d"))
    assert await backend.get_instance("d") is None
    await backend.create_task_hub()
    await backend.start()
    assert await backend.lock_next_orchestration(0) is None, "a new hub starts empty"


async def test_message_for_an_unknown_instance_is_dropped_with_a_log_line(
    backend: InMemoryBackend, caplog: pytest.LogCaptureFixture
) -> None:
    event = TaskMessage(
        instance=h.OrchestrationInstance(instance_id="ghost"), event=h.EventRaised(name="e")
    )
    with caplog.at_level(logging.WARNING):
        await backend.send_message(event)
        assert await backend.lock_next_orchestration(0) is None
    assert "discarding a message for instance 'ghost'" in caplog.text


async def test_replacing_a_locked_instance_makes_the_holder_lose(backend: InMemoryBackend) -> None:
    await backend.create_instance(_start("rep"))
    held = await backend.lock_next_orchestration(0)
    assert held is not None
    policy = OrchestrationIdReusePolicy(action=CreateOrchestrationAction.TERMINATE)
    await backend.create_instance(_start("rep"), reuse_policy=policy)
    state = await backend.get_instance("rep")
    assert state is not None

    with pytest.raises(ConcurrencyConflictError):
        await backend.complete_orchestration(held, OrchestrationCommit(new_events=(), state=state))
    await backend.abandon_orchestration(held)

    fresh = await backend.lock_next_orchestration(0)
    assert fresh is not None and fresh.history == ()


async def test_create_instance_needs_an_execution_started(backend: InMemoryBackend) -> None:
    with pytest.raises(ValueError, match="needs an ExecutionStarted message, got EventRaised"):
        await backend.create_instance(
            TaskMessage(
                instance=h.OrchestrationInstance(instance_id="x"), event=h.EventRaised(name="e")
            )
        )
    assert await backend.get_instance("x") is None


async def test_unserializable_message_is_refused_at_send_time(backend: InMemoryBackend) -> None:
    naive = h.TimerFired(timer_id=1, fire_at=datetime(2026, 1, 1))
    with pytest.raises(ValueError, match=r"message\.event\.fire_at: naive datetime"):
        await backend.send_message(
            TaskMessage(instance=h.OrchestrationInstance(instance_id="x"), event=naive)
        )


async def test_commit_is_validated_before_anything_is_written(backend: InMemoryBackend) -> None:
    await backend.create_instance(_start("v"))
    item = await backend.lock_next_orchestration(0)
    assert item is not None
    state = await backend.get_instance("v")
    assert state is not None
    wrong_state = dataclasses.replace(state, instance_id="other")
    not_activity = TaskMessage(instance=item.messages[0].instance, event=h.EventRaised(name="e"))

    with pytest.raises(ValueError, match="commit.state is for 'other'"):
        await backend.complete_orchestration(
            item, OrchestrationCommit(new_events=(h.OrchestratorStarted(),), state=wrong_state)
        )
    with pytest.raises(ValueError, match="activity_messages holds a EventRaised"):
        await backend.complete_orchestration(
            item,
            OrchestrationCommit(
                new_events=(h.OrchestratorStarted(),),
                state=state,
                activity_messages=(not_activity,),
            ),
        )

    assert await backend.get_history("v") == []
    await backend.complete_orchestration(item, OrchestrationCommit(new_events=(), state=state))


async def test_delivered_messages_are_copies(backend: InMemoryBackend) -> None:
    tags = {"k": "v"}
    await backend.create_instance(_start("c", tags=tags))
    tags["k"] = "changed"

    item = await backend.lock_next_orchestration(0)

    assert item is not None
    event = item.messages[0].event
    assert isinstance(event, h.ExecutionStarted) and event.tags == {"k": "v"}


async def test_malformed_continuation_token_is_refused(backend: InMemoryBackend) -> None:
    with pytest.raises(ValueError, match="invalid continuation token"):
        await backend.query_instances(OrchestrationQuery(continuation_token="not-a-token!"))
    with pytest.raises(ValueError, match="invalid continuation token"):
        await backend.query_instances(OrchestrationQuery(continuation_token="eyJ4IjogMX0="))


async def test_instance_lock_does_not_block_activities(
    backend: InMemoryBackend, clock: FakeClock
) -> None:
    await backend.create_instance(_start("p"))
    item = await backend.lock_next_orchestration(0)
    assert item is not None
    await backend.send_message(_activity("p"))

    request = await backend.lock_next_activity(0)

    assert request is not None and request.instance.instance_id == "p"
    assert (await backend.get_instance("p")) is not None
    assert OrchestrationStatus.PENDING is (await backend.get_instance("p")).runtime_status  # type: ignore[union-attr]


async def test_waiters_do_not_accumulate(backend: InMemoryBackend, clock: FakeClock) -> None:
    for _ in range(5):
        assert await backend.lock_next_orchestration(0.001) is None
    waiting = asyncio.create_task(backend.lock_next_activity(LONG_WAIT))
    await asyncio.sleep(0)
    await backend.send_message(_activity("w"))
    assert await waiting is not None

    assert backend._signal._waiters == set()
