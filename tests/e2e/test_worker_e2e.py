"""The worker runtime: construction, graceful stop, asyncio mode, concurrency, renewal, poison."""

from __future__ import annotations

import asyncio
import threading
from datetime import timedelta
from typing import Any

import pytest

from durable_azstorage import (
    ActivityContext,
    AsyncTaskHubClient,
    InMemoryBackend,
    OrchestrationContext,
    OrchestrationStatus,
    TaskFailedError,
    TaskHubClient,
    TaskHubNotFoundError,
    TaskHubWorker,
    when_all,
)
from durable_azstorage.backend.protocol import Backend, OrchestrationCommit, OrchestrationWorkItem
from durable_azstorage.testing.eventually import eventually

TIMEOUT = 10


def one_activity(ctx: OrchestrationContext, name: str):  # type: ignore[no-untyped-def]
    return (yield ctx.call_activity(name))


class FakeSettings:
    """Duck-typed settings: the worker and client only call ``create_backend()``."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.max_dequeue_count = 3
        self.created = 0

    def create_backend(self) -> Backend:
        self.created += 1
        return self.backend


def test_exactly_one_of_settings_or_backend() -> None:
    backend = InMemoryBackend()
    with pytest.raises(ValueError, match="exactly one"):
        TaskHubWorker()
    with pytest.raises(ValueError, match="exactly one"):
        TaskHubWorker(FakeSettings(backend), backend=backend)
    with pytest.raises(ValueError, match="exactly one"):
        TaskHubClient()
    with pytest.raises(ValueError, match="max_concurrent_activities"):
        TaskHubWorker(backend=backend, max_concurrent_activities=0)


def test_settings_create_the_backend_and_context_managers_clean_up() -> None:
    settings = FakeSettings(InMemoryBackend())

    def greet(ctx: ActivityContext, _: Any) -> str:
        return "hi"

    worker = TaskHubWorker(settings)
    worker.add_orchestrator(one_activity)
    worker.add_activity(greet)
    with worker, TaskHubClient(settings) as client:
        worker.start()
        iid = client.schedule_new_orchestration(one_activity, input="greet")
        assert client.wait_for_orchestration_completion(iid, timeout=TIMEOUT).get_output() == "hi"
    assert settings.created == 2
    with pytest.raises(RuntimeError, match="closed"):
        client.get_orchestration_state(iid)


def test_duplicate_registration_is_refused(worker: TaskHubWorker) -> None:
    worker.add_orchestrator(one_activity)
    with pytest.raises(ValueError, match="already registered"):
        worker.add_orchestrator(one_activity)


def test_graceful_stop_finishes_in_flight_activity(
    backend: InMemoryBackend, client: TaskHubClient
) -> None:
    started, release = threading.Event(), threading.Event()
    runs: list[int] = []

    def slow(ctx: ActivityContext, _: Any) -> str:
        runs.append(ctx.attempt)
        started.set()
        release.wait(TIMEOUT)
        return "done"

    def make_worker() -> TaskHubWorker:
        w = TaskHubWorker(backend=backend)
        w.add_orchestrator(one_activity)
        w.add_activity(slow)
        return w

    first = make_worker()
    first.start()
    iid = client.schedule_new_orchestration(one_activity, input="slow")
    assert started.wait(TIMEOUT)
    stopper = threading.Thread(target=first.stop, kwargs={"grace": timedelta(seconds=TIMEOUT)})
    stopper.start()
    release.set()  # the activity finishes while the worker is stopping
    stopper.join(TIMEOUT)
    assert not stopper.is_alive()
    assert runs == [1]
    # Its result was completed before the stop: a new worker finishes the orchestration
    # without running the activity again.
    with make_worker() as second:
        second.start()
        state = client.wait_for_orchestration_completion(iid, timeout=TIMEOUT)
    assert state.get_output() == "done"
    assert runs == [1]


def test_stop_after_grace_cancels_and_work_is_redelivered() -> None:
    backend = InMemoryBackend(lock_timeout=timedelta(milliseconds=300))
    attempts: list[int] = []

    async def hangs_first_time(ctx: ActivityContext, _: Any) -> int:
        attempts.append(ctx.attempt)
        if ctx.attempt == 1:
            await asyncio.sleep(TIMEOUT)  # cancelled by the short grace period
        return ctx.attempt

    def make_worker() -> TaskHubWorker:
        w = TaskHubWorker(backend=backend)
        w.add_orchestrator(one_activity)
        w.add_activity(hangs_first_time)
        return w

    with TaskHubClient(backend=backend) as client:
        first = make_worker()
        first.start()
        iid = client.schedule_new_orchestration(one_activity, input="hangs_first_time")
        eventually(lambda: attempts, what="the first attempt of the activity")
        first.stop(grace=timedelta(milliseconds=100))
        # The cancelled request was not completed: it comes back when its lock expires.
        with make_worker() as second:
            second.start()
            state = client.wait_for_orchestration_completion(iid, timeout=TIMEOUT)
    assert state.get_output() == 2
    assert attempts == [1, 2]


async def test_run_async_with_async_client(backend: InMemoryBackend) -> None:
    async def double(ctx: ActivityContext, n: int) -> int:
        return n * 2

    def fan(ctx: OrchestrationContext, n: int):  # type: ignore[no-untyped-def]
        return sum((yield when_all([ctx.call_activity(double, input=i) for i in range(n)])))

    worker = TaskHubWorker(backend=backend)
    worker.add_orchestrator(fan)
    worker.add_activity(double)
    runner = asyncio.ensure_future(worker.run_async())
    try:
        async with AsyncTaskHubClient(backend=backend) as client:
            iid = await client.schedule_new_orchestration(fan, input=10)
            state = await client.wait_for_orchestration_completion(iid, timeout=TIMEOUT)
            assert state.get_output() == 90
            history = await client.get_orchestration_history(iid)
            assert history
    finally:
        await worker.stop_async(grace=timedelta(seconds=5))
        await asyncio.wait_for(runner, TIMEOUT)


async def test_run_async_stops_on_cancellation(backend: InMemoryBackend) -> None:
    worker = TaskHubWorker(backend=backend)
    runner = asyncio.ensure_future(worker.run_async())
    await asyncio.sleep(0.05)
    runner.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(runner, TIMEOUT)
    # The worker can run again afterwards.
    again = asyncio.ensure_future(worker.run_async())
    await asyncio.sleep(0.05)
    await worker.stop_async()
    await asyncio.wait_for(again, TIMEOUT)


def test_activity_concurrency_is_bounded(backend: InMemoryBackend, client: TaskHubClient) -> None:
    lock = threading.Lock()
    active = [0]
    peak = [0]

    def busy(ctx: ActivityContext, _: Any) -> None:
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        threading.Event().wait(0.05)
        with lock:
            active[0] -= 1

    def fan(ctx: OrchestrationContext, n: int):  # type: ignore[no-untyped-def]
        yield when_all([ctx.call_activity(busy) for _ in range(n)])
        return n

    worker = TaskHubWorker(backend=backend, max_concurrent_activities=2)
    worker.add_orchestrator(fan)
    worker.add_activity(busy)
    with worker:
        worker.start()
        iid = client.schedule_new_orchestration(fan, input=8)
        assert client.wait_for_orchestration_completion(iid, timeout=TIMEOUT).get_output() == 8
    assert peak[0] == 2


def test_long_activity_keeps_its_lock_by_renewal(client: TaskHubClient) -> None:
    backend = InMemoryBackend(lock_timeout=timedelta(milliseconds=300))
    runs: list[int] = []

    def long_one(ctx: ActivityContext, _: Any) -> str:
        runs.append(ctx.attempt)
        threading.Event().wait(1.0)  # more than three lock timeouts
        return "survived"

    worker = TaskHubWorker(backend=backend)  # renews at a third of the backend's lock_timeout
    worker.add_orchestrator(one_activity)
    worker.add_activity(long_one)
    with worker, TaskHubClient(backend=backend) as c:
        worker.start()
        iid = c.schedule_new_orchestration(one_activity, input="long_one")
        assert c.wait_for_orchestration_completion(iid, timeout=TIMEOUT).get_output() == "survived"
    assert runs == [1]  # never redelivered


class CommitFailsFor(InMemoryBackend):
    """A backend whose orchestration commits fail for one instance (a storage outage)."""

    def __init__(self, instance_id: str) -> None:
        super().__init__()
        self.instance_id = instance_id
        self.failed_commits = 0

    async def complete_orchestration(
        self, item: OrchestrationWorkItem, commit: OrchestrationCommit
    ) -> None:
        if item.instance_id == self.instance_id and commit.state.runtime_status is not (
            OrchestrationStatus.FAILED
        ):
            self.failed_commits += 1
            raise OSError("simulated storage outage")
        await super().complete_orchestration(item, commit)


def test_poison_work_item_fails_the_instance_and_tells_its_parent() -> None:
    backend = CommitFailsFor("poisoned")

    def trivial(ctx: OrchestrationContext, _: Any) -> str:
        return "never committed"

    def parent(ctx: OrchestrationContext, _: Any):  # type: ignore[no-untyped-def]
        try:
            return (yield ctx.call_sub_orchestrator(trivial, instance_id="poisoned"))
        except TaskFailedError as exc:
            return {"type": exc.details.error_type, "message": exc.details.message}

    worker = TaskHubWorker(backend=backend, max_dequeue_count=2)
    worker.add_orchestrator(trivial)
    worker.add_orchestrator(parent)
    with worker, TaskHubClient(backend=backend) as client:
        worker.start()
        pid = client.schedule_new_orchestration(parent)
        other = client.schedule_new_orchestration(trivial)
        state = client.wait_for_orchestration_completion("poisoned", timeout=TIMEOUT)
        parent_out = client.wait_for_orchestration_completion(pid, timeout=TIMEOUT).get_output()
        # Other instances are unaffected by the outage of one.
        assert client.wait_for_orchestration_completion(other, timeout=TIMEOUT).get_output() == (
            "never committed"
        )
    assert state.runtime_status is OrchestrationStatus.FAILED
    assert state.failure_details is not None
    assert "delivered 3 times" in state.failure_details.message
    assert "max_dequeue_count=2" in state.failure_details.message
    assert backend.failed_commits == 2
    assert parent_out["type"] == state.failure_details.error_type
    assert "delivered 3 times" in parent_out["message"]


def test_activity_redelivered_too_often_fails_without_running_again() -> None:
    backend = InMemoryBackend(lock_timeout=timedelta(milliseconds=200))
    attempts: list[int] = []

    def outlives_its_lock(ctx: ActivityContext, _: Any) -> str:
        attempts.append(ctx.attempt)
        threading.Event().wait(0.6)  # no renewal (see below): the lock lapses meanwhile
        return "too late"

    def orch(ctx: OrchestrationContext, _: Any):  # type: ignore[no-untyped-def]
        try:
            return (yield ctx.call_activity(outlives_its_lock))
        except TaskFailedError as exc:
            return exc.details.message

    worker = TaskHubWorker(
        backend=backend, max_dequeue_count=1, lock_renew_interval=timedelta(seconds=60)
    )
    worker.add_orchestrator(orch)
    worker.add_activity(outlives_its_lock)
    with worker, TaskHubClient(backend=backend) as client:
        worker.start()
        iid = client.schedule_new_orchestration(orch)
        out = client.wait_for_orchestration_completion(iid, timeout=TIMEOUT).get_output()
    assert "delivered 2 times (max_dequeue_count=1)" in out
    assert "outlives_its_lock" in out
    assert attempts == [1]


def test_start_on_a_missing_task_hub_raises_the_backend_error() -> None:
    backend = InMemoryBackend()
    asyncio.run(backend.delete_task_hub())
    worker = TaskHubWorker(backend=backend)
    with pytest.raises(TaskHubNotFoundError, match="create it first"):
        worker.start()
    asyncio.run(backend.create_task_hub())
    with worker:  # the same worker starts once the hub exists
        worker.start()
        pass
