"""Processes activity work items: run the user's function, send its result to the orchestration.

Sync activities run on a thread pool, ``async def`` ones are awaited (``run_activity``
decides). Whatever happens, the orchestration gets an answer: an unregistered name, a user
exception or a bug here all become a ``TaskFailed`` with a clear ``FailureDetails``; the worker
never crashes on an activity. A request delivered more than ``max_dequeue_count`` times (the
worker kept dying while running it) fails without running again.
"""

from __future__ import annotations


from durable_azstorage.authoring.context import ActivityContext
from durable_azstorage.backend.protocol import ActivityWorkItem
from durable_azstorage.model.errors import LockLostError
from durable_azstorage.model.failure import FailureDetails
from durable_azstorage.model.history import TaskCompleted, TaskFailed
from durable_azstorage.model.messages import TaskMessage
from durable_azstorage.replay.activity import run_activity
from durable_azstorage.worker.processor import WorkItemProcessor, abandon_delay

POISON_ERROR_TYPE = "durable_azstorage.PoisonMessage"


class ActivityProcessor(WorkItemProcessor):
    """Runs one ``ActivityWorkItem`` and completes it with a TaskCompleted/TaskFailed message."""

    async def fetch(self, timeout: float) -> ActivityWorkItem | None:
        return await self._backend.lock_next_activity(timeout)

    async def renew(self, item: ActivityWorkItem) -> None:
        await self._backend.renew_activity(item)

    async def process(self, item: ActivityWorkItem) -> None:
        """Run the activity and send its result; never raises (except cancellation)."""
        result = await self._run(item)
        message = TaskMessage(instance=item.instance, event=result)
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
            try:
                await self._backend.abandon_activity(item, delay=abandon_delay(item.dequeue_count))
            except Exception:
                self._log.exception("activity %r: abandon failed", item.name)

    async def _run(self, item: ActivityWorkItem) -> TaskCompleted | TaskFailed:
        if item.dequeue_count > self._max_dequeue_count:
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
        ctx = ActivityContext(
            orchestration_id=item.instance.instance_id,
            task_id=item.task_id,
            task_name=item.name,
            attempt=item.dequeue_count,
        )
        try:
            return await run_activity(
                self._registry,
                ctx,
                item.name,
                item.input,
                converter=self._converter,
                executor=self._executor,
            )
        except Exception as exc:  # run_activity reports user errors itself; this is a bug guard
            self._log.exception("activity %r: the activity runner failed", item.name)
            return self._failed(item, FailureDetails.from_exception(exc))

    def _failed(self, item: ActivityWorkItem, details: FailureDetails) -> TaskFailed:
        return TaskFailed(
            timestamp=self._clock(), task_scheduled_id=item.task_id, failure_details=details
        )
