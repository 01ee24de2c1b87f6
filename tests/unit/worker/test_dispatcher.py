"""The dispatcher loop one turn at a time (``step``), against a scripted backend.

What only an end-to-end run showed before: a turn fetches at most one item and only with a
free slot; stopping interrupts a waiting fetch; ``drain`` cancels what outlives the grace
period without completing or abandoning it (its lock expires: at-least-once); locks are
renewed while an item runs, and renewal stops when the lock is lost; poison items are
failed without running the user's code.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from collections.abc import AsyncIterator, Sequence

import pytest

from durable_azstorage.backend.protocol import (
    ActivityWorkItem,
    OrchestrationCommit,
    OrchestrationWorkItem,
)
from durable_azstorage.model.history import HistoryEvent, TaskCompleted, TaskFailed, TaskScheduled
from durable_azstorage.model.messages import TaskMessage
from durable_azstorage.model.status import OrchestrationStatus
from durable_azstorage.replay.executor import ExecutionResult
from durable_azstorage.testing.eventually import eventually_async
from durable_azstorage.worker.activities import POISON_ERROR_TYPE, ActivityProcessor
from durable_azstorage.worker.dispatcher import Dispatcher
from durable_azstorage.worker.orchestrations import OrchestrationProcessor

from ..builders import IID, T0, me, msg, started
from .fake_backend import FakeBackend

LOG = logging.getLogger("test.dispatcher")
TICK = 0.01  # renew interval and poll timeout: short, the tests wait on conditions


class GatedActivities:
    """An activity executor that runs until its gate opens (or forever)."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.runs: list[ActivityWorkItem] = []

    async def __call__(self, item: ActivityWorkItem) -> TaskCompleted | TaskFailed:
        self.runs.append(item)
        await self.gate.wait()
        return TaskCompleted(timestamp=T0, task_scheduled_id=item.task_id, result='"done"')


def activity(task_id: int = 1, dequeue_count: int = 1) -> ActivityWorkItem:
    request = TaskMessage(instance=me(), event=TaskScheduled(event_id=task_id, name="work"))
    return ActivityWorkItem.from_message(request, lock_token=object(), dequeue_count=dequeue_count)


def activity_dispatcher(
    backend: FakeBackend,
    code: GatedActivities,
    *,
    max_concurrency: int = 2,
    poll_timeout: float = TICK,
    max_dequeue_count: int = 3,
) -> Dispatcher[ActivityWorkItem]:
    processor = ActivityProcessor(
        backend,
        code,
        max_dequeue_count=max_dequeue_count,
        logger=LOG,
        clock=lambda: T0,  # type: ignore[arg-type]
    )
    return Dispatcher(
        "activities",
        fetch=processor.fetch,
        process=processor.process,
        renew=processor.renew,
        max_concurrency=max_concurrency,
        renew_interval=TICK,
        poll_timeout=poll_timeout,
        error_delay=TICK,
        logger=LOG,
    )


@pytest.fixture
def backend() -> FakeBackend:
    return FakeBackend()


@pytest.fixture
async def code() -> AsyncIterator[GatedActivities]:
    gated = GatedActivities()
    yield gated
    gated.gate.set()  # let anything a failing test left running finish


async def test_a_step_fetches_one_item_and_completes_it(
    backend: FakeBackend, code: GatedActivities
) -> None:
    dispatcher = activity_dispatcher(backend, code)
    first, second = activity(1), activity(2)
    backend.offer(first)
    backend.offer(second)
    code.gate.set()
    task = await dispatcher.step()
    assert task is not None
    await task
    assert code.runs == [first]  # one turn, one item; the second is still queued
    ((done, answer),) = backend.completed
    assert (
        done is first
        and isinstance(answer, TaskMessage)
        and isinstance(answer.event, TaskCompleted)
    )
    assert backend.orchestrations.empty() and backend.activities.qsize() == 1


async def test_a_step_without_work_returns_none_and_gives_its_slot_back(
    backend: FakeBackend, code: GatedActivities
) -> None:
    dispatcher = activity_dispatcher(backend, code, max_concurrency=1)
    assert await dispatcher.step() is None
    backend.offer(activity())
    assert await dispatcher.step() is not None  # the one slot was free again
    assert dispatcher.in_flight == 1


async def test_a_full_dispatcher_fetches_only_when_a_slot_frees(
    backend: FakeBackend, code: GatedActivities
) -> None:
    dispatcher = activity_dispatcher(backend, code, max_concurrency=1)
    backend.offer(activity(1))
    backend.offer(activity(2))
    running = await dispatcher.step()
    assert running is not None and backend.fetches == 1
    waiting = asyncio.ensure_future(dispatcher.step())
    done, _ = await asyncio.wait({waiting}, timeout=10 * TICK)
    assert not done and backend.fetches == 1  # waiting for the slot, not fetching
    code.gate.set()
    second = await waiting
    assert second is not None and backend.fetches == 2
    await second
    assert [item.task_id for item, _ in backend.completed] == [1, 2]


async def test_stopping_interrupts_a_waiting_fetch(
    backend: FakeBackend, code: GatedActivities
) -> None:
    dispatcher = activity_dispatcher(backend, code, poll_timeout=300)
    turn = asyncio.ensure_future(dispatcher.step())
    await eventually_async(lambda: backend.fetches == 1, what="the fetch to start")
    dispatcher.request_stop()
    assert await turn is None
    assert backend.cancelled_fetches == 1  # an item it locked now would only wait to expire


async def test_a_stopped_dispatcher_fetches_nothing_and_run_returns(
    backend: FakeBackend, code: GatedActivities
) -> None:
    dispatcher = activity_dispatcher(backend, code)
    backend.offer(activity())
    dispatcher.request_stop()
    assert await dispatcher.step() is None
    await dispatcher.run()
    assert backend.fetches == 0 and backend.activities.qsize() == 1


async def test_run_keeps_fetching_until_stopped(
    backend: FakeBackend, code: GatedActivities
) -> None:
    dispatcher = activity_dispatcher(backend, code)
    code.gate.set()
    loop = asyncio.ensure_future(dispatcher.run())
    for task_id in (1, 2, 3):
        backend.offer(activity(task_id))
    await eventually_async(lambda: len(backend.completed) == 3, what="three completions")
    dispatcher.request_stop()
    await loop
    assert sorted(item.task_id for item, _ in backend.completed) == [1, 2, 3]


async def test_drain_waits_for_items_that_finish_within_the_grace_period(
    backend: FakeBackend, code: GatedActivities
) -> None:
    dispatcher = activity_dispatcher(backend, code)
    backend.offer(activity())
    task = await dispatcher.step()
    dispatcher.request_stop()
    asyncio.get_running_loop().call_later(TICK, code.gate.set)
    await dispatcher.drain(grace=60)
    assert task is not None and task.done() and not task.cancelled()
    assert len(backend.completed) == 1 and dispatcher.in_flight == 0


async def test_drain_cancels_what_outlives_the_grace_period_and_leaves_its_lock_to_expire(
    backend: FakeBackend, code: GatedActivities, caplog: pytest.LogCaptureFixture
) -> None:
    dispatcher = activity_dispatcher(backend, code)
    backend.offer(activity())
    task = await dispatcher.step()
    dispatcher.request_stop()
    with caplog.at_level(logging.WARNING, logger=LOG.name):
        await dispatcher.drain(grace=TICK)
    assert task is not None and task.cancelled()
    assert backend.completed == [] and backend.abandoned == []  # redelivered once the lock expires
    assert dispatcher.in_flight == 0
    assert "cancelled 1 work item(s) still running after the" in caplog.text


async def test_a_running_item_keeps_its_lock_renewed(
    backend: FakeBackend, code: GatedActivities
) -> None:
    dispatcher = activity_dispatcher(backend, code)
    item = activity()
    backend.offer(item)
    task = await dispatcher.step()
    await eventually_async(lambda: len(backend.renewed) >= 3, what="three renewals")
    assert set(map(id, backend.renewed)) == {id(item)}
    code.gate.set()
    assert task is not None
    await task
    attempts = backend.renew_attempts
    await asyncio.sleep(10 * TICK)  # ten renew intervals: a renewer left running would renew
    assert backend.renew_attempts == attempts


async def test_renewal_stops_when_the_lock_is_lost(
    backend: FakeBackend, code: GatedActivities, caplog: pytest.LogCaptureFixture
) -> None:
    dispatcher = activity_dispatcher(backend, code)
    item = activity()
    backend.offer(item)
    backend.lose_lock(item)
    with caplog.at_level(logging.WARNING, logger=LOG.name):
        task = await dispatcher.step()
        await eventually_async(lambda: backend.renew_attempts == 1, what="the first renewal")
        await asyncio.sleep(10 * TICK)  # ten renew intervals: a renewer still running would retry
    assert backend.renew_attempts == 1 and backend.renewed == []
    assert "lock lost while processing" in caplog.text
    code.gate.set()
    assert task is not None
    await task  # processing itself carries on; the backend decides at completion


async def test_a_failed_renewal_is_retried(
    backend: FakeBackend, code: GatedActivities, caplog: pytest.LogCaptureFixture
) -> None:
    dispatcher = activity_dispatcher(backend, code)
    item = activity()
    backend.offer(item)
    backend.fail_renewals(item, times=2)
    with caplog.at_level(logging.ERROR, logger=LOG.name):
        await dispatcher.step()
        await eventually_async(lambda: backend.renewed, what="a renewal after two failures")
    assert backend.renew_attempts >= 3
    assert caplog.text.count("renewing a lock failed; will retry") == 2
    code.gate.set()


async def test_a_failed_fetch_is_logged_and_the_slot_comes_back(
    backend: FakeBackend, code: GatedActivities, caplog: pytest.LogCaptureFixture
) -> None:
    dispatcher = activity_dispatcher(backend, code, max_concurrency=1)
    backend.fetch_error = ConnectionError("queue unreachable")
    with caplog.at_level(logging.ERROR, logger=LOG.name):
        assert await dispatcher.step() is None
    assert "fetching a work item failed: ConnectionError('queue unreachable')" in caplog.text
    backend.fetch_error = None
    backend.offer(activity())
    assert await dispatcher.step() is not None


async def test_an_error_escaping_processing_is_logged_and_frees_the_slot(
    backend: FakeBackend, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(item: ActivityWorkItem) -> None:
        raise RuntimeError("processor bug")

    async def renew(item: ActivityWorkItem) -> None:
        pass

    dispatcher: Dispatcher[ActivityWorkItem] = Dispatcher(
        "activities",
        fetch=backend.lock_next_activity,
        process=broken,
        renew=renew,
        max_concurrency=1,
        renew_interval=TICK,
        poll_timeout=TICK,
        logger=LOG,
    )
    backend.offer(activity(1))
    backend.offer(activity(2))
    with caplog.at_level(logging.ERROR, logger=LOG.name):
        first = await dispatcher.step()
        assert first is not None
        await first
        assert not first.cancelled() and first.exception() is None  # logged, not raised
        assert await dispatcher.step() is not None  # its slot was given back
    assert "unexpected error while processing a work item" in caplog.text


def test_a_dispatcher_needs_at_least_one_slot(backend: FakeBackend) -> None:
    with pytest.raises(ValueError, match="max concurrency of activities must be >= 1, got 0"):
        activity_dispatcher(backend, GatedActivities(), max_concurrency=0)


# --- poison ----------------------------------------------------------------------------------
async def test_a_poison_activity_fails_without_running(
    backend: FakeBackend, code: GatedActivities
) -> None:
    dispatcher = activity_dispatcher(backend, code, max_dequeue_count=3)
    backend.offer(activity(dequeue_count=4))
    task = await dispatcher.step()
    assert task is not None
    await task
    assert code.runs == []
    ((_, answer),) = backend.completed
    assert isinstance(answer, TaskMessage) and isinstance(answer.event, TaskFailed)
    assert answer.event.failure_details.error_type == POISON_ERROR_TYPE
    assert "delivered 4 times (max_dequeue_count=3)" in answer.event.failure_details.message


class NeverRun:
    """An orchestration executor a poison item must not reach."""

    def __init__(self) -> None:
        self.calls = 0

    def execute(
        self,
        instance_id: str,
        past_events: Sequence[HistoryEvent],
        new_events: Sequence[HistoryEvent],
    ) -> ExecutionResult:
        self.calls += 1
        raise AssertionError("a poison work item was replayed")


async def test_a_poison_orchestration_fails_its_instance_without_replaying(
    backend: FakeBackend,
) -> None:
    code = NeverRun()
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        processor = OrchestrationProcessor(
            backend,
            code,
            episode_pool=pool,
            max_dequeue_count=10,
            logger=LOG,
            clock=lambda: T0,  # type: ignore[arg-type]
        )
        dispatcher = Dispatcher(
            "orchestrations",
            fetch=processor.fetch,
            process=processor.process,
            renew=processor.renew,
            max_concurrency=1,
            renew_interval=TICK,
            poll_timeout=TICK,
            logger=LOG,
        )
        item = OrchestrationWorkItem(
            instance_id=IID,
            history=(),
            messages=(msg(started("flaky")),),
            lock_token=object(),
            dequeue_count=11,
        )
        backend.offer(item)
        task = await dispatcher.step()
        assert task is not None
        await task
    assert code.calls == 0 and backend.abandoned == []
    ((done, commit),) = backend.completed
    assert done is item and isinstance(commit, OrchestrationCommit)
    assert commit.state.runtime_status is OrchestrationStatus.FAILED
    assert commit.state.failure_details is not None
    assert "delivered 11 times (max_dequeue_count=10)" in commit.state.failure_details.message
