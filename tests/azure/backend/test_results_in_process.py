"""Activity results handed to the orchestration in process, carried by their request message.

A worker that receives the orchestration's partition buffers an activity's result at once
(no control-queue send, receive and delete); the request message stays hidden and is deleted
by the checkpoint of the episode that applies the result. These tests inject the faults that
protocol must survive, against a real Azurite: a crash right after that episode's history
write (the request reappears, the activity runs again, recovery re-sends the episode's
messages whichever way the second result travels), and an abandoned episode (the result
goes back to the control queue; the activity does not run again).
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest
from builders import MakeBackend, episode, kinds, start_message
from test_checkpoint import Crash

from durable_azstorage.azure.provider import AzureStorageBackend
from durable_azstorage.azure.settings import AzureStorageSettings
from durable_azstorage.backend.protocol import ActivityWorkItem
from durable_azstorage.model import history as h
from durable_azstorage.model.messages import TaskMessage

pytestmark = pytest.mark.azurite


class CrashSwitch:
    """A checkpoint hook that kills the commit after ``step`` once armed."""

    def __init__(self, step: str) -> None:
        self.step = step
        self.armed = False

    async def __call__(self, reached: str, instance_id: str) -> None:
        if self.armed and reached == self.step:
            raise Crash(f"killed after step {reached!r} for {instance_id}")


@pytest.fixture
def settings(fast_settings: AzureStorageSettings) -> AzureStorageSettings:
    return dataclasses.replace(
        fast_settings,
        partition_count=1,
        control_queue_visibility_timeout=timedelta(seconds=6),
        work_item_visibility_timeout=timedelta(seconds=6),
    )


def _result(item: ActivityWorkItem, value: str = '"ok"') -> TaskMessage:
    return TaskMessage(
        instance=item.instance,
        event=h.TaskCompleted(task_scheduled_id=item.task_id, result=value),
    )


async def _queued(backend: AzureStorageBackend, name: str) -> int:
    """Messages in ``name``, hidden ones included."""
    queue = await backend.queue(name)
    properties = await queue.client.get_queue_properties()
    return int(properties.approximate_message_count or 0)


async def _serve(backend: AzureStorageBackend) -> None:
    """Ask for orchestration work once, as a worker's dispatcher does."""
    assert await backend.lock_next_orchestration(0.01) is None


async def _first_activity_done(
    backend: AzureStorageBackend, instance_id: str
) -> tuple[ActivityWorkItem, int]:
    """Start ``instance_id``, commit an episode scheduling activity A, run A; returns A's
    work item and the control-queue sends the result cost."""
    assert await backend.create_instance(start_message(instance_id))
    item = await backend.lock_next_orchestration(10)
    assert item is not None
    await backend.complete_orchestration(item, episode(item, activities=("A",)))
    request = await backend.lock_next_activity(10)
    assert request is not None and request.name == "A"
    before = backend.request_counter.snapshot()
    await backend.complete_activity(request, _result(request))
    sent = (backend.request_counter.snapshot() - before).counts.get(("queue", "PutMessage"), 0)
    return request, sent


async def test_a_result_reaches_the_orchestration_without_a_control_message(
    make_backend: MakeBackend, settings: AzureStorageSettings
) -> None:
    backend = await make_backend(settings=settings)
    await _serve(backend)
    _request, sent = await _first_activity_done(backend, "inproc-1")
    assert sent == 0
    assert backend.activity_results_in_process == 1

    item = await backend.lock_next_orchestration(5)
    assert item is not None and kinds(m.event for m in item.messages) == ["TaskCompleted"]
    work_items = settings.names.work_item_queue
    assert await _queued(backend, work_items) == 1  # the request carries the result until...
    await backend.complete_orchestration(item, episode(item))
    assert await _queued(backend, work_items) == 0  # ...the episode that applied it commits


async def test_a_process_that_takes_no_orchestration_work_sends_results_through_the_queue(
    make_backend: MakeBackend, settings: AzureStorageSettings
) -> None:
    worker = await make_backend(settings=settings)
    await _serve(worker)
    assert await worker.create_instance(start_message("inproc-2"))
    item = await worker.lock_next_orchestration(10)
    assert item is not None
    await worker.complete_orchestration(item, episode(item, activities=("A",)))
    activities_only = await make_backend(settings=settings)
    request = await activities_only.lock_next_activity(10)
    assert request is not None
    await activities_only.complete_activity(request, _result(request))
    assert activities_only.activity_results_in_process == 0
    assert await _queued(worker, settings.names.work_item_queue) == 0
    result = await worker.lock_next_orchestration(10)
    assert result is not None and kinds(m.event for m in result.messages) == ["TaskCompleted"]


@pytest.mark.parametrize("second_result", ["in process", "through the control queue"])
async def test_a_crash_after_the_history_write_is_recovered_by_the_second_result(
    make_backend: MakeBackend, settings: AzureStorageSettings, second_result: str
) -> None:
    """The episode applying A's result commits its history (scheduling B) and dies before
    sending B's request or deleting A's. A's request reappears and runs again; its second
    result, however it travels, is recognised as consumed and recovery sends B."""
    switch = CrashSwitch("history")
    crashing = await make_backend(settings=settings, checkpoint_hook=switch)
    await _serve(crashing)
    await _first_activity_done(crashing, "inproc-3")
    applying = await crashing.lock_next_orchestration(5)
    assert applying is not None
    switch.armed = True
    with pytest.raises(Crash):
        await crashing.complete_orchestration(applying, episode(applying, activities=("B",)))
    await crashing.stop()  # its locks are left to expire, as a dead process's would

    survivor = await make_backend(settings=settings)
    if second_result == "in process":
        await _serve(survivor)
    again = await survivor.lock_next_activity(15)
    assert again is not None and again.name == "A" and again.dequeue_count == 2
    await survivor.complete_activity(again, _result(again, '"again"'))
    assert survivor.activity_results_in_process == (1 if second_result == "in process" else 0)

    assert await survivor.lock_next_orchestration(5) is None  # recovered, nothing to apply
    b = await survivor.lock_next_activity(10)
    assert b is not None and b.name == "B"
    history = await survivor.get_history("inproc-3")
    completed = [e for e in history if isinstance(e, h.TaskCompleted)]
    assert [e.result for e in completed] == ['"ok"']  # the second result was not applied
    assert await _queued(survivor, settings.names.work_item_queue) == 1  # B only


async def test_an_abandoned_episode_returns_the_result_without_running_the_activity_again(
    make_backend: MakeBackend, settings: AzureStorageSettings
) -> None:
    backend = await make_backend(settings=settings)
    await _serve(backend)
    await _first_activity_done(backend, "inproc-4")
    item = await backend.lock_next_orchestration(5)
    assert item is not None
    await backend.abandon_orchestration(item)

    assert await _queued(backend, settings.names.work_item_queue) == 0
    assert await _queued(backend, settings.names.control_queue_for("inproc-4")) == 1
    again = await backend.lock_next_orchestration(10)
    assert again is not None and kinds(m.event for m in again.messages) == ["TaskCompleted"]
    await backend.complete_orchestration(again, episode(again))
    assert await backend.lock_next_activity(1) is None
    history = await backend.get_history("inproc-4")
    assert kinds(e for e in history if isinstance(e, h.TaskCompleted)) == ["TaskCompleted"]


async def test_a_result_waiting_longer_than_the_lock_keeps_its_request_hidden(
    make_backend: MakeBackend, settings: AzureStorageSettings
) -> None:
    """Nobody asks for the instance's work item for longer than the request's lock: the
    worker renews the request meanwhile, so the activity does not run again."""
    backend = await make_backend(settings=settings)
    await _serve(backend)
    await _first_activity_done(backend, "inproc-5")
    competitor = await make_backend(settings=settings)
    assert await competitor.lock_next_activity(10) is None  # > 6 s visibility timeout

    item = await backend.lock_next_orchestration(5)
    assert item is not None and kinds(m.event for m in item.messages) == ["TaskCompleted"]
    await backend.complete_orchestration(item, episode(item))
    assert await _queued(backend, settings.names.work_item_queue) == 0


async def test_a_quarantined_carried_result_is_replayed_to_its_control_queue(
    make_backend: MakeBackend, settings: AzureStorageSettings
) -> None:
    """A result carried by its request that is set aside as poison belongs to the
    orchestration's control queue: replaying it must not put a result on the work-item queue."""
    backend = await make_backend(settings=settings)
    await _serve(backend)
    await _first_activity_done(backend, "inproc-6")
    item = await backend.lock_next_orchestration(5)
    assert item is not None
    lock_messages = item.lock_token.messages  # type: ignore[attr-defined]
    (carried,) = [m for m in lock_messages if m.carried_for is not None]
    control = settings.names.control_queue_for("inproc-6")
    record = await backend.poison.put(carried, "test: delivered too often")
    assert record.queue_name == control
    await backend.complete_orchestration(item, episode(item))

    assert await backend.replay_poison(record.key)
    again = await backend.lock_next_orchestration(10)
    assert again is not None and kinds(m.event for m in again.messages) == ["TaskCompleted"]
    assert await _queued(backend, settings.names.work_item_queue) == 0
