"""Recovery finishes the episode that consumed a redelivered message, each with the fault
injected against a real Azurite.

The crashing backend holds its messages for 10 s, so a survivor can commit a newer episode
of the same instance before they come back — as a worker that took a dead worker's partition
over does.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Sequence
from datetime import timedelta

import pytest
from builders import MakeBackend, episode, event_message, kinds, now, start_message, started_of
from test_checkpoint import Crash, activity_names, crash_at

from durable_azstorage.azure.settings import AzureStorageSettings
from durable_azstorage.backend.protocol import OrchestrationCommit, OrchestrationWorkItem
from durable_azstorage.model import history as h
from durable_azstorage.model.messages import TaskMessage
from durable_azstorage.model.state import InstanceState
from durable_azstorage.model.status import OrchestrationStatus

pytestmark = pytest.mark.azurite


@pytest.fixture
def slow_settings(fast_settings: AzureStorageSettings) -> AzureStorageSettings:
    return dataclasses.replace(
        fast_settings, partition_count=1, control_queue_visibility_timeout=timedelta(seconds=10)
    )


async def _crash_first_episode(
    make_backend: MakeBackend,
    settings: AzureStorageSettings,
    instance_id: str,
    *,
    activities: tuple[str, ...],
) -> None:
    """Episode 1 of ``instance_id`` commits its history, then its process dies."""
    crashing = await make_backend(settings=settings, checkpoint_hook=crash_at("history"))
    assert await crashing.create_instance(start_message(instance_id))
    item = await crashing.lock_next_orchestration(10)
    assert item is not None
    with pytest.raises(Crash):
        await crashing.complete_orchestration(item, episode(item, activities=activities))
    await crashing.stop()


def _continue_as_new(
    item: OrchestrationWorkItem, *, extra: Sequence[TaskMessage] = ()
) -> OrchestrationCommit:
    """A commit replacing the execution with a new generation (that runs nothing yet)."""
    previous = started_of(item)
    me = h.OrchestrationInstance(instance_id=item.instance_id, execution_id=uuid.uuid4().hex)
    t = now()
    started = h.ExecutionStarted(
        name=previous.name,
        instance=me,
        input='"next"',
        timestamp=t,
        generation=previous.generation + 1,
    )
    events = (h.OrchestratorStarted(timestamp=t), started, h.OrchestratorCompleted(timestamp=t))
    state = InstanceState(
        instance_id=item.instance_id,
        execution_id=me.execution_id,
        name=previous.name,
        runtime_status=OrchestrationStatus.RUNNING,
        created_at=t,
        last_updated_at=t,
        input='"next"',
        generation=started.generation,
    )
    return OrchestrationCommit(
        new_events=events, state=state, new_execution=True, orchestrator_messages=tuple(extra)
    )


async def test_recovery_resends_the_episode_that_consumed_the_message_not_the_last(
    make_backend: MakeBackend, slow_settings: AzureStorageSettings
) -> None:
    await _crash_first_episode(make_backend, slow_settings, "older-1", activities=("A",))
    survivor = await make_backend(settings=dataclasses.replace(slow_settings))
    await survivor.send_message(event_message("older-1", "E"))
    newer = await survivor.lock_next_orchestration(5)
    assert newer is not None and kinds(m.event for m in newer.messages) == ["EventRaised"]
    await survivor.complete_orchestration(newer, episode(newer, activities=("B",)))
    # Episode 2's activity is requested; episode 1's start message comes back within 10 s
    # and recovery must request episode 1's activity, never sent before the crash.
    assert await survivor.lock_next_orchestration(15) is None
    assert sorted(await activity_names(survivor, 2, timeout=15)) == ["A", "B"]


async def test_recovery_resends_an_episode_whose_execution_was_replaced(
    make_backend: MakeBackend, slow_settings: AzureStorageSettings
) -> None:
    await _crash_first_episode(make_backend, slow_settings, "replaced-1", activities=("A",))
    survivor = await make_backend(settings=slow_settings)
    await survivor.send_message(event_message("replaced-1", "E"))
    newer = await survivor.lock_next_orchestration(5)
    assert newer is not None
    await survivor.complete_orchestration(newer, _continue_as_new(newer))
    assert await survivor.lock_next_orchestration(15) is None  # the start came back: recovered
    assert await activity_names(survivor, 1, timeout=15) == ["A"]


async def test_messages_of_generations_before_the_last_survive_a_crash(
    make_backend: MakeBackend, slow_settings: AzureStorageSettings
) -> None:
    """A continue-as-new episode that ran several generations commits only the last one;
    an event sent by an earlier generation is in its outbox."""
    backend = await make_backend(settings=slow_settings)
    assert await backend.create_instance(start_message("target-1"))
    target = await backend.lock_next_orchestration(10)
    assert target is not None
    await backend.complete_orchestration(target, episode(target))
    await backend.stop()

    crashing = await make_backend(settings=slow_settings, checkpoint_hook=crash_at("history"))
    assert await crashing.create_instance(start_message("sender-1"))
    item = await crashing.lock_next_orchestration(10)
    assert item is not None and item.instance_id == "sender-1"
    sent_early = TaskMessage(
        instance=h.OrchestrationInstance(instance_id="target-1"),
        event=h.EventRaised(name="FromGeneration0", input='"hi"', timestamp=now()),
        sender=started_of(item).instance,
    )
    with pytest.raises(Crash):
        await crashing.complete_orchestration(item, _continue_as_new(item, extra=[sent_early]))
    await crashing.stop()

    survivor = await make_backend(settings=slow_settings)
    got = await survivor.lock_next_orchestration(20)
    while got is not None and got.instance_id != "target-1":
        await survivor.abandon_orchestration(got)
        got = await survivor.lock_next_orchestration(20)
    assert got is not None, "the event sent before continue-as-new was lost"
    assert [e.name for e in (m.event for m in got.messages)] == ["FromGeneration0"]  # type: ignore[attr-defined]


async def test_an_episode_whose_only_output_is_a_timer_sends_it(
    make_backend: MakeBackend, fast_settings: AzureStorageSettings
) -> None:
    backend = await make_backend()
    assert await backend.create_instance(start_message("rearm-1"))
    item = await backend.lock_next_orchestration(10)
    assert item is not None
    await backend.complete_orchestration(item, episode(item))
    await backend.send_message(event_message("rearm-1", "Nudge"))
    item = await backend.lock_next_orchestration(10)
    assert item is not None
    me = started_of(item).instance
    fire_at = now() + timedelta(seconds=1)
    rearmed = TaskMessage(
        instance=me, event=h.TimerFired(timer_id=7, fire_at=fire_at, timestamp=fire_at), sender=me
    )
    base = episode(item)
    await backend.complete_orchestration(
        item, dataclasses.replace(base, new_events=(), timer_messages=(rearmed,))
    )
    fired = await backend.lock_next_orchestration(15)
    assert fired is not None, "the re-armed timer was dropped"
    assert kinds(m.event for m in fired.messages) == ["TimerFired"]


async def test_a_recovery_that_keeps_failing_becomes_poison(
    make_backend: MakeBackend, slow_settings: AzureStorageSettings
) -> None:
    settings = dataclasses.replace(
        slow_settings, control_queue_visibility_timeout=timedelta(seconds=3), max_dequeue_count=3
    )
    await _crash_first_episode(make_backend, settings, "stuck-1", activities=("A",))
    survivor = await make_backend(settings=settings)
    attempts: list[int] = []

    async def refuse(messages: Sequence[TaskMessage]) -> None:
        attempts.append(len(messages))
        raise ValueError("refused by the test")

    # The fault: every send of the recovering checkpoint is refused (as a 400 would be).
    survivor._orchestrations._checkpoint._send_all = refuse
    assert await survivor.lock_next_orchestration(25) is None
    records = await survivor.poison.list()
    assert [r.instance_id for r in records] == ["stuck-1"]
    assert "recovery of its committed episode failed" in records[0].reason
    assert len(attempts) == 3, (
        f"deliveries 2-4 fail (1 was the crash), the 4th is poison: {attempts}"
    )


async def test_a_recovery_past_the_delivery_limit_still_sends_the_episodes_messages(
    make_backend: MakeBackend, slow_settings: AzureStorageSettings
) -> None:
    """Deliveries whose holder died count as failed: a message past the limit that way must
    not be set aside unrecovered, or the activity its episode committed is never requested
    and the instance waits forever (seen as torture seed 53 on a loaded machine)."""
    settings = dataclasses.replace(
        slow_settings, control_queue_visibility_timeout=timedelta(seconds=3), max_dequeue_count=1
    )
    await _crash_first_episode(make_backend, settings, "crashed-1", activities=("A",))
    survivor = await make_backend(settings=settings)
    assert await survivor.lock_next_orchestration(15) is None  # delivery 2: recovered
    assert await activity_names(survivor, 1, timeout=15) == ["A"]
    assert await survivor.poison.list() == []


async def test_the_instances_row_never_goes_backwards(make_backend: MakeBackend) -> None:
    backend = await make_backend()
    assert await backend.create_instance(start_message("mono-1"))
    item = await backend.lock_next_orchestration(10)
    assert item is not None
    running = episode(item).state
    done = dataclasses.replace(
        running, runtime_status=OrchestrationStatus.COMPLETED, completed_at=now(), output='"ok"'
    )
    store = backend.hub.resources.instances
    assert await store.write_episode(done, 5) is not None
    assert await store.write_episode(running, 4) is None, "an older episode overwrote a newer"
    state = await backend.get_instance("mono-1")
    assert state is not None and state.runtime_status is OrchestrationStatus.COMPLETED
    # A continue-as-new execution at a later episode replaces it; a client's Pending start of
    # another execution is never overwritten by an older execution's episode.
    nxt = dataclasses.replace(running, execution_id="next-exec")
    assert await store.write_episode(nxt, 6) is not None
    pending = dataclasses.replace(
        running, execution_id="client-exec", runtime_status=OrchestrationStatus.PENDING
    )
    await store.upsert(pending)
    assert await store.write_episode(nxt, 7) is None
    # ... unless the episode started from that very execution (a first episode that continued
    # as new at once: its state names a later execution than the client's Pending row).
    successor = dataclasses.replace(running, execution_id="after-client-exec")
    assert await store.write_episode(successor, 8, predecessors=frozenset({"client-exec"}))
    state = await backend.get_instance("mono-1")
    assert state is not None and state.execution_id == "after-client-exec"


async def test_a_consumed_large_message_leaves_no_blob_behind(make_backend: MakeBackend) -> None:
    """Payload blobs of delivered messages go with the message, not only with purge
    (an eternal orchestration's large events would otherwise pile up)."""
    backend = await make_backend()
    assert await backend.create_instance(start_message("big-1"))
    item = await backend.lock_next_orchestration(10)
    assert item is not None
    await backend.complete_orchestration(item, episode(item))
    big = '"' + "x" * 60_000 + '"'
    await backend.send_message(event_message("big-1", "Big", data=big))
    container = backend._clients.container(backend.names.large_messages_container)
    before = [b.name async for b in container.list_blobs(name_starts_with="big-1/message-")]
    assert len(before) == 1, "the large event should travel as a blob"
    item = await backend.lock_next_orchestration(10)
    assert item is not None and item.messages[0].event.input == big  # type: ignore[attr-defined]
    await backend.complete_orchestration(item, episode(item))
    after = [b.name async for b in container.list_blobs(name_starts_with="big-1/message-")]
    assert after == []
