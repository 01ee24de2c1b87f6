"""Timers and scheduled starts beyond the queue's delay limit, poison messages, zombies."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest
from builders import MakeBackend, episode, event_message, kinds, now, start_message

from durable_azstorage.azure.settings import AzureStorageSettings
from durable_azstorage.model import history as h
from durable_azstorage.model.status import OrchestrationStatus

pytestmark = pytest.mark.azurite


@pytest.fixture
def chained(fast_settings: AzureStorageSettings) -> AzureStorageSettings:
    # A 1-second "queue limit": every timer below is chained through several messages.
    return dataclasses.replace(fast_settings, max_timer_delay=timedelta(seconds=1))


async def test_long_timer_is_chained_and_fires_on_time(
    make_backend: MakeBackend, chained: AzureStorageSettings
) -> None:
    backend = await make_backend(settings=chained)
    assert await backend.create_instance(start_message("timer-1"))
    item = await backend.lock_next_orchestration(10)
    assert item is not None
    fire_at = now() + timedelta(seconds=4)
    puts_before = backend.request_counter.snapshot().counts.get(("queue", "PutMessage"), 0)
    await backend.complete_orchestration(item, episode(item, timers=(fire_at,)))
    fired = await backend.lock_next_orchestration(20)
    assert fired is not None
    assert now() >= fire_at, "a chained timer was delivered before its fire_at"
    assert kinds(m.event for m in fired.messages) == ["TimerFired"]
    puts = backend.request_counter.snapshot().counts[("queue", "PutMessage")] - puts_before
    assert puts >= 3, f"expected the timer to be re-sent in legs of <= 1 s, saw {puts} sends"


async def test_scheduled_start_waits_and_events_before_it_wait_too(
    make_backend: MakeBackend, chained: AzureStorageSettings
) -> None:
    backend = await make_backend(settings=chained)
    start_at = now() + timedelta(seconds=3)
    assert await backend.create_instance(start_message("sched-1", scheduled_start_time=start_at))
    await backend.send_message(event_message("sched-1", "Early"))
    state = await backend.get_instance("sched-1")
    assert state is not None and state.runtime_status is OrchestrationStatus.PENDING
    item = await backend.lock_next_orchestration(20)
    assert item is not None
    assert now() >= start_at
    assert kinds(m.event for m in item.messages)[0] == "ExecutionStarted"
    received = list(kinds(m.event for m in item.messages))
    if "EventRaised" not in received:  # the deferred event may come in the next work item
        await backend.complete_orchestration(item, episode(item))
        item = await backend.lock_next_orchestration(20)
        assert item is not None
        received = kinds(m.event for m in item.messages)
    assert "EventRaised" in received


async def test_undecodable_message_is_quarantined_not_retried(make_backend: MakeBackend) -> None:
    backend = await make_backend()
    control = await backend.queue(backend.names.control_queues[0])
    await control.send_text("this is not a message")
    assert await backend.lock_next_orchestration(3) is None
    records = await backend.poison.list()
    assert len(records) == 1
    assert records[0].body == "this is not a message"
    assert "cannot decode" in records[0].reason
    assert len(await control.client.peek_messages(max_messages=32)) == 0


async def test_undecodable_activity_request_is_quarantined(make_backend: MakeBackend) -> None:
    backend = await make_backend()
    work = await backend.queue(backend.names.work_item_queue)
    await work.send_text('{"v": 99, "event": {}}')
    assert await backend.lock_next_activity(3) is None
    records = await backend.poison.list()
    assert [r.queue_name for r in records] == [backend.names.work_item_queue]
    assert "version" in records[0].reason or "v" in records[0].reason
    assert len(await work.client.peek_messages(max_messages=32)) == 0


async def test_message_delivered_too_often_is_quarantined(
    make_backend: MakeBackend, fast_settings: AzureStorageSettings
) -> None:
    settings = dataclasses.replace(fast_settings, max_dequeue_count=2)
    backend = await make_backend(settings=settings)
    assert await backend.create_instance(start_message("poison-1"))
    for attempt in (1, 2):
        item = await backend.lock_next_orchestration(10)
        assert item is not None and item.dequeue_count == attempt
        await backend.abandon_orchestration(item)
    item = await backend.lock_next_orchestration(10)
    assert item is not None and item.dequeue_count == 3  # the worker fails the instance now
    records = await backend.poison.list()
    assert [r.instance_id for r in records] == ["poison-1"]
    assert "delivered 3 times (max_dequeue_count=2)" in records[0].reason
    assert item.quarantined == (records[0].key,)  # so the worker's failure can name it
    await backend.complete_orchestration(
        item, episode(item, status=OrchestrationStatus.FAILED, output=None)
    )
    # Replaying the kept copy delivers it again (a duplicate start: discarded, logged).
    assert await backend.replay_poison(records[0].key)
    assert await backend.poison.list() == []
    assert not await backend.replay_poison(records[0].key)
    assert await backend.lock_next_orchestration(3) is None


async def test_zombie_messages_are_discarded(make_backend: MakeBackend) -> None:
    backend = await make_backend()
    # An event for an instance that does not exist.
    await backend.send_message(event_message("nobody"))
    assert await backend.lock_next_orchestration(3) is None
    # A result for a replaced execution, and an event for a completed one.
    assert await backend.create_instance(start_message("done-1"))
    item = await backend.lock_next_orchestration(10)
    assert item is not None
    await backend.complete_orchestration(
        item, episode(item, status=OrchestrationStatus.COMPLETED, output='"ok"')
    )
    stale = h.OrchestrationInstance(instance_id="done-1", execution_id="an-old-execution")
    from durable_azstorage.model.messages import TaskMessage

    await backend.send_message(
        TaskMessage(instance=stale, event=h.TaskCompleted(task_scheduled_id=0, result='"late"'))
    )
    await backend.send_message(event_message("done-1"))
    assert await backend.lock_next_orchestration(3) is None
    assert kinds(await backend.get_history("done-1"))[-2] == "ExecutionCompleted"


async def test_a_large_poison_message_is_kept_whole_and_replays(
    make_backend: MakeBackend, fast_settings: AzureStorageSettings
) -> None:
    """Its payload blob goes when the message is consumed, so the kept copy holds the body."""
    settings = dataclasses.replace(fast_settings, max_dequeue_count=1)
    backend = await make_backend(settings=settings)
    assert await backend.create_instance(start_message("bigpoison-1"))
    item = await backend.lock_next_orchestration(10)
    assert item is not None
    await backend.complete_orchestration(item, episode(item))
    big = '"' + "y" * 60_000 + '"'
    await backend.send_message(event_message("bigpoison-1", "Big", data=big))
    item = await backend.lock_next_orchestration(10)
    assert item is not None
    await backend.abandon_orchestration(item)
    item = await backend.lock_next_orchestration(10)
    assert item is not None and item.quarantined
    await backend.complete_orchestration(item, episode(item))  # consumed: its blob is gone
    assert await backend.replay_poison(item.quarantined[0])
    replayed = await backend.lock_next_orchestration(10)
    assert replayed is not None
    assert [m.event.input for m in replayed.messages] == [big]  # type: ignore[attr-defined]
