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
import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from durable_azstorage.backend.protocol import (
    Backend,
    OrchestrationCommit,
    OrchestrationWorkItem,
)
from durable_azstorage.model.errors import ConcurrencyConflictError, LockLostError
from durable_azstorage.replay.episode import Episode, run_episode
from durable_azstorage.replay.executor import ExecutionAbandoned, OrchestrationExecutor
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
    ) -> None:
        super().__init__(backend, max_dequeue_count=max_dequeue_count, logger=logger, clock=clock)
        self._code = executor
        self._episode_pool = episode_pool

    async def fetch(self, timeout: float) -> OrchestrationWorkItem | None:
        return await self._backend.lock_next_orchestration(timeout)

    async def renew(self, item: OrchestrationWorkItem) -> None:
        await self._backend.renew_orchestration(item)

    async def process(self, item: OrchestrationWorkItem) -> None:
        """Run and commit one episode; never raises (except cancellation)."""
        try:
            commit = await self._build_commit(item)
        except ExecutionAbandoned as exc:
            # A deferral repeats every DEFERRAL_DELAY while it lasts (a rolling deployment):
            # debug, not info, so that it does not flood the log.
            self._log.log(
                logging.DEBUG if exc.deferred else logging.INFO,
                "orchestration %r: episode abandoned (delivery %d%s), it will be delivered again: %s",
                item.instance_id, item.dequeue_count, ", deferred" if exc.deferred else "", exc,
            )
            delay = abandon_delay(item.dequeue_count, deferred=exc.deferred)
            await self._abandon(item, delay, deferred=exc.deferred)
            return
        except Exception:
            self._log.exception(
                "orchestration %r: episode failed unexpectedly (delivery %d); will retry",
                item.instance_id,
                item.dequeue_count,
            )
            await self._abandon(item, abandon_delay(item.dequeue_count))
            return
        if commit is None:
            # Nothing to persist and no instance to attach the messages to (it was purged
            # while they were queued; backends drop such messages at delivery, so this is
            # rare): the protocol cannot consume messages without a state, so back off.
            await self._abandon(item, abandon_delay(item.dequeue_count))
            return
        await self._complete(item, commit)

    async def _build_commit(self, item: OrchestrationWorkItem) -> OrchestrationCommit | None:
        now = self._clock()
        if item.dequeue_count > self._max_dequeue_count:
            return await self._poison(item, now)
        loop = asyncio.get_running_loop()
        episode: Episode = await loop.run_in_executor(
            self._episode_pool,
            lambda: run_episode(
                self._code, item.instance_id, item.history, item.messages, now=now, logger=self._log
            ),
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
        )

    async def _poison(self, item: OrchestrationWorkItem, now: datetime) -> OrchestrationCommit | None:
        current = await self._backend.get_instance(item.instance_id, fetch_payloads=True)
        self._log.error(
            "orchestration %r: work item delivered %d times (max %d); failing the instance",
            item.instance_id,
            item.dequeue_count,
            self._max_dequeue_count,
        )
        return poison_commit(item, current, now=now, max_dequeue_count=self._max_dequeue_count)

    async def _complete(self, item: OrchestrationWorkItem, commit: OrchestrationCommit) -> None:
        try:
            await self._backend.complete_orchestration(item, commit)
        except ConcurrencyConflictError as exc:
            self._log.info("orchestration %r: lost a commit race, dropping: %s", item.instance_id, exc)
            await self._abandon(item, None)  # the messages come back soon, to the winner's state
        except LockLostError as exc:
            self._log.warning("orchestration %r: lock lost, dropping: %s", item.instance_id, exc)
            await self._abandon(item, None)  # usually LockLostError again (ignored)
        except Exception:
            self._log.exception("orchestration %r: commit failed; will retry", item.instance_id)
            await self._abandon(item, abandon_delay(item.dequeue_count))

    async def _abandon(
        self, item: OrchestrationWorkItem, delay: timedelta | None, *, deferred: bool = False
    ) -> None:
        try:
            await self._backend.abandon_orchestration(item, delay=delay, deferred=deferred)
        except LockLostError:
            pass  # the messages reappear when the lock expires anyway
        except Exception:
            self._log.exception("orchestration %r: abandon failed", item.instance_id)
