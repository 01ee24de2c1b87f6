"""Commits: ETag races, stale and foreign locks, continue-as-new, outbound routing."""

from __future__ import annotations

import dataclasses

import pytest

from durable_azstorage.backend.protocol import OrchestrationCommit, OrchestrationWorkItem
from durable_azstorage.model import history as h
from durable_azstorage.model.errors import ConcurrencyConflictError, LockLostError
from durable_azstorage.model.status import OrchestrationStatus

from .builders import (
    episode,
    event_message,
    event_types,
    execution_id_of,
    instance,
    start_message,
    state,
)
from .harness import BackendHarness


async def _started(harness: BackendHarness, instance_id: str) -> OrchestrationWorkItem:
    await harness.backend.create_instance(start_message(instance_id))
    return await harness.lock_orchestration()


class CheckpointConformance:
    """Commits: ETag races, stale and foreign locks, continue-as-new, outbound routing."""

    async def test_etag_race_rejects_the_loser_and_sends_nothing(
        self, harness: BackendHarness
    ) -> None:
        loser = await _started(harness, "race-1")
        await harness.expire_locks()
        winner = await harness.lock_orchestration(harness.peer)
        await harness.peer.complete_orchestration(
            winner, episode(winner, now=harness.now(), activities=("Winner",))
        )

        with pytest.raises(ConcurrencyConflictError):
            await harness.backend.complete_orchestration(
                loser, episode(loser, now=harness.now(), activities=("Loser",))
            )

        history = await harness.backend.get_history("race-1")
        assert [e.name for e in history if isinstance(e, h.TaskScheduled)] == ["Winner"]
        request = await harness.lock_activity()
        assert request.name == "Winner"
        assert await harness.no_activity(), "the loser's activity request must not be sent"

    async def test_concurrency_conflict_is_a_lock_lost_error(self, harness: BackendHarness) -> None:
        """Callers that only handle LockLostError (abandon and move on) also handle conflicts."""
        assert issubclass(ConcurrencyConflictError, LockLostError)

    async def test_stale_lock_cannot_commit_after_another_worker_relocked(
        self,
        harness: BackendHarness,
    ) -> None:
        stale = await _started(harness, "stale-1")
        await harness.expire_locks()
        current = await harness.lock_orchestration(harness.peer)

        with pytest.raises(LockLostError):
            await harness.backend.complete_orchestration(
                stale, episode(stale, now=harness.now(), activities=("Stale",))
            )

        assert await harness.backend.get_history("stale-1") == []
        assert await harness.no_activity()
        await harness.peer.complete_orchestration(current, episode(current, now=harness.now()))
        assert len(await harness.backend.get_history("stale-1")) == 3

    async def test_foreign_lock_token_is_refused(self, harness: BackendHarness) -> None:
        item = await _started(harness, "foreign-1")
        forged = dataclasses.replace(item, lock_token=object())
        commit = episode(item, now=harness.now())

        with pytest.raises(LockLostError):
            await harness.backend.complete_orchestration(forged, commit)
        with pytest.raises(LockLostError):
            await harness.backend.renew_orchestration(forged)
        with pytest.raises(LockLostError):
            await harness.backend.abandon_orchestration(forged)

        await harness.backend.complete_orchestration(item, commit)

    async def test_lock_of_one_instance_does_not_unlock_another(
        self, harness: BackendHarness
    ) -> None:
        a = await _started(harness, "mix-a")
        await harness.backend.create_instance(start_message("mix-b"))
        b = await harness.lock_orchestration()
        swapped = dataclasses.replace(
            a, instance_id=b.instance_id, history=b.history, messages=b.messages
        )

        with pytest.raises(LockLostError):
            await harness.backend.complete_orchestration(swapped, episode(b, now=harness.now()))
        await harness.backend.complete_orchestration(b, episode(b, now=harness.now()))

    async def test_completed_lock_cannot_be_used_again(self, harness: BackendHarness) -> None:
        item = await _started(harness, "twice-1")
        await harness.backend.complete_orchestration(item, episode(item, now=harness.now()))

        with pytest.raises(LockLostError):
            await harness.backend.complete_orchestration(item, episode(item, now=harness.now()))
        with pytest.raises(LockLostError):
            await harness.backend.abandon_orchestration(item)
        with pytest.raises(LockLostError):
            await harness.backend.renew_orchestration(item)
        assert len(await harness.backend.get_history("twice-1")) == 3

    async def test_commit_without_events_still_consumes_the_messages(
        self, harness: BackendHarness
    ) -> None:
        first = await _started(harness, "noop-1")
        await harness.backend.complete_orchestration(first, episode(first, now=harness.now()))
        await harness.backend.send_message(event_message("noop-1"))
        stale = await harness.lock_orchestration()
        current = await harness.backend.get_instance("noop-1")
        assert current is not None

        await harness.backend.complete_orchestration(
            stale, OrchestrationCommit(new_events=(), state=current)
        )

        assert len(await harness.backend.get_history("noop-1")) == 3
        await harness.expire_locks()
        assert await harness.no_orchestration()

    async def test_continue_as_new_replaces_the_history(self, harness: BackendHarness) -> None:
        first = await _started(harness, "can-1")
        await harness.backend.complete_orchestration(first, episode(first, now=harness.now()))
        await harness.backend.send_message(event_message("can-1"))
        second = await harness.lock_orchestration()
        new_start = start_message("can-1", input='"gen-2"')
        assert isinstance(new_start.event, h.ExecutionStarted)
        new_events = (
            h.OrchestratorStarted(timestamp=harness.now()),
            dataclasses.replace(new_start.event, generation=1),
        )
        new_state = dataclasses.replace(
            state(second, OrchestrationStatus.RUNNING, now=harness.now()),
            execution_id=new_start.instance.execution_id,
            input='"gen-2"',
            generation=1,
        )

        await harness.backend.complete_orchestration(
            second, OrchestrationCommit(new_events=new_events, state=new_state, new_execution=True)
        )

        assert await harness.backend.get_history("can-1") == list(new_events)
        stored = await harness.backend.get_instance("can-1")
        assert stored is not None and stored.execution_id == new_start.instance.execution_id
        assert stored.generation == 1
        await harness.backend.send_message(event_message("can-1", name="next"))
        third = await harness.lock_orchestration()
        assert third.history == new_events
        assert execution_id_of(third) == new_start.instance.execution_id

    async def test_orchestrator_messages_reach_the_target_instance(
        self, harness: BackendHarness
    ) -> None:
        parent = await _started(harness, "parent-1")
        child_start = start_message("parent-1:child", name="Child")
        await harness.backend.complete_orchestration(
            parent, episode(parent, now=harness.now(), send_to=(child_start,))
        )

        child = await harness.lock_orchestration()

        assert child.instance_id == "parent-1:child"
        assert child.messages == (child_start,)
        assert child.history == ()

    async def test_activity_result_reaches_the_orchestration(self, harness: BackendHarness) -> None:
        item = await _started(harness, "act-flow")
        await harness.backend.complete_orchestration(
            item, episode(item, now=harness.now(), activities=("Hello",))
        )
        request = await harness.lock_activity()
        assert request.instance == instance("act-flow", execution_id_of(item))
        result = h.TaskCompleted(task_scheduled_id=request.task_id, result='"Hello!"')

        await harness.backend.complete_activity(
            request,
            dataclasses.replace(event_message("act-flow"), instance=request.instance, event=result),
        )

        nxt = await harness.lock_orchestration()
        assert [m.event for m in nxt.messages] == [result]
        assert event_types(nxt.history)[-2:] == ["TaskScheduled", "OrchestratorCompleted"]

    async def test_an_unserializable_commit_changes_nothing(self, harness: BackendHarness) -> None:
        item = await _started(harness, "bad-commit")
        good = episode(item, now=harness.now(), activities=("A",))
        bad = dataclasses.replace(
            good,
            new_events=(*good.new_events, h.EventRaised(name=object())),  # type: ignore[arg-type]
        )

        with pytest.raises((ValueError, TypeError)):
            await harness.backend.complete_orchestration(item, bad)

        assert await harness.backend.get_history("bad-commit") == []
        assert await harness.no_activity()
        await harness.backend.complete_orchestration(item, good)
