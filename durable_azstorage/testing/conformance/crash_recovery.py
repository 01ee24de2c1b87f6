"""Crash between checkpoint steps (ARCHITECTURE.md §5): nothing committed is lost or applied twice.

For backends with the ``checkpoint_hook(step, instance_id)`` seam (``CheckpointHooks``; both of
ours), awaited after the ``history``, ``messages`` and ``instance`` steps; raising from it
stands for the process dying there. The
crashed backend keeps its lock, so its messages come back only when the lock expires; the
survivor (``harness.peer``) must then recognise them as consumed, finish *that* episode
(send its messages, repair the state, delete them) and never hand them to a worker again.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from durable_azstorage.backend.protocol import (
    Backend,
    CheckpointHooks,
    OrchestrationCommit,
    OrchestrationWorkItem,
)
from durable_azstorage.model import history as h
from durable_azstorage.model.status import OrchestrationStatus

from .builders import episode, event_message, event_types, start_message
from .harness import BackendHarness

STEPS = ("history", "messages", "instance")


def _set_hook(harness: BackendHarness, hook: Callable[[str, str], Awaitable[None]] | None) -> None:
    """Make ``hook`` the backend's ``checkpoint_hook`` (``None``: no hook)."""
    backend = harness.backend
    if not isinstance(backend, CheckpointHooks):
        raise TypeError(
            f"[{harness.name}] CrashRecoveryConformance needs a backend with the checkpoint_hook "
            f"seam (backend.protocol.CheckpointHooks); {type(backend).__name__} has none"
        )
    backend.checkpoint_hook = hook


class Crash(BaseException):
    """The process died: a BaseException, so no ``except Exception`` handler survives it."""


def crash_at(step: str) -> Callable[[str, str], Awaitable[None]]:
    async def hook(reached: str, instance_id: str) -> None:
        if reached == step:
            raise Crash(f"died after step {step!r} of {instance_id}")

    return hook


def fail_at(step: str) -> Callable[[str, str], Awaitable[None]]:
    """A storage error after ``step``: the process lives on and abandons the item."""

    async def hook(reached: str, instance_id: str) -> None:
        if reached == step:
            raise OSError(f"transient storage error after step {step!r} of {instance_id}")

    return hook


async def _commit_crashing(
    harness: BackendHarness, item: OrchestrationWorkItem, step: str, activities: tuple[str, ...]
) -> None:
    _set_hook(harness, crash_at(step))
    with pytest.raises(Crash):
        await harness.backend.complete_orchestration(
            item, episode(item, now=harness.now(), activities=activities)
        )
    _set_hook(harness, None)


async def _activity_names(harness: BackendHarness, backend: Backend) -> list[str]:
    names = []
    while (request := await backend.lock_next_activity(harness.empty_timeout)) is not None:
        names.append(request.name)
        result = h.TaskCompleted(task_scheduled_id=request.task_id, result='"ok"')
        await backend.complete_activity(
            request,
            dataclasses.replace(
                event_message(request.instance.instance_id), instance=request.instance, event=result
            ),
        )
    return sorted(names)


async def _event_episode_failing_after(
    harness: BackendHarness,
    instance_id: str,
    event: str,
    step: str,
    status: OrchestrationStatus = OrchestrationStatus.RUNNING,
) -> None:
    """Start ``instance_id``; its episode for ``event`` (ending with ``status``) fails after
    ``step`` and the living worker abandons it for ``harness.delay``."""
    await harness.backend.create_instance(start_message(instance_id))
    first = await harness.lock_orchestration()
    await harness.backend.complete_orchestration(first, episode(first, now=harness.now()))
    await harness.backend.send_message(event_message(instance_id, name=event))
    item = await harness.lock_orchestration()
    output = '"done"' if status.is_terminal else None
    _set_hook(harness, fail_at(step))
    with pytest.raises(OSError):
        await harness.backend.complete_orchestration(
            item, episode(item, now=harness.now(), status=status, output=output)
        )
    _set_hook(harness, None)
    await harness.backend.abandon_orchestration(item, delay=harness.delay)


class CrashRecoveryConformance:
    """Crash between checkpoint steps (ARCHITECTURE.md §5): nothing committed is lost or applied twice."""

    @pytest.fixture
    async def crashing(self, harness: BackendHarness) -> AsyncIterator[BackendHarness]:
        yield harness
        _set_hook(harness, None)

    @pytest.mark.parametrize("step", STEPS)
    async def test_a_crash_after_each_step_is_finished_by_the_next_delivery(
        self, crashing: BackendHarness, step: str
    ) -> None:
        harness = crashing
        await harness.backend.create_instance(start_message("crash-1"))
        item = await harness.lock_orchestration()
        await _commit_crashing(harness, item, step, ("A", "B"))

        await harness.expire_locks()

        assert await harness.no_orchestration(harness.peer), (
            "a consumed start must not be redelivered"
        )
        history = await harness.peer.get_history("crash-1")
        assert event_types(history).count("ExecutionStarted") == 1
        assert sorted(set(await _activity_names(harness, harness.peer))) == ["A", "B"]
        state = await harness.peer.get_instance("crash-1")
        assert state is not None and state.runtime_status is OrchestrationStatus.RUNNING
        answers = await harness.lock_orchestration(harness.peer)
        assert {type(m.event).__name__ for m in answers.messages} == {"TaskCompleted"}
        assert answers.history == tuple(history)

    @pytest.mark.parametrize("step", STEPS)
    async def test_a_crash_before_the_row_keeps_the_episodes_custom_status(
        self, crashing: BackendHarness, step: str
    ) -> None:
        """The custom status is not an event: finishing a crashed episode must still leave
        the one that episode set, not the row's earlier one."""
        harness = crashing
        await harness.backend.create_instance(start_message("crash-cs"))
        item = await harness.lock_orchestration()
        commit = episode(
            item, now=harness.now(), status=OrchestrationStatus.COMPLETED, output='"done"'
        )
        commit = dataclasses.replace(
            commit, state=dataclasses.replace(commit.state, custom_status='"step 3 of 3"')
        )
        _set_hook(harness, crash_at(step))
        with pytest.raises(Crash):
            await harness.backend.complete_orchestration(item, commit)
        _set_hook(harness, None)

        await harness.expire_locks()

        assert await harness.no_orchestration(harness.peer)  # the start came back: finished
        state = await harness.peer.get_instance("crash-cs")
        assert state is not None and state.runtime_status is OrchestrationStatus.COMPLETED
        assert state.custom_status == '"step 3 of 3"'

    @pytest.mark.parametrize("step", STEPS)
    async def test_recovery_finishes_the_episode_that_consumed_the_message(
        self, crashing: BackendHarness, step: str
    ) -> None:
        """Episode 2 crashes; a later message arrives; its episode 3 must not hide episode 2's
        activity request."""
        harness = crashing
        await harness.backend.create_instance(start_message("crash-2"))
        first = await harness.lock_orchestration()
        await harness.backend.complete_orchestration(first, episode(first, now=harness.now()))
        await harness.backend.send_message(event_message("crash-2", name="E1"))
        second = await harness.lock_orchestration()
        await _commit_crashing(harness, second, step, ("FromE1",))
        await harness.backend.send_message(event_message("crash-2", name="E2"))

        await harness.expire_locks()

        third = await harness.lock_orchestration(harness.peer)
        assert [m.event.name for m in third.messages] == ["E2"]  # type: ignore[attr-defined]
        await harness.peer.complete_orchestration(
            third, episode(third, now=harness.now(), activities=("FromE2",))
        )
        assert sorted(set(await _activity_names(harness, harness.peer))) == ["FromE1", "FromE2"]
        raised = [
            e.name
            for e in await harness.peer.get_history("crash-2")
            if isinstance(e, h.EventRaised)
        ]
        assert raised == ["E1", "E2"], "each event is applied exactly once"

    async def test_a_failed_step_then_abandon_is_finished_at_once(
        self, crashing: BackendHarness
    ) -> None:
        """A storage error after step 1 (the process lives): the worker abandons, and the
        redelivery finishes the episode without waiting for a lock timeout."""
        harness = crashing
        await harness.backend.create_instance(start_message("fail-1"))
        item = await harness.lock_orchestration()
        _set_hook(harness, fail_at("history"))
        with pytest.raises(OSError):
            await harness.backend.complete_orchestration(
                item, episode(item, now=harness.now(), activities=("A",))
            )
        _set_hook(harness, None)
        await harness.backend.abandon_orchestration(item)

        assert await harness.no_orchestration()
        assert await _activity_names(harness, harness.backend) == ["A"]
        state = await harness.backend.get_instance("fail-1")
        assert state is not None and state.runtime_status is OrchestrationStatus.RUNNING

    async def test_a_late_state_write_never_moves_the_instance_backwards(
        self,
        crashing: BackendHarness,
    ) -> None:
        """Episode 1 stalls after sending its messages until its lock expires; meanwhile episode 2
        completes the instance. Episode 1's late state write must not turn Completed back into
        Running."""
        harness = crashing
        await harness.backend.create_instance(start_message("late-1"))
        first = await harness.lock_orchestration()

        stalled: list[str] = []

        async def stall(reached: str, instance_id: str) -> None:
            if reached != "messages" or stalled:
                return  # the peer may be the same object: only the first episode stalls
            stalled.append(instance_id)
            await harness.expire_locks()
            await harness.backend.send_message(event_message("late-1", name="Done"))
            second = await harness.lock_orchestration(harness.peer)
            assert [type(m.event).__name__ for m in second.messages] == ["EventRaised"]
            await harness.peer.complete_orchestration(
                second,
                episode(
                    second, now=harness.now(), status=OrchestrationStatus.COMPLETED, output='"done"'
                ),
            )

        _set_hook(harness, stall)
        await harness.backend.complete_orchestration(first, episode(first, now=harness.now()))
        _set_hook(harness, None)

        state = await harness.peer.get_instance("late-1")
        assert state is not None and state.runtime_status is OrchestrationStatus.COMPLETED
        await harness.expire_locks()
        assert await harness.no_orchestration(harness.peer)

    async def test_an_empty_commit_does_not_freeze_a_stale_state(
        self, crashing: BackendHarness
    ) -> None:
        """Episode 2 completes the instance but fails after step 1 and is abandoned with a delay;
        a discarded-only episode meanwhile commits no events with the state it read (still
        Running). Finishing episode 2 must still leave the instance Completed (torture seed 10066)."""
        harness = crashing
        await _event_episode_failing_after(
            harness, "empty-1", "Finish", "history", OrchestrationStatus.COMPLETED
        )
        await harness.backend.send_message(event_message("empty-1", name="Late"))
        late = await harness.backend.lock_next_orchestration(harness.empty_timeout)
        if late is not None:  # a backend may discard it itself, seeing the execution ended
            assert [m.event.name for m in late.messages] == ["Late"]  # type: ignore[attr-defined]
            stale = await harness.backend.get_instance("empty-1")
            assert stale is not None
            await harness.backend.complete_orchestration(
                late, OrchestrationCommit(new_events=(), state=stale)
            )

        await harness.advance(harness.delay)
        assert await harness.no_orchestration()
        state = await harness.backend.get_instance("empty-1")
        assert state is not None and state.runtime_status is OrchestrationStatus.COMPLETED

    async def test_a_late_redelivery_is_recognised_after_many_newer_messages(
        self, crashing: BackendHarness
    ) -> None:
        """Consumed ids are remembered for as long as the message can come back, not for a fixed
        count (a fixed window of 64 ids let a late redelivery be applied twice)."""
        harness = crashing
        await _event_episode_failing_after(harness, "late-id", "Early", "instance")

        for n in range(70):
            await harness.backend.send_message(event_message("late-id", name=f"Newer{n}"))
        newer = 0
        while newer < 70:
            item = await harness.lock_orchestration()
            assert "Early" not in [m.event.name for m in item.messages]  # type: ignore[attr-defined]
            newer += len(item.messages)
            await harness.backend.complete_orchestration(item, episode(item, now=harness.now()))

        await harness.advance(harness.delay)
        assert await harness.no_orchestration(), (
            "the late redelivery must be recognised as consumed"
        )
        raised = [
            e.name
            for e in await harness.backend.get_history("late-id")
            if isinstance(e, h.EventRaised)
        ]
        assert raised.count("Early") == 1 and len(raised) == 71

    async def test_a_newer_episode_does_not_hide_an_older_unsent_one(
        self, crashing: BackendHarness
    ) -> None:
        """Episode 2 commits its history (scheduling FromE1) and fails before sending; while its
        message is hidden, episode 3 commits (scheduling FromE2). When episode 2's message comes
        back, episode 2's messages must be sent, not episode 3's again."""
        harness = crashing
        await harness.backend.create_instance(start_message("older-1"))
        first = await harness.lock_orchestration()
        await harness.backend.complete_orchestration(first, episode(first, now=harness.now()))
        await harness.backend.send_message(event_message("older-1", name="E1"))
        second = await harness.lock_orchestration()
        _set_hook(harness, fail_at("history"))
        with pytest.raises(OSError):
            await harness.backend.complete_orchestration(
                second, episode(second, now=harness.now(), activities=("FromE1",))
            )
        _set_hook(harness, None)
        await harness.backend.abandon_orchestration(second, delay=harness.delay)
        await harness.backend.send_message(event_message("older-1", name="E2"))
        third = await harness.lock_orchestration()
        assert [m.event.name for m in third.messages] == ["E2"]  # type: ignore[attr-defined]
        await harness.backend.complete_orchestration(
            third, episode(third, now=harness.now(), activities=("FromE2",))
        )

        await harness.advance(harness.delay)
        assert await harness.no_orchestration()
        assert await _activity_names(harness, harness.backend) == ["FromE1", "FromE2"]
