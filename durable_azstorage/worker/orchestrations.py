"""Processes orchestration work items: replay one episode, commit it, handle every failure.

Replay (``run_episode``) is pure and CPU-bound (or, with the gRPC sidecar's remote executor,
blocks while an SDK worker runs the code), so it runs on a thread pool and never blocks the
event loop that renews locks. The backend makes the commit atomic; this module only decides
what to do when something goes wrong:

* ``ConcurrencyConflictError`` / ``LockLostError``: another worker owns the instance now;
  drop the item (its messages reappear and the winner, or a later episode, handles them).
* ``ExecutionAbandoned`` (a remote worker disconnected or gave the item back): abandon with
  the same backoff, logged without a traceback; nothing was decided, nothing is lost. A
  *deferred* one (a version this worker rejects, an SDK abandon) is abandoned with
  ``deferred=True``: hidden for ``DEFERRAL_DELAY`` and never counted toward poison.
* Any other error: abandon with exponential backoff, so a transient fault is retried.
* Poison: an item delivered more than ``max_dequeue_count`` times fails its instance with a
  reason naming the count (see ``worker.poison``) instead of retrying forever.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from durable_azstorage.backend.protocol import (
    Backend,
    OrchestrationCommit,
    OrchestrationWorkItem,
)
from durable_azstorage.model.entities import is_entity_id
from durable_azstorage.model.errors import ConcurrencyConflictError, LockLostError
from durable_azstorage.model.history import ExecutionStarted
from durable_azstorage.replay.entity_episode import EntityExecutor
from durable_azstorage.replay.episode import Episode, run_episode
from durable_azstorage.replay.executor import ExecutionAbandoned, OrchestrationExecutor
from durable_azstorage.telemetry.logs import log_fields
from durable_azstorage.telemetry.metrics import record_episode, record_poison
from durable_azstorage.telemetry.tracing import EpisodeSpans
from durable_azstorage.worker.poison import poison_commit
from durable_azstorage.worker.processor import WorkItemProcessor, abandon_delay


class OrchestrationProcessor(WorkItemProcessor):
    """Turns a locked ``OrchestrationWorkItem`` into one committed episode."""

    def __init__(
        self,
        backend: Backend,
        executor: OrchestrationExecutor,
        *,
        episode_pool: concurrent.futures.Executor,
        max_dequeue_count: int,
        logger: logging.Logger,
        clock: Callable[[], datetime] | None = None,
        entities: EntityExecutor | None = None,
        spans: EpisodeSpans | None = None,
    ) -> None:
        super().__init__(backend, max_dequeue_count=max_dequeue_count, logger=logger, clock=clock)
        self._code = executor
        self._entities = entities
        self._episode_pool = episode_pool
        self._spans = spans

    async def fetch(self, timeout: float) -> OrchestrationWorkItem | None:
        return await self._backend.lock_next_orchestration(timeout)

    async def renew(self, item: OrchestrationWorkItem) -> None:
        await self._backend.renew_orchestration(item)

    async def process(self, item: OrchestrationWorkItem) -> None:
        """Run and commit one episode; never raises (except cancellation)."""
        began = time.monotonic()
        with log_fields(instance_id=item.instance_id, execution_id=_execution_id(item)):
            outcome = await self._process(item)
        record_episode(outcome, time.monotonic() - began)

    async def _process(self, item: OrchestrationWorkItem) -> str:
        """Run and commit one episode; the outcome names how it ended (for metrics)."""
        try:
            commit = await self._build_commit(item)
        except ExecutionAbandoned as exc:
            # A deferral repeats every DEFERRAL_DELAY while it lasts (a rolling deployment):
            # debug, not info, so that it does not flood the log.
            self._log.log(
                logging.DEBUG if exc.deferred else logging.INFO,
                "orchestration %r: episode abandoned (delivery %d%s), it will be delivered again: %s",
                item.instance_id,
                item.dequeue_count,
                ", deferred" if exc.deferred else "",
                exc,
            )
            delay = abandon_delay(item.dequeue_count, deferred=exc.deferred)
            await self._abandon(item, delay, deferred=exc.deferred)
            return "abandoned"
        except Exception:
            self._log.exception(
                "orchestration %r: episode failed unexpectedly (delivery %d); will retry",
                item.instance_id,
                item.dequeue_count,
            )
            await self._abandon(item, abandon_delay(item.dequeue_count))
            return "failed"
        if commit is None:
            # Nothing to persist and no instance to attach the messages to (it was purged
            # while they were queued; backends drop such messages at delivery, so this is
            # rare): the protocol cannot consume messages without a state, so back off.
            await self._abandon(item, abandon_delay(item.dequeue_count))
            return "abandoned"
        return await self._complete(item, commit)

    async def _build_commit(self, item: OrchestrationWorkItem) -> OrchestrationCommit | None:
        now = self._clock()
        if item.dequeue_count > self._max_dequeue_count:
            return await self._poison(item, now)
        loop = asyncio.get_running_loop()
        # The replay thread logs with this item's fields too (executors do not copy contexts).
        fields = contextvars.copy_context()
        episode: Episode = await loop.run_in_executor(
            self._episode_pool, lambda: fields.run(self._run_episode, item, now)
        )
        state = episode.state
        if state is None:
            # Every message was discarded: consume them with an empty commit on the current
            # state, so that they do not come back.
            state = await self._backend.get_instance(item.instance_id, fetch_payloads=True)
            if state is None:
                return None
            return OrchestrationCommit(new_events=(), state=state)
        return OrchestrationCommit(
            new_events=episode.new_events,
            state=state,
            activity_messages=episode.activity_messages,
            orchestrator_messages=episode.orchestrator_messages,
            timer_messages=episode.timer_messages,
            new_execution=episode.new_execution,
            ended_executions=episode.ended_executions,
        )

    def _run_episode(self, item: OrchestrationWorkItem, now: datetime) -> Episode:
        """An entity's batch of operations, or an orchestration's replay (on the episode pool)."""
        if is_entity_id(item.instance_id):
            if self._entities is None:
                raise RuntimeError(
                    f"{item.instance_id!r} is an entity and this worker runs no entities"
                )
            return self._entities.run(
                item.instance_id, item.history, item.messages, now=now, logger=self._log
            )
        return run_episode(
            self._code, item.instance_id, item.history, item.messages, now=now, logger=self._log
        )

    async def _poison(
        self, item: OrchestrationWorkItem, now: datetime
    ) -> OrchestrationCommit | None:
        current = await self._backend.get_instance(item.instance_id, fetch_payloads=True)
        record_poison("orchestration")
        self._log.error(
            "orchestration %r: work item delivered %d times (max %d); failing the instance",
            item.instance_id,
            item.dequeue_count,
            self._max_dequeue_count,
        )
        return poison_commit(item, current, now=now, max_dequeue_count=self._max_dequeue_count)

    async def _complete(self, item: OrchestrationWorkItem, commit: OrchestrationCommit) -> str:
        try:
            await self._backend.complete_orchestration(item, commit)
        except ConcurrencyConflictError as exc:
            self._log.info(
                "orchestration %r: lost a commit race, dropping: %s", item.instance_id, exc
            )
            await self._abandon(item, None)  # the messages come back soon, to the winner's state
            return "conflict"
        except LockLostError as exc:
            self._log.warning("orchestration %r: lock lost, dropping: %s", item.instance_id, exc)
            await self._abandon(item, None)  # usually LockLostError again (ignored)
            return "conflict"
        except Exception:
            self._log.exception("orchestration %r: commit failed; will retry", item.instance_id)
            await self._abandon(item, abandon_delay(item.dequeue_count))
            return "failed"
        self._log.debug(
            "orchestration %r: episode committed (%d new events, status %s)",
            item.instance_id,
            len(commit.new_events),
            commit.state.runtime_status.name,
        )
        if self._spans is not None:
            self._spans.emit(
                item.history,
                commit.new_events,
                new_execution=commit.new_execution,
                incoming=[m.event for m in item.messages],
            )
        return "committed"

    async def _abandon(
        self, item: OrchestrationWorkItem, delay: timedelta | None, *, deferred: bool = False
    ) -> None:
        try:
            await self._backend.abandon_orchestration(item, delay=delay, deferred=deferred)
        except LockLostError:
            pass  # the messages reappear when the lock expires anyway
        except Exception:
            self._log.exception("orchestration %r: abandon failed", item.instance_id)


def _execution_id(item: OrchestrationWorkItem) -> str | None:
    """The execution the item's history is of (None for a new instance's first episode)."""
    for event in item.history:
        if isinstance(event, ExecutionStarted):
            return event.instance.execution_id
    for message in item.messages:
        if message.instance.execution_id is not None:
            return message.instance.execution_id
    return None
