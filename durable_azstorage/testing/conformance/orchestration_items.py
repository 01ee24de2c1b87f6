"""Orchestration work items: lock, complete, abandon, renew, expiry, visibility."""

from __future__ import annotations

from datetime import timedelta

import pytest

from durable_azstorage.model import history as h
from durable_azstorage.model.errors import LockLostError
from durable_azstorage.model.messages import TaskMessage
from durable_azstorage.model.status import OrchestrationStatus

from .builders import episode, event_message, event_types, start_message
from .harness import BackendHarness


class OrchestrationItemConformance:
    """Orchestration work items: lock, complete, abandon, renew, expiry, visibility."""

    async def test_lock_next_returns_none_when_nothing_is_queued(
        self, harness: BackendHarness
    ) -> None:
        assert await harness.backend.lock_next_orchestration(harness.empty_timeout) is None
        assert await harness.backend.lock_next_orchestration(0) is None

    async def test_new_instance_is_delivered_with_empty_history(
        self, harness: BackendHarness
    ) -> None:
        start = start_message("lock-1")
        assert await harness.backend.create_instance(start) is True

        item = await harness.lock_orchestration()

        assert item.instance_id == "lock-1"
        assert item.history == ()
        assert item.messages == (start,)
        assert item.dequeue_count == 1

    async def test_complete_commits_history_and_state_and_consumes_messages(
        self,
        harness: BackendHarness,
    ) -> None:
        await harness.backend.create_instance(start_message("done-1"))
        item = await harness.lock_orchestration()
        commit = episode(
            item, now=harness.now(), status=OrchestrationStatus.COMPLETED, output='"hi"'
        )

        await harness.backend.complete_orchestration(item, commit)

        assert await harness.backend.get_history("done-1") == list(commit.new_events)
        state = await harness.backend.get_instance("done-1")
        assert state is not None
        assert state.runtime_status is OrchestrationStatus.COMPLETED
        assert state.output == '"hi"'
        assert await harness.no_orchestration()
        await harness.expire_locks()
        assert await harness.no_orchestration(), "consumed messages must not come back"

    async def test_second_episode_sees_the_first_ones_history(
        self, harness: BackendHarness
    ) -> None:
        await harness.backend.create_instance(start_message("two-eps"))
        first = await harness.lock_orchestration()
        commit = episode(first, now=harness.now())
        await harness.backend.complete_orchestration(first, commit)
        event = event_message("two-eps")
        await harness.backend.send_message(event)

        second = await harness.lock_orchestration()

        assert second.history == commit.new_events
        assert second.messages == (event,)

    async def test_abandon_redelivers_with_incremented_dequeue_count(
        self, harness: BackendHarness
    ) -> None:
        start = start_message("abandon-1")
        await harness.backend.create_instance(start)
        item = await harness.lock_orchestration()

        await harness.backend.abandon_orchestration(item)

        again = await harness.lock_orchestration()
        assert again.messages == (start,)
        assert again.dequeue_count == 2

    async def test_deferred_abandons_never_count_toward_poison(
        self, harness: BackendHarness
    ) -> None:
        """A worker that gives an item back by choice (a version it rejects, no SDK worker with
        matching filters) must not push it toward poison, however often it does so."""
        start = start_message("defer-1")
        await harness.backend.create_instance(start)
        for _ in range(3):
            item = await harness.lock_orchestration()
            assert item.dequeue_count == 1
            await harness.backend.abandon_orchestration(item, deferred=True)

        item = await harness.lock_orchestration()
        assert item.messages == (start,)
        assert item.dequeue_count == 1
        await harness.backend.abandon_orchestration(item)  # a failure counts again
        assert (await harness.lock_orchestration()).dequeue_count == 2

    async def test_deferred_abandon_does_not_hold_back_other_instances(
        self, harness: BackendHarness
    ) -> None:
        await harness.backend.create_instance(start_message("defer-held"))
        held = await harness.lock_orchestration()
        await harness.backend.abandon_orchestration(held, delay=harness.delay, deferred=True)
        await harness.backend.create_instance(start_message("defer-other"))

        other = await harness.lock_orchestration()

        assert other.instance_id == "defer-other"
        await harness.backend.abandon_orchestration(other)
        await harness.advance(harness.delay + timedelta(seconds=1))
        ids = {
            (await harness.lock_orchestration()).instance_id,
            (await harness.lock_orchestration()).instance_id,
        }
        assert ids == {"defer-held", "defer-other"}

    async def test_abandon_with_delay_hides_messages_until_it_passes(
        self, harness: BackendHarness
    ) -> None:
        await harness.backend.create_instance(start_message("abandon-delay"))
        item = await harness.lock_orchestration()

        await harness.backend.abandon_orchestration(item, delay=harness.delay)

        assert await harness.no_orchestration()
        await harness.advance(harness.delay + timedelta(seconds=1))
        again = await harness.lock_orchestration()
        assert again.instance_id == "abandon-delay"
        assert again.dequeue_count == 2

    async def test_expired_lock_redelivers_and_old_holder_loses(
        self, harness: BackendHarness
    ) -> None:
        await harness.backend.create_instance(start_message("expire-1"))
        first = await harness.lock_orchestration()

        await harness.expire_locks()
        second = await harness.lock_orchestration(harness.peer)

        assert second.instance_id == "expire-1"
        assert second.dequeue_count == first.dequeue_count + 1
        with pytest.raises(LockLostError):
            await harness.backend.renew_orchestration(first)
        with pytest.raises(LockLostError):
            await harness.backend.abandon_orchestration(first)
        await harness.peer.complete_orchestration(second, episode(second, now=harness.now()))

    async def test_renew_keeps_the_lock_past_its_original_expiry(
        self, harness: BackendHarness
    ) -> None:
        await harness.backend.create_instance(start_message("renew-1"))
        item = await harness.lock_orchestration()
        step = harness.lock_timeout * 0.6

        await harness.advance(step)
        await harness.backend.renew_orchestration(item)
        await harness.advance(step)

        assert await harness.no_orchestration(harness.peer), "a renewed lock must still hold"
        await harness.backend.complete_orchestration(item, episode(item, now=harness.now()))
        assert len(await harness.backend.get_history("renew-1")) == 3

    async def test_completion_after_lock_expiry_raises_lock_lost(
        self, harness: BackendHarness
    ) -> None:
        await harness.backend.create_instance(start_message("late-1"))
        item = await harness.lock_orchestration()
        await harness.expire_locks()

        with pytest.raises(LockLostError):
            await harness.backend.complete_orchestration(item, episode(item, now=harness.now()))

        assert await harness.backend.get_history("late-1") == []
        again = await harness.lock_orchestration()
        assert again.dequeue_count == 2

    async def test_one_work_item_per_instance_at_a_time(self, harness: BackendHarness) -> None:
        await harness.backend.create_instance(start_message("single-1"))
        item = await harness.lock_orchestration()
        event = event_message("single-1")
        await harness.backend.send_message(event)

        assert await harness.no_orchestration(harness.peer), "the instance is locked"
        await harness.backend.complete_orchestration(item, episode(item, now=harness.now()))

        nxt = await harness.lock_orchestration(harness.peer)
        assert nxt.messages == (event,), (
            "a message that arrived during the lock waits for the next item"
        )

    async def test_other_instances_are_delivered_while_one_is_locked(
        self, harness: BackendHarness
    ) -> None:
        await harness.backend.create_instance(start_message("busy-a"))
        await harness.backend.create_instance(start_message("busy-b"))
        a = await harness.lock_orchestration()
        b = await harness.lock_orchestration(harness.peer)
        assert {a.instance_id, b.instance_id} == {"busy-a", "busy-b"}

    async def test_several_queued_messages_come_in_one_item_in_order(
        self, harness: BackendHarness
    ) -> None:
        start = start_message("batch-1")
        events = [event_message("batch-1", name=f"e{i}", data=str(i)) for i in range(3)]
        await harness.backend.create_instance(start)
        for event in events:
            await harness.backend.send_message(event)

        item = await harness.lock_orchestration()

        assert item.messages[0] == start
        assert sorted(m.event.name for m in item.messages[1:]) == ["e0", "e1", "e2"]  # type: ignore[attr-defined]

    async def test_duplicate_messages_are_all_delivered(self, harness: BackendHarness) -> None:
        await harness.backend.create_instance(start_message("dup-1"))
        first = await harness.lock_orchestration()
        await harness.backend.complete_orchestration(first, episode(first, now=harness.now()))
        event = event_message("dup-1")

        await harness.backend.send_message(event)
        await harness.backend.send_message(event)

        delivered: list[TaskMessage] = []
        while len(delivered) < 2:
            item = await harness.lock_orchestration()
            delivered += item.messages
            await harness.backend.complete_orchestration(item, episode(item, now=harness.now()))
        assert delivered == [event, event], "at-least-once: the backend never drops a duplicate"

    async def test_timer_message_is_not_delivered_before_it_fires(
        self, harness: BackendHarness
    ) -> None:
        await harness.backend.create_instance(start_message("timer-1"))
        item = await harness.lock_orchestration()
        fire_at = harness.now() + harness.delay
        await harness.backend.complete_orchestration(
            item, episode(item, now=harness.now(), timers=(fire_at,))
        )

        assert await harness.no_orchestration()
        await harness.advance(harness.delay + timedelta(seconds=1))

        fired = await harness.lock_orchestration()
        assert event_types(m.event for m in fired.messages) == ["TimerFired"]
        assert isinstance(fired.messages[0].event, h.TimerFired)
        assert fired.messages[0].event.fire_at == fire_at

    async def test_scheduled_start_is_not_delivered_early(self, harness: BackendHarness) -> None:
        start_at = harness.now() + harness.delay
        await harness.backend.create_instance(
            start_message("later-1", scheduled_start_time=start_at)
        )
        state = await harness.backend.get_instance("later-1")
        assert state is not None and state.runtime_status is OrchestrationStatus.PENDING
        assert state.scheduled_start_time == start_at

        assert await harness.no_orchestration()
        await harness.advance(harness.delay + timedelta(seconds=1))

        item = await harness.lock_orchestration()
        assert item.instance_id == "later-1"

    async def test_event_for_a_pending_instance_waits_for_its_start(
        self, harness: BackendHarness
    ) -> None:
        start_at = harness.now() + harness.delay
        start = start_message("early-event", scheduled_start_time=start_at)
        await harness.backend.create_instance(start)
        event = event_message("early-event")
        await harness.backend.send_message(event)

        assert await harness.no_orchestration(), "an event must not run before ExecutionStarted"
        await harness.advance(harness.delay + timedelta(seconds=1))

        item = await harness.lock_orchestration()
        assert item.messages == (start, event)

    async def test_event_for_a_restarted_pending_instance_waits_for_the_new_start(
        self,
        harness: BackendHarness,
    ) -> None:
        """An ended instance replaced by a new, not yet started execution: an event raised now
        belongs to the new execution, not to the ended one."""
        await harness.backend.create_instance(start_message("restarted-1"))
        first = await harness.lock_orchestration()
        await harness.backend.complete_orchestration(
            first, episode(first, now=harness.now(), status=OrchestrationStatus.COMPLETED)
        )
        start_at = harness.now() + harness.delay
        again = start_message("restarted-1", scheduled_start_time=start_at)
        assert await harness.backend.create_instance(again)
        event = event_message("restarted-1")
        await harness.backend.send_message(event)

        assert await harness.no_orchestration(), "nothing runs before the new start"
        await harness.advance(harness.delay + timedelta(seconds=1))
        item = await harness.lock_orchestration()
        received = list(item.messages)
        if event not in received:  # the deferred event may come with the next work item
            await harness.backend.complete_orchestration(item, episode(item, now=harness.now()))
            item = await harness.lock_orchestration()
            received += item.messages
        assert received == [again, event]
