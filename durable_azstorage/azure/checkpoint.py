"""The checkpoint protocol (ARCHITECTURE.md §5): how an episode's results become durable.

``Checkpoint.commit`` runs the four steps of ``complete_orchestration``:

1. commit the new events to History with the sentinel's ETag (``HistoryStore.commit``), which
   records the ids of the queue messages the episode consumed (and an episode mark: where it
   began, and whether it continued as new);
2. send the episode's outbound messages;
3. upsert the Instances row (skipped when nothing a query can see changed);
4. delete the consumed messages.

A crash after step 1 leaves the consumed messages in their queue. When they come back, their
ids are found in the sentinel: they are not applied again; instead ``Checkpoint.recover``
re-derives the episode's outbound messages from its committed events and re-sends them
(``outbound.derive_outbound``), repairs the Instances row and deletes the messages. A commit
that loses the ETag race raises ``ConcurrencyConflictError`` before anything was sent.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

from durable_azstorage.azure.history_store import HistoryStore, LoadedHistory
from durable_azstorage.azure.instance_store import InstanceStore
from durable_azstorage.azure.outbound import (
    derive_outbound,
    started_event,
    state_from_history,
    visible_fields,
)
from durable_azstorage.azure.queues import MessageQueue, ReceivedMessage
from durable_azstorage.azure.sessions import SessionCache
from durable_azstorage.backend.protocol import OrchestrationCommit
from durable_azstorage.model.errors import ConcurrencyConflictError
from durable_azstorage.model.messages import TaskMessage
from durable_azstorage.model.state import InstanceState
from durable_azstorage.model.status import OrchestrationStatus

log = logging.getLogger(__name__)

EPISODE_MARK = "~episode:"  # a pseudo message id in the sentinel: where the last episode began
MAX_REMEMBERED_IDS = 64  # consumed ids carried over from earlier episodes (late redeliveries)

CheckpointHook = Callable[[str, str], Awaitable[None]]
"""``hook(step, instance_id)`` after each checkpoint step: ``history``, ``messages``,
``instance``. Tests raise from it to simulate a crash between steps."""


class Checkpoint:
    """Commits episodes and finishes the ones a crash interrupted after step 1.

    The stores are looked up at each call (the backend opens them lazily, and again after a
    restart), as is the hook (tests set ``backend.checkpoint_hook`` after construction).
    """

    def __init__(
        self,
        *,
        history: Callable[[], HistoryStore],
        instances: Callable[[], InstanceStore],
        queue: Callable[[str], MessageQueue],
        sessions: SessionCache,
        send_all: Callable[[Sequence[TaskMessage]], Awaitable[None]],
        hook: Callable[[], CheckpointHook | None],
    ) -> None:
        self._history = history
        self._instances = instances
        self._queue = queue
        self._sessions = sessions
        self._send_all = send_all
        self._hook = hook

    async def commit(
        self,
        instance_id: str,
        commit: OrchestrationCommit,
        *,
        loaded: LoadedHistory,
        fresh: bool,
        known_state: InstanceState | None,
        messages: Sequence[ReceivedMessage],
    ) -> None:
        """The four steps for the episode that consumed ``messages`` (its lock is held)."""
        if commit.state.instance_id != instance_id:
            raise ValueError(
                f"commit.state is for {commit.state.instance_id!r}, the work item for "
                f"{instance_id!r}"
            )
        for request in commit.activity_messages:
            if not request.is_activity_request:
                raise ValueError(f"activity_messages holds a {type(request.event).__name__}")
        sentinel = loaded.sentinel
        new_execution = commit.new_execution or fresh
        events = loaded.events
        if commit.new_events or new_execution:
            started = started_event(commit.new_events) if new_execution else None
            execution_id = (
                started.instance.execution_id if started is not None
                else sentinel.execution_id or commit.state.execution_id
            )
            first = 0 if new_execution else sentinel.event_count
            consumed = [m.message_id for m in messages]
            carried = [
                i for i in sentinel.consumed_message_ids
                if not i.startswith(EPISODE_MARK) and i not in consumed
            ][: max(0, MAX_REMEMBERED_IDS - len(consumed))]
            mark = f"{EPISODE_MARK}{first}:{int(commit.new_execution)}"
            try:
                self._sessions.discard(instance_id)  # re-cached below once every step is done
                sentinel = await self._history().commit(
                    instance_id,
                    expected=sentinel,
                    new_events=commit.new_events,
                    new_execution=new_execution,
                    execution_id=execution_id or "",
                    consumed_message_ids=[*consumed, *carried, mark],
                    runtime_status=commit.state.runtime_status,
                    completed_at=commit.state.completed_at,
                )
            except ConcurrencyConflictError:
                self._sessions.discard(instance_id)
                log.info("orchestration %r: lost the commit race; nothing sent", instance_id)
                raise
            events = commit.new_events if new_execution else (*events, *commit.new_events)
            await self._step("history", instance_id)
            await self._send_all(commit.outbound_messages)
            await self._step("messages", instance_id)
        wrote_history = bool(commit.new_events) or new_execution
        # Without new events the history (the authority) did not change, so neither does the
        # row: writing it unguarded could overwrite a newer episode's status.
        if wrote_history and (
            known_state is None or visible_fields(known_state) != visible_fields(commit.state)
        ):
            await self._instances().upsert(commit.state)
        await self._step("instance", instance_id)
        await asyncio.gather(*(self._queue(m.queue_name).delete(m) for m in messages))
        if wrote_history:
            self._sessions.put(instance_id, tuple(events), sentinel, commit.state)

    async def recover(
        self, instance_id: str, loaded: LoadedHistory, redelivered: list[ReceivedMessage]
    ) -> None:
        """Finish a committed episode whose messages came back (crash after step 1)."""
        sentinel = loaded.sentinel
        first, continued = episode_mark(sentinel.consumed_message_ids)
        outbound = derive_outbound(loaded.events, first, continued_as_new=continued)
        log.warning(
            "orchestration %r: %d consumed message(s) redelivered after a committed episode; "
            "re-sending its %d outbound message(s) and repairing the Instances row",
            instance_id, len(redelivered), len(outbound.all),
        )
        await self._send_all(outbound.all)
        instances = self._instances()
        found = await instances.get(instance_id, fetch_payloads=True)
        previous = found[0] if found is not None else None
        status = sentinel.runtime_status or OrchestrationStatus.RUNNING
        repaired = state_from_history(
            instance_id, loaded.events, status=status, completed_at=sentinel.completed_at,
            previous=previous,
        )
        if repaired is not None and (
            previous is None
            or previous.runtime_status is not repaired.runtime_status
            or previous.execution_id != repaired.execution_id
        ):
            await instances.upsert(repaired)
        await asyncio.gather(*(self._queue(m.queue_name).delete(m) for m in redelivered))

    async def _step(self, step: str, instance_id: str) -> None:
        hook = self._hook()
        if hook is not None:
            await hook(step, instance_id)


def episode_mark(ids: Sequence[str]) -> tuple[int, bool]:
    """(first event index of the last episode, whether it continued as new)."""
    for value in ids:
        if value.startswith(EPISODE_MARK):
            first, _, start = value[len(EPISODE_MARK):].partition(":")
            return int(first), start == "1"
    return 0, False


__all__ = ["EPISODE_MARK", "MAX_REMEMBERED_IDS", "Checkpoint", "CheckpointHook", "episode_mark"]
