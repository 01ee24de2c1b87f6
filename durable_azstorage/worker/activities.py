"""Processes activity work items: run the user's function, send its result to the orchestration.

The code runs through an ``ActivityExecutor``: ``LocalActivityExecutor`` runs registered
functions (sync ones on a thread pool, ``async def`` ones awaited; ``run_activity`` decides);
the gRPC sidecar passes one that hands the request to a portable-SDK worker. Whatever happens,
the orchestration gets an answer: an unregistered name, a user exception or a bug here all
become a ``TaskFailed`` with a clear ``FailureDetails``; the worker never crashes on an
activity. A request delivered more than ``max_dequeue_count`` times (the worker kept dying
while running it) fails without running again. An executor raising ``ExecutionAbandoned``
(the remote worker went away) gets the request abandoned, to run again.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import logging
import time
from collections.abc import Callable
from datetime import datetime
from typing import Protocol

from durable_azstorage.authoring.context import ActivityContext
from durable_azstorage.authoring.registry import Registry
from durable_azstorage.backend.protocol import ActivityWorkItem, Backend
from durable_azstorage.model.errors import LockLostError
from durable_azstorage.model.failure import FailureDetails
from durable_azstorage.model.history import TaskCompleted, TaskFailed
from durable_azstorage.model.messages import TaskMessage
from durable_azstorage.replay.activity import run_activity
from durable_azstorage.replay.executor import ExecutionAbandoned
from durable_azstorage.serialization.converter import DataConverter
from durable_azstorage.telemetry.logs import log_fields
from durable_azstorage.telemetry.metrics import record_activity, record_poison
from durable_azstorage.telemetry.tracing import activity_span
from durable_azstorage.worker.processor import WorkItemProcessor, abandon_delay

POISON_ERROR_TYPE = "durable_azstorage.PoisonMessage"


class ActivityExecutor(Protocol):
    """Runs one activity request; user errors come back as ``TaskFailed``, never raised."""

    async def __call__(self, item: ActivityWorkItem) -> TaskCompleted | TaskFailed: ...


class LocalActivityExecutor:
    """Runs the activities registered in ``registry`` in this process.

    Owns the thread pool sync activities run on; ``close()`` it when the worker stops.
    """

    def __init__(self, registry: Registry, converter: DataConverter, *, threads: int) -> None:
        self._registry = registry
        self._converter = converter
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=threads, thread_name_prefix="dtaz-activity"
        )

    async def __call__(self, item: ActivityWorkItem) -> TaskCompleted | TaskFailed:
        ctx = ActivityContext(
            orchestration_id=item.instance.instance_id,
            task_id=item.task_id,
            task_name=item.name,
            attempt=item.dequeue_count,
        )
        with activity_span(
            item.name, item.instance.instance_id, item.task_id, item.trace_context
        ) as span:
            result = await run_activity(
                self._registry,
                ctx,
                item.name,
                item.input,
                converter=self._converter,
                executor=self._pool,
            )
            span.finish(result.failure_details if isinstance(result, TaskFailed) else None)
        return result

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


class ActivityProcessor(WorkItemProcessor):
    """Runs one ``ActivityWorkItem`` and completes it with a TaskCompleted/TaskFailed message."""

    def __init__(
        self,
        backend: Backend,
        executor: ActivityExecutor,
        *,
        max_dequeue_count: int,
        logger: logging.Logger,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        super().__init__(backend, max_dequeue_count=max_dequeue_count, logger=logger, clock=clock)
        self._code = executor

    async def fetch(self, timeout: float) -> ActivityWorkItem | None:
        return await self._backend.lock_next_activity(timeout)

    async def renew(self, item: ActivityWorkItem) -> None:
        await self._backend.renew_activity(item)

    async def process(self, item: ActivityWorkItem) -> None:
        """Run the activity and send its result; never raises (except cancellation)."""
        with log_fields(
            instance_id=item.instance.instance_id, execution_id=item.instance.execution_id
        ):
            await self._process(item)

    async def _process(self, item: ActivityWorkItem) -> None:
        began = time.monotonic()
        try:
            result = await self._run(item)
        except ExecutionAbandoned as exc:
            self._log.log(
                logging.DEBUG if exc.deferred else logging.INFO,
                "activity %r (task %d of %r): abandoned, it will be delivered again: %s",
                item.name,
                item.task_id,
                item.instance.instance_id,
                exc,
            )
            record_activity(item.name, "abandoned", time.monotonic() - began)
            await self._abandon(item, deferred=exc.deferred)
            return
        outcome = "failed" if isinstance(result, TaskFailed) else "completed"
        record_activity(item.name, outcome, time.monotonic() - began)
        self._log.debug(
            "activity %r (task %d of %r): %s",
            item.name,
            item.task_id,
            item.instance.instance_id,
            outcome,
        )
        # Whatever ran the code, the answer names the scheduling it answers (replay.ledger).
        answer = dataclasses.replace(result, schedule_index=item.schedule_index)
        message = TaskMessage(instance=item.instance, event=answer)
        try:
            await self._backend.complete_activity(item, message)
        except LockLostError as exc:
            self._log.warning(
                "activity %r (task %d of %r): lock lost while completing: %s",
                item.name,
                item.task_id,
                item.instance.instance_id,
                exc,
            )
        except Exception:
            self._log.exception(
                "activity %r (task %d of %r): completing failed; will retry",
                item.name,
                item.task_id,
                item.instance.instance_id,
            )
            await self._abandon(item)

    async def _abandon(self, item: ActivityWorkItem, *, deferred: bool = False) -> None:
        delay = abandon_delay(item.dequeue_count, deferred=deferred)
        try:
            await self._backend.abandon_activity(item, delay=delay, deferred=deferred)
        except LockLostError:
            pass  # the request reappears when the lock expires anyway
        except Exception:
            self._log.exception("activity %r: abandon failed", item.name)

    async def _run(self, item: ActivityWorkItem) -> TaskCompleted | TaskFailed:
        if item.dequeue_count > self._max_dequeue_count:
            record_poison("activity")
            return self._failed(
                item,
                FailureDetails(
                    message=(
                        f"activity {item.name!r} (task {item.task_id} of orchestration "
                        f"{item.instance.instance_id!r}) was delivered {item.dequeue_count} "
                        f"times (max_dequeue_count={self._max_dequeue_count}) without "
                        "completing; it was not run again"
                    ),
                    error_type=POISON_ERROR_TYPE,
                    is_non_retriable=True,
                ),
            )
        try:
            return await self._code(item)
        except ExecutionAbandoned:
            raise
        except Exception as exc:  # executors report user errors themselves; this is a bug guard
            self._log.exception("activity %r: the activity runner failed", item.name)
            return self._failed(item, FailureDetails.from_exception(exc))

    def _failed(self, item: ActivityWorkItem, details: FailureDetails) -> TaskFailed:
        return TaskFailed(
            timestamp=self._clock(), task_scheduled_id=item.task_id, failure_details=details
        )
