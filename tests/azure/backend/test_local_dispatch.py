"""Activities run in the process that committed the episode scheduling them (local dispatch).

No work-item message is sent; the consumed message stays hidden as the activities' carrier
(``local_carriers``) and the sentinel lists the tasks it stands for (``LocalTasks``). These
tests check the saving and inject the faults the protocol must survive, against a real
Azurite: a crash after the history write, a crash with activities in process (the carrier
reappears and its tasks go through the queue), an abandoned episode holding a local result
(the result goes back through the control queue: the activity does not run again), an
episode whose lock expires, and a carrier held longer than its visibility timeout.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Any

import pytest
from builders import MakeBackend, episode, kinds, start_message
from test_checkpoint import Crash
from test_results_in_process import CrashSwitch, _queued, _result

from durable_azstorage.azure.provider import AzureStorageBackend
from durable_azstorage.azure.settings import AzureStorageSettings
from durable_azstorage.backend.protocol import OrchestrationWorkItem
from durable_azstorage.model import history as h
from durable_azstorage.model.status import OrchestrationStatus

pytestmark = pytest.mark.azurite


@pytest.fixture
def settings(fast_settings: AzureStorageSettings) -> AzureStorageSettings:
    return dataclasses.replace(
        fast_settings,
        partition_count=1,
        control_queue_visibility_timeout=timedelta(seconds=4),
        work_item_visibility_timeout=timedelta(seconds=4),
    )


async def _worker(
    make_backend: MakeBackend, settings: AzureStorageSettings, **kw: Any
) -> AzureStorageBackend:
    """A backend that asked for both kinds of work once, as a worker's dispatchers do."""
    backend = await make_backend(settings=settings, **kw)
    assert await backend.lock_next_orchestration(0.01) is None
    assert await backend.lock_next_activity(0.01) is None
    return backend


async def _applying_a_local_result(
    backend: AzureStorageBackend, instance_id: str
) -> OrchestrationWorkItem:
    """Start ``instance_id`` scheduling A (run here), run A; the work item applying it."""
    await _schedule(backend, instance_id, "A")
    request = await backend.lock_next_activity(5)
    assert request is not None
    await backend.complete_activity(request, _result(request))
    item = await backend.lock_next_orchestration(5)
    assert item is not None
    return item


async def _local_tasks(backend: AzureStorageBackend, instance_id: str) -> dict[str, list[int]]:
    sentinel = await backend.hub.resources.history.sentinel(instance_id)
    return {carrier: list(tasks) for carrier, tasks in sentinel.local_tasks.by_carrier.items()}


async def _schedule(backend: AzureStorageBackend, instance_id: str, *names: str) -> None:
    assert await backend.create_instance(start_message(instance_id))
    item = await backend.lock_next_orchestration(10)
    assert item is not None
    await backend.complete_orchestration(item, episode(item, activities=names))


async def _recover_and_run(make_backend: MakeBackend, settings: AzureStorageSettings) -> list[str]:
    """A new worker recovers the visible carrier and runs every request it re-sent; their
    names (a third request would show up before the 2 s wait ends)."""
    survivor = await make_backend(settings=settings)
    assert await survivor.lock_next_orchestration(3) is None  # the carrier: recovered
    names = []
    while (request := await survivor.lock_next_activity(2)) is not None:
        names.append(request.name)
        await survivor.complete_activity(request, _result(request))
    return names


async def test_a_sequence_runs_without_work_item_messages_and_deletes_its_carrier(
    make_backend: MakeBackend, settings: AzureStorageSettings
) -> None:
    backend = await _worker(make_backend, settings)
    control, work_items = settings.names.control_queue_for("ld-1"), settings.names.work_item_queue
    await _schedule(backend, "ld-1", "A")
    assert await _queued(backend, work_items) == 0
    assert await _queued(backend, control) == 1  # the start, kept hidden as the carrier
    (carrier,) = (await _local_tasks(backend, "ld-1")).items()
    assert carrier[1] == [0]

    for name, then in (("A", ("B",)), ("B", ())):
        request = await backend.lock_next_activity(5)
        assert request is not None and request.name == name
        await backend.complete_activity(request, _result(request))
        item = await backend.lock_next_orchestration(5)
        assert item is not None and kinds(m.event for m in item.messages) == ["TaskCompleted"]
        status = OrchestrationStatus.RUNNING if then else OrchestrationStatus.COMPLETED
        await backend.complete_orchestration(item, episode(item, activities=then, status=status))

    assert await _queued(backend, control) == 0  # the carrier, deleted with its last task
    assert await _queued(backend, work_items) == 0
    assert await _local_tasks(backend, "ld-1") == {}
    assert backend.activities_dispatched_in_process == 2
    found = await backend.get_instance("ld-1")
    assert found is not None and found.runtime_status is OrchestrationStatus.COMPLETED


async def test_without_room_or_when_turned_off_requests_use_the_work_item_queue(
    make_backend: MakeBackend, settings: AzureStorageSettings
) -> None:
    off = await _worker(make_backend, dataclasses.replace(settings, local_activities=0))
    await _schedule(off, "ld-2", "A")
    assert await _queued(off, settings.names.work_item_queue) == 1
    assert await _local_tasks(off, "ld-2") == {}
    request = await off.lock_next_activity(5)
    assert request is not None and request.name == "A"


async def test_room_is_bounded_and_the_rest_goes_through_the_queue(
    make_backend: MakeBackend, settings: AzureStorageSettings
) -> None:
    backend = await _worker(make_backend, dataclasses.replace(settings, local_activities=2))
    await _schedule(backend, "ld-3", "A", "B", "C")
    assert await _queued(backend, settings.names.work_item_queue) == 1
    assert list((await _local_tasks(backend, "ld-3")).values()) == [[0, 1]]


async def test_a_crash_with_activities_in_process_sends_them_through_the_queue_once(
    make_backend: MakeBackend, settings: AzureStorageSettings
) -> None:
    crashing = await _worker(make_backend, settings)
    await _schedule(crashing, "ld-4", "A", "B")
    await crashing.stop()  # the carrier becomes visible; the local requests die with it

    assert sorted(await _recover_and_run(make_backend, settings)) == ["A", "B"]  # each once


async def test_a_crash_after_the_history_write_recovers_the_local_tasks(
    make_backend: MakeBackend, settings: AzureStorageSettings
) -> None:
    """The commit that plans A locally dies right after step 1: nothing was dispatched, the
    consumed start (the carrier) reappears and recovery sends A through the queue."""
    switch = CrashSwitch("history")
    switch.armed = True
    crashing = await make_backend(settings=settings, checkpoint_hook=switch)
    assert await crashing.lock_next_activity(0.01) is None
    assert await crashing.create_instance(start_message("ld-5"))
    item = await crashing.lock_next_orchestration(10)
    assert item is not None
    with pytest.raises(Crash):
        await crashing.complete_orchestration(item, episode(item, activities=("A",)))
    assert list((await _local_tasks(crashing, "ld-5")).values()) == [[0]]
    await crashing.stop()

    survivor = await make_backend(settings=settings)
    assert await survivor.lock_next_orchestration(8) is None  # recovered after its lock
    request = await survivor.lock_next_activity(5)
    assert request is not None and request.name == "A"


async def test_an_abandoned_episode_returns_a_local_result_without_running_it_again(
    make_backend: MakeBackend, settings: AzureStorageSettings
) -> None:
    backend = await _worker(make_backend, settings)
    item = await _applying_a_local_result(backend, "ld-6")
    await backend.abandon_orchestration(item)

    again = await backend.lock_next_orchestration(10)
    assert again is not None and kinds(m.event for m in again.messages) == ["TaskCompleted"]
    await backend.complete_orchestration(
        again, episode(again, status=OrchestrationStatus.COMPLETED)
    )
    assert await backend.lock_next_activity(1) is None  # A did not run again
    control = settings.names.control_queue_for("ld-6")
    assert await _queued(backend, control) == 0  # the returned result and the carrier: gone


async def test_an_episode_failing_after_its_history_write_gives_its_carrier_back(
    make_backend: MakeBackend, settings: AzureStorageSettings
) -> None:
    """The episode applying A's local result commits B and fails in step 2 (in process, not
    a crash). It consumed nothing but the local result, so its carrier is released: its
    recovery re-sends the episode's messages (B), and B runs through the queue."""
    switch = CrashSwitch("messages")
    backend = await _worker(make_backend, settings, checkpoint_hook=switch)
    item = await _applying_a_local_result(backend, "ld-7")
    switch.armed = True
    with pytest.raises(Crash):
        await backend.complete_orchestration(item, episode(item, activities=("B",)))
    switch.armed = False
    await backend.abandon_orchestration(item)

    assert await backend.lock_next_orchestration(3) is None  # the carrier, recovered
    names = []
    while (b := await backend.lock_next_activity(2)) is not None:
        names.append(b.name)
        await backend.complete_activity(b, _result(b))
    assert "B" in names and "A" not in names  # A's result was committed: not re-run
    history = await backend.get_history("ld-7")
    assert [e.name for e in history if isinstance(e, h.TaskScheduled)] == ["A", "B"]


async def test_a_carrier_outlives_its_visibility_timeout_while_its_activity_runs(
    make_backend: MakeBackend, settings: AzureStorageSettings
) -> None:
    """A local activity that runs three visibility timeouts: the carrier is renewed, so no
    other worker recovers it and the activity does not run twice."""
    backend = await _worker(make_backend, settings)
    await _schedule(backend, "ld-8", "A")
    request = await backend.lock_next_activity(5)
    assert request is not None
    competitor = await make_backend(settings=settings)
    assert await competitor.lock_next_orchestration(12) is None  # nothing reappeared
    assert await competitor.lock_next_activity(0.5) is None
    await backend.complete_activity(request, _result(request))
    item = await backend.lock_next_orchestration(5)
    assert item is not None and kinds(m.event for m in item.messages) == ["TaskCompleted"]


async def test_a_recovered_carrier_re_sends_tasks_of_earlier_episodes_without_a_result(
    make_backend: MakeBackend, settings: AzureStorageSettings
) -> None:
    """A and B are dispatched in process; the episode applying A's result schedules nothing
    (it is the last to consume the carrier). After a crash only the sentinel's record says
    that B, scheduled an episode earlier, still has no result: recovery sends B, not A."""
    crashing = await _worker(make_backend, settings)
    await _schedule(crashing, "ld-9", "A", "B")
    a = await crashing.lock_next_activity(5)
    assert a is not None and a.name == "A"
    await crashing.complete_activity(a, _result(a))
    item = await crashing.lock_next_orchestration(5)
    assert item is not None
    await crashing.complete_orchestration(item, episode(item))
    assert list((await _local_tasks(crashing, "ld-9")).values()) == [[1]]
    await crashing.stop()

    assert await _recover_and_run(make_backend, settings) == ["B"]
