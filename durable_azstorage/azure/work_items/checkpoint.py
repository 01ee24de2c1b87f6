"""The checkpoint protocol (ARCHITECTURE.md §5): how an episode's results become durable.

``Checkpoint.commit`` runs the four steps of ``complete_orchestration``:

0. archive the histories of the executions the episode ended by continue-as-new or replaced
   by a restart, one blob each (``execution_archive``; idempotent: a re-run rewrites them);
1. commit the new events to History with the sentinel's ETag (``HistoryStore.commit``). The
   sentinel's episode log (``episode_log``) records which message ids this episode consumed
   and where its events lie; its outbox (``outbox``) keeps the messages its events cannot
   imply (generations before the last of a continue-as-new episode, and the episodes of an
   execution this commit replaces);
2. send the episode's outbound messages (also when it recorded no events: a re-armed timer),
   except the activity requests dispatched in this process (``local_carriers``: step 1
   recorded them under the consumed message kept as their carrier);
3. write the Instances row, monotonically (``InstanceStore.write_episode``: a late write of an
   older episode never overwrites a newer one; skipped when nothing a query sees changed);
4. delete the consumed messages (not a carrier: it is deleted once its tasks are settled).

Steps 2–4 are retried here on transient errors (beyond each request's own retries), while the
lock is held and renewed, before anything is given up: a send that failed once must not wait
for a redelivery. A crash after step 1 leaves the
consumed messages in their queue. When they come back, their ids are found in the episode
log: they are not applied again; ``Checkpoint.recover`` finishes the episode *that consumed
them* — re-derives its messages from its committed events
(``history_derivation.derive_outbound``) plus its outbox entry, re-sends them, repairs the
Instances row and deletes the messages. A commit that loses the ETag race raises
``ConcurrencyConflictError`` before anything was sent.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TypeVar

from tenacity import AsyncRetrying, retry_if_exception, stop_after_delay, wait_exponential

from durable_azstorage.azure.hub import HubLifecycle
from durable_azstorage.azure.messaging.queues import ReceivedMessage
from durable_azstorage.azure.storage.retry import is_transient
from durable_azstorage.azure.tracking.episode_log import (
    EpisodeRecord,
    encode_episode_log,
    episode_of,
    parse_episode_log,
    remember,
)
from durable_azstorage.azure.tracking.history_derivation import (
    derive_outbound,
    started_event,
    state_from_history,
    visible_fields,
)
from durable_azstorage.azure.tracking.history_rows import RecordedCustomStatus, event_columns
from durable_azstorage.azure.tracking.history_store import LoadedHistory, Sentinel
from durable_azstorage.azure.tracking.local_tasks import answered_tasks
from durable_azstorage.azure.tracking.outbox import Outbox, entry_messages, make_entry
from durable_azstorage.azure.tracking.sessions import SessionCache
from durable_azstorage.azure.work_items.local_carriers import LocalCarriers, LocalPlan
from durable_azstorage.backend.protocol import OrchestrationCommit
from durable_azstorage.model.archive import EndedExecution
from durable_azstorage.model.entities import is_entity_id
from durable_azstorage.model.errors import ConcurrencyConflictError
from durable_azstorage.model.history import (
    ExecutionStarted,
    HistoryEvent,
    TaskScheduled,
)
from durable_azstorage.model.messages import TaskMessage
from durable_azstorage.model.state import InstanceState
from durable_azstorage.model.status import OrchestrationStatus

log = logging.getLogger(__name__)
_T = TypeVar("_T")

STEP_RETRY_BUDGET = timedelta(seconds=30)
"""How long steps 2–4 are retried in process (the lock is renewed meanwhile) before the
episode is left to recovery."""

CheckpointHook = Callable[[str, str], Awaitable[None]]
"""``hook(step, instance_id)`` after each checkpoint step: ``history``, ``messages``,
``instance``. Tests raise from it to simulate a crash between steps."""


@dataclass(slots=True)
class CommitProgress:
    """How far ``Checkpoint.commit`` got: a work item given back after its history was
    committed must let recovery finish it (``orchestration_locks.hide``)."""

    history_committed: bool = False


class Checkpoint:
    """Commits episodes and finishes the ones a crash interrupted after step 1.

    The stores are read from ``hub.resources`` at each call (the backend opens them on first
    use, and again after a restart). ``hook``: tests set it to simulate crashes.
    """

    def __init__(
        self,
        *,
        hub: HubLifecycle,
        sessions: SessionCache,
        send_all: Callable[[Sequence[TaskMessage]], Awaitable[None]],
        hook: CheckpointHook | None,
        retention: timedelta,
        carriers: LocalCarriers,
    ) -> None:
        self._hub = hub
        self._carriers = carriers
        self._sessions = sessions
        self._send_all = send_all
        self.hook = hook
        self._retention = retention.total_seconds()

    async def commit(
        self,
        instance_id: str,
        commit: OrchestrationCommit,
        *,
        loaded: LoadedHistory,
        fresh: bool,
        known_state: InstanceState | None,
        messages: Sequence[ReceivedMessage],
        progress: CommitProgress | None = None,
    ) -> None:
        """The four steps for the episode that consumed ``messages`` (its lock is held)."""
        commit.check_for(instance_id)
        session = self._sessions.peek(instance_id)
        row_etag = session.row_etag if session is not None and known_state is not None else None
        if row_etag is None and known_state is None:  # a client's start names its row's ETag
            row_etag = next((m.row_etag for m in messages if m.row_etag is not None), None)
        sentinel = loaded.sentinel
        new_execution = commit.new_execution or fresh
        events = loaded.events
        wrote_history = bool(commit.new_events) or new_execution
        plan: LocalPlan | None = None
        if commit.activity_messages and not commit.new_execution and not is_entity_id(instance_id):
            plan = self._carriers.plan(
                instance_id,
                commit.activity_messages,
                messages,
                execution_id=commit.state.execution_id or "",
            )
        if wrote_history:
            self._sessions.discard(instance_id)  # re-cached below once every step is done
            try:
                sentinel = await self._commit_history(
                    instance_id,
                    commit,
                    loaded,
                    new_execution=new_execution,
                    messages=messages,
                    replaced=fresh and not is_entity_id(instance_id),
                    plan=plan,
                )
            except ConcurrencyConflictError:
                log.info("orchestration %r: lost the commit race; nothing sent", instance_id)
                raise
            events = commit.new_events if new_execution else (*events, *commit.new_events)
            if progress is not None:
                progress.history_committed = True
            await self._step("history", instance_id)
        outbound = commit.outbound_messages
        if plan is not None:
            local = {id(m) for m in plan.requests}
            outbound = tuple(m for m in outbound if id(m) not in local)
        if outbound:
            await self._retrying(lambda: self._send_all(outbound))
        if plan is not None:
            unplaced = self._carriers.dispatch(instance_id, plan)
            if unplaced:  # the carrier was lost meanwhile: through the queue after all
                await self._retrying(lambda: self._send_all(unplaced))
        await self._step("messages", instance_id)
        # Without new events the history (the authority) did not change, so neither does the
        # row; with them, only what a query can see is worth a write.
        if wrote_history and (
            known_state is None or visible_fields(known_state) != visible_fields(commit.state)
        ):
            predecessors = frozenset(
                e for e in (loaded.sentinel.execution_id, *_started_executions(messages)) if e
            )
            written = await self._retrying(
                lambda: self._hub.resources.instances.write_episode(
                    commit.state, sentinel.episode, etag=row_etag, predecessors=predecessors
                )
            )
            row_etag = written
        await self._step("instance", instance_id)
        await self._retrying(lambda: self._delete(self._carriers.deletable(messages)))
        await self._carriers.settle(
            instance_id,
            messages,
            execution_id=commit.state.execution_id,
            ended=commit.new_execution or commit.state.runtime_status.is_terminal,
        )
        if wrote_history:
            self._sessions.put(instance_id, tuple(events), sentinel, commit.state, row_etag)

    async def _commit_history(
        self,
        instance_id: str,
        commit: OrchestrationCommit,
        loaded: LoadedHistory,
        *,
        new_execution: bool,
        messages: Sequence[ReceivedMessage],
        replaced: bool = False,
        plan: LocalPlan | None = None,
    ) -> Sentinel:
        """Step 1: the events, the episode log and the outbox in one guarded write.

        ``replaced``: a start replaces the stored execution (a restart; the work item had no
        history), which is archived with the executions the episode ended."""
        sentinel = loaded.sentinel
        started = started_event(commit.new_events) if new_execution else None
        execution_id = (
            started.instance.execution_id
            if started is not None
            else sentinel.execution_id or commit.state.execution_id
        ) or ""
        first = 0 if new_execution else sentinel.event_count
        record = EpisodeRecord(
            episode=sentinel.episode + 1,
            first=first,
            end=first + len(commit.new_events),
            continued_as_new=commit.new_execution,
            execution_id=execution_id,
            committed_at=time.time(),
            message_ids=tuple(dict.fromkeys(m.logged_id for m in messages)),
        )
        local_tasks = sentinel.local_tasks.after(
            commit.new_events,
            new_execution=new_execution,
            carrier=plan.carrier.message_id if plan is not None else None,
            dispatched=plan.task_ids if plan is not None else (),
        )
        records = remember(record, self._records(sentinel), retention=self._retention)
        outbox, dropped = Outbox.parse(sentinel.outbox).keep_only(r.episode for r in records)
        payloads = self._hub.resources.payloads
        if new_execution and loaded.events:
            # The events of the execution replaced here are gone after this commit: keep the
            # messages of its remembered episodes, whose consumed messages may still return.
            for old in records[1:]:
                if old.execution_id != sentinel.execution_id:
                    continue
                kept = (
                    await entry_messages(outbox.entries[old.episode], payloads)
                    if (old.episode in outbox)
                    else []
                )
                derived = derive_episode(loaded.events, old)
                if derived or kept:
                    entry = await make_entry(instance_id, [*derived, *kept], payloads)
                    outbox = outbox.with_entry(old.episode, entry)
        new_events = commit.new_events
        ended = list(commit.ended_executions)
        if replaced and loaded.events and sentinel.execution_id:
            ended.insert(
                0, EndedExecution(execution_id=sentinel.execution_id, events=loaded.events)
            )
        archived, unkept = await self._archive(instance_id, sentinel, ended, new_events)
        underivable = _from_earlier_generations(commit, execution_id)
        if underivable:  # nothing stored implies them: the events of their generation are gone
            outbox = outbox.with_entry(
                record.episode, await make_entry(instance_id, underivable, payloads)
            )
        committed = await self._hub.resources.history.commit(
            instance_id,
            expected=sentinel,
            new_events=new_events,
            new_execution=new_execution,
            execution_id=execution_id,
            consumed_message_ids=encode_episode_log(records),
            runtime_status=commit.state.runtime_status,
            completed_at=commit.state.completed_at,
            custom_status=RecordedCustomStatus.of(commit.state.custom_status),
            outbox=outbox.encode(),
            archived_executions=archived,
            local_tasks=local_tasks,
        )
        if dropped:
            await payloads.discard(dropped)
        if unkept:
            await self._hub.resources.archive.discard(unkept)
        return committed

    async def _archive(
        self,
        instance_id: str,
        sentinel: Sentinel,
        ended: Sequence[EndedExecution],
        new_events: Sequence[HistoryEvent],
    ) -> tuple[tuple[str, ...] | None, tuple[str, ...]]:
        """Before step 1: the blobs of the executions this episode ended (``execution_archive``).
        Returns the sentinel's new list (None: unchanged) and the blobs to drop after step 1.
        The commit's own events are validated first: one that cannot be stored writes nothing."""
        if not ended:
            return None, ()
        for event in new_events:
            event_columns(event)  # raises ValueError, as step 1 would, before any write
        return await self._hub.resources.archive.store(
            instance_id, sentinel.archived_executions, ended
        )

    async def recover(
        self, instance_id: str, loaded: LoadedHistory, redelivered: list[ReceivedMessage]
    ) -> None:
        """Finish the committed episodes whose consumed messages came back (crash after
        step 1): re-send each one's messages, repair the row, delete the messages."""
        sentinel = loaded.sentinel
        records = self._records(sentinel)
        outbox = Outbox.parse(sentinel.outbox)
        episodes: dict[int, EpisodeRecord] = {}
        for received in redelivered:
            for message_id in received.consumed_as:
                record = episode_of(records, message_id)
                if record is not None:
                    episodes[record.episode] = record
        outbound: list[TaskMessage] = []
        local = sentinel.local_tasks
        carriers = {i for m in redelivered for i in m.consumed_as} & local.carriers
        for carrier in carriers:
            self._carriers.forget(carrier)
        for record in sorted(episodes.values(), key=lambda r: r.episode):
            if record.execution_id == sentinel.execution_id:
                outbound += derive_episode(loaded.events, record)
            if record.episode in outbox:
                entry = outbox.entries[record.episode]
                outbound += await entry_messages(entry, self._hub.resources.payloads)
            elif record.execution_id != sentinel.execution_id:
                log.error(
                    "orchestration %r: episode %d of execution %s was replaced and its "
                    "messages were not kept; they cannot be re-sent",
                    instance_id,
                    record.episode,
                    record.execution_id,
                )
        outbound += unanswered_requests(loaded.events, local.tasks_of(carriers), outbound)
        log.warning(
            "orchestration %r: %d consumed message(s) of episode(s) %s redelivered (%d "
            "carrier(s) of activities run in process); re-sending %d outbound message(s) and "
            "repairing the Instances row",
            instance_id,
            len(redelivered),
            sorted(episodes),
            len(carriers),
            len(outbound),
        )
        if outbound:
            await self._retrying(lambda: self._send_all(outbound))
        started = frozenset(_started_executions(redelivered))
        await self._retrying(lambda: self._repair_row(instance_id, loaded, started))
        await self._retrying(lambda: self._delete(redelivered))

    async def _repair_row(
        self, instance_id: str, loaded: LoadedHistory, predecessors: frozenset[str]
    ) -> None:
        sentinel = loaded.sentinel
        instances = self._hub.resources.instances
        found = await instances.get(instance_id, fetch_payloads=True)
        previous = found[0] if found is not None else None
        status = sentinel.runtime_status or OrchestrationStatus.RUNNING
        repaired = state_from_history(
            instance_id,
            loaded.events,
            status=status,
            completed_at=sentinel.completed_at,
            previous=previous,
            custom_status=sentinel.custom_status,
        )
        if repaired is not None and (
            previous is None
            or previous.runtime_status is not repaired.runtime_status
            or previous.execution_id != repaired.execution_id
            or previous.custom_status != repaired.custom_status
        ):
            await instances.write_episode(repaired, sentinel.episode, predecessors=predecessors)

    async def _delete(self, messages: Sequence[ReceivedMessage]) -> None:
        await asyncio.gather(*(self._hub.queue(m.queue_name).consume(m) for m in messages))

    async def _retrying(self, step: Callable[[], Awaitable[_T]]) -> _T:
        async for attempt in AsyncRetrying(
            stop=stop_after_delay(STEP_RETRY_BUDGET.total_seconds()),
            wait=wait_exponential(multiplier=0.5, max=8),
            retry=retry_if_exception(is_transient),
            reraise=True,
        ):
            with attempt:
                return await step()
        raise AssertionError("unreachable: tenacity re-raises the last error")

    def _records(self, sentinel: Sentinel) -> list[EpisodeRecord]:
        return parse_episode_log(
            sentinel.consumed_message_ids,
            episode=sentinel.episode,
            execution_id=sentinel.execution_id,
        )

    async def _step(self, step: str, instance_id: str) -> None:
        hook = self.hook
        if hook is not None:
            await hook(step, instance_id)


def derive_episode(events: Sequence[HistoryEvent], record: EpisodeRecord) -> list[TaskMessage]:
    """The messages ``record``'s committed events imply (``events``: its execution's)."""
    upto = events if record.end is None else events[: record.end]
    return derive_outbound(upto, record.first, continued_as_new=record.continued_as_new).all


def unanswered_requests(
    events: Sequence[HistoryEvent], tasks: set[int], already: Sequence[TaskMessage]
) -> list[TaskMessage]:
    """Requests for the ``tasks`` that have no result in ``events`` and are not in
    ``already``: the activities a lost carrier stood for, to run again through the queue."""
    if not tasks:
        return []
    answered = answered_tasks(events)
    sending = {m.event.event_id for m in already if isinstance(m.event, TaskScheduled)}
    wanted = tasks - answered - sending
    requests = derive_outbound(events, 0, continued_as_new=False).all
    return [
        m for m in requests if isinstance(m.event, TaskScheduled) and m.event.event_id in wanted
    ]


def _started_executions(messages: Sequence[ReceivedMessage]) -> list[str]:
    """Execution ids of the starts among ``messages`` (the execution an episode began)."""
    return [
        m.message.instance.execution_id or ""
        for m in messages
        if m.message is not None and isinstance(m.message.event, ExecutionStarted)
    ]


def _from_earlier_generations(commit: OrchestrationCommit, execution_id: str) -> list[TaskMessage]:
    """The messages of a continue-as-new episode sent by a generation before the last (its
    events are not committed). Every derived message names the generation that sent it."""
    if not commit.new_execution:
        return []
    return [
        m
        for m in commit.outbound_messages
        if m.sender is not None and m.sender.execution_id != execution_id
    ]


__all__ = [
    "STEP_RETRY_BUDGET",
    "Checkpoint",
    "CheckpointHook",
    "CommitProgress",
    "derive_episode",
    "unanswered_requests",
]
