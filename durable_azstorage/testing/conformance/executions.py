"""Histories of earlier executions (``backend.protocol.ExecutionArchive``, ``model.archive``).

For backends that keep them (both of ours): a commit's ``ended_executions`` stay readable
by execution id after the history moved on, the newest ``harness.archived_executions`` per
instance are kept, a crash right after step 1 loses none, and purge deletes them.
"""

from __future__ import annotations

import dataclasses

import pytest

from durable_azstorage.backend.protocol import (
    CheckpointHooks,
    ExecutionArchive,
    OrchestrationCommit,
    OrchestrationWorkItem,
)
from durable_azstorage.model import history as h
from durable_azstorage.model.archive import EndedExecution
from durable_azstorage.model.status import OrchestrationStatus

from .builders import episode, event_message, execution_id_of, start_message, state
from .harness import BackendHarness


def _archive(harness: BackendHarness) -> ExecutionArchive:
    backend = harness.backend
    if not isinstance(backend, ExecutionArchive):
        raise TypeError(
            f"[{harness.name}] ExecutionArchiveConformance needs a backend with "
            f"get_execution_history/list_executions; {type(backend).__name__} has none"
        )
    return backend


class _Crash(BaseException):
    """The process died right after step 1."""


def _ended(execution_id: str, marker: str) -> EndedExecution:
    """A small but complete history of an execution that continued as new."""
    target = h.OrchestrationInstance(instance_id="x", execution_id=execution_id)
    return EndedExecution(
        execution_id=execution_id,
        events=(
            h.OrchestratorStarted(),
            h.ExecutionStarted(name="Loop", instance=target, input=f'"{marker}"'),
            h.ExecutionCompleted(status=OrchestrationStatus.CONTINUED_AS_NEW, result='"next"'),
            h.OrchestratorCompleted(),
        ),
    )


def _continue_as_new(
    harness: BackendHarness, item: OrchestrationWorkItem, ended: tuple[EndedExecution, ...]
) -> tuple[OrchestrationCommit, str]:
    """The commit of an episode that ended ``ended`` and started a new generation."""
    start = start_message(item.instance_id, input='"next"')
    assert isinstance(start.event, h.ExecutionStarted)
    execution_id = start.instance.execution_id or ""
    new_state = dataclasses.replace(
        state(item, OrchestrationStatus.RUNNING, now=harness.now()),
        execution_id=execution_id,
        generation=1,
    )
    events = (h.OrchestratorStarted(timestamp=harness.now()), start.event)
    commit = OrchestrationCommit(
        new_events=events, state=new_state, new_execution=True, ended_executions=ended
    )
    return commit, execution_id


class ExecutionArchiveConformance:
    """Earlier executions' histories: kept, bounded, crash-safe, purged."""

    async def _first_episode(
        self, harness: BackendHarness, instance_id: str
    ) -> list[h.HistoryEvent]:
        await harness.backend.create_instance(start_message(instance_id))
        item = await harness.lock_orchestration()
        await harness.backend.complete_orchestration(item, episode(item, now=harness.now()))
        return await harness.backend.get_history(instance_id)

    async def test_an_instance_that_never_continued_lists_only_its_execution(
        self, harness: BackendHarness
    ) -> None:
        archive = _archive(harness)
        history = await self._first_episode(harness, "one-exec")
        current = next(e for e in history if isinstance(e, h.ExecutionStarted))
        execution_id = current.instance.execution_id or ""
        assert await archive.list_executions("one-exec") == [execution_id]
        assert await archive.get_execution_history("one-exec", execution_id) == history
        assert await archive.get_execution_history("one-exec", "no-such-execution") is None
        assert await archive.list_executions("never-created") == []

    async def test_ended_executions_stay_readable_after_the_history_moved_on(
        self, harness: BackendHarness
    ) -> None:
        archive = _archive(harness)
        first = await self._first_episode(harness, "arch-1")
        await harness.backend.send_message(event_message("arch-1"))
        item = await harness.lock_orchestration()
        ended_id = execution_id_of(item)
        ended = EndedExecution(execution_id=ended_id, events=(*first, h.OrchestratorCompleted()))
        commit, new_id = _continue_as_new(harness, item, (ended,))

        await harness.backend.complete_orchestration(item, commit)

        assert await harness.backend.get_history("arch-1") == list(commit.new_events)
        assert await archive.get_execution_history("arch-1", ended_id) == list(ended.events)
        assert await archive.get_execution_history("arch-1", new_id) == list(commit.new_events)
        assert await archive.list_executions("arch-1") == [ended_id, new_id]

    async def test_only_the_newest_executions_are_kept(self, harness: BackendHarness) -> None:
        archive = _archive(harness)
        limit = harness.archived_executions
        await self._first_episode(harness, "many")
        await harness.backend.send_message(event_message("many"))
        item = await harness.lock_orchestration()
        # one episode that ran limit + 1 generations back to back, oldest first
        ended = tuple(_ended(f"gen-{i}", f"g{i}") for i in range(limit + 1))
        commit, current = _continue_as_new(harness, item, ended)
        await harness.backend.complete_orchestration(item, commit)

        kept = [f"gen-{i}" for i in range(1, limit + 1)]
        assert await archive.list_executions("many") == [*kept, current]
        assert await archive.get_execution_history("many", "gen-0") is None
        newest = await archive.get_execution_history("many", f"gen-{limit}")
        assert newest == list(ended[-1].events)

        await harness.backend.send_message(event_message("many"))
        item = await harness.lock_orchestration()
        commit, latest = _continue_as_new(harness, item, (_ended(current, "last"),))
        await harness.backend.complete_orchestration(item, commit)
        assert await archive.list_executions("many") == [*kept[1:], current, latest]
        assert await archive.get_execution_history("many", "gen-1") is None

    async def test_a_crash_after_step_one_loses_no_archived_execution(
        self, harness: BackendHarness
    ) -> None:
        archive = _archive(harness)
        backend = harness.backend
        if not isinstance(backend, CheckpointHooks):
            pytest.fail(f"[{harness.name}] this test needs the checkpoint_hook seam")
        await self._first_episode(harness, "crashy")
        await harness.backend.send_message(event_message("crashy"))
        item = await harness.lock_orchestration()
        ended = _ended(execution_id_of(item), "before-crash")
        commit, current = _continue_as_new(harness, item, (ended,))

        async def die(step: str, instance_id: str) -> None:
            if step == "history":
                raise _Crash(instance_id)

        backend.checkpoint_hook = die
        try:
            with pytest.raises(_Crash):
                await harness.backend.complete_orchestration(item, commit)
        finally:
            backend.checkpoint_hook = None

        assert await archive.get_execution_history("crashy", ended.execution_id) == list(
            ended.events
        )
        assert await archive.list_executions("crashy") == [ended.execution_id, current]

    async def test_a_commit_that_cannot_be_stored_archives_nothing(
        self, harness: BackendHarness
    ) -> None:
        archive = _archive(harness)
        await self._first_episode(harness, "unstorable")
        await harness.backend.send_message(event_message("unstorable"))
        item = await harness.lock_orchestration()
        current = execution_id_of(item)
        # a generation that ran within the failing episode: archived only if the commit is
        ended = _ended("generation-within", "never")
        commit, _ = _continue_as_new(harness, item, (ended,))
        bad = dataclasses.replace(
            commit,
            new_events=(*commit.new_events, h.EventRaised(name=object())),  # type: ignore[arg-type]
        )

        with pytest.raises((ValueError, TypeError)):
            await harness.backend.complete_orchestration(item, bad)

        assert await archive.get_execution_history("unstorable", ended.execution_id) is None
        assert await archive.list_executions("unstorable") == [current]

    async def test_purge_deletes_the_archive(self, harness: BackendHarness) -> None:
        archive = _archive(harness)
        await self._first_episode(harness, "gone")
        await harness.backend.send_message(event_message("gone"))
        item = await harness.lock_orchestration()
        ended = _ended(execution_id_of(item), "purged")
        commit, _ = _continue_as_new(harness, item, (ended,))
        await harness.backend.complete_orchestration(item, commit)
        assert await archive.get_execution_history("gone", ended.execution_id) is not None

        assert await harness.backend.purge_instance("gone")

        assert await archive.get_execution_history("gone", ended.execution_id) is None
        assert await archive.list_executions("gone") == []
