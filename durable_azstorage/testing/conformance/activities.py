"""Activity work items: lock, complete, abandon (with delay), renew, expiry."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest

from durable_azstorage.backend.protocol import ActivityWorkItem
from durable_azstorage.model import history as h
from durable_azstorage.model.errors import LockLostError
from durable_azstorage.model.messages import TaskMessage

from .builders import episode, execution_id_of, instance, start_message
from .harness import BackendHarness


async def _schedule(harness: BackendHarness, instance_id: str, *names: str) -> None:
    await harness.backend.create_instance(start_message(instance_id))
    item = await harness.lock_orchestration()
    await harness.backend.complete_orchestration(
        item, episode(item, now=harness.now(), activities=names)
    )


def _result(request: ActivityWorkItem, value: str = '"ok"') -> TaskMessage:
    return TaskMessage(
        instance=request.instance,
        event=h.TaskCompleted(task_scheduled_id=request.task_id, result=value),
    )


class ActivityConformance:
    """Activity work items: lock, complete, abandon (with delay), renew, expiry."""

    async def test_lock_next_activity_returns_none_when_empty(
        self, harness: BackendHarness
    ) -> None:
        assert await harness.no_activity()
        assert await harness.backend.lock_next_activity(0) is None

    async def test_activity_request_carries_the_scheduling_details(
        self, harness: BackendHarness
    ) -> None:
        await harness.backend.create_instance(start_message("act-1"))
        item = await harness.lock_orchestration()
        await harness.backend.complete_orchestration(
            item, episode(item, now=harness.now(), activities=("Charge",), first_id=7)
        )

        request = await harness.lock_activity()

        assert request.name == "Charge"
        assert request.task_id == 7
        assert request.input == '"Charge-input"'
        assert request.instance == instance("act-1", execution_id_of(item))
        assert request.dequeue_count == 1

    async def test_complete_activity_consumes_the_request(self, harness: BackendHarness) -> None:
        await _schedule(harness, "act-done", "A")
        request = await harness.lock_activity()

        await harness.backend.complete_activity(request, _result(request))

        await harness.expire_locks()
        assert await harness.no_activity()
        done = await harness.lock_orchestration()
        assert [type(m.event).__name__ for m in done.messages] == ["TaskCompleted"]

    async def test_each_request_goes_to_one_worker(self, harness: BackendHarness) -> None:
        await _schedule(harness, "act-fan", "A", "B", "C")

        got = [await harness.lock_activity(), await harness.lock_activity(harness.peer)]
        got.append(await harness.lock_activity())

        assert sorted(r.name for r in got) == ["A", "B", "C"]
        assert await harness.no_activity(harness.peer)

    async def test_abandon_activity_redelivers(self, harness: BackendHarness) -> None:
        await _schedule(harness, "act-ab", "A")
        request = await harness.lock_activity()

        await harness.backend.abandon_activity(request)

        again = await harness.lock_activity(harness.peer)
        assert again.name == "A"
        assert again.dequeue_count == 2

    async def test_deferred_activity_abandons_never_count_toward_poison(
        self, harness: BackendHarness
    ) -> None:
        await _schedule(harness, "act-defer", "A")
        for _ in range(3):
            request = await harness.lock_activity()
            assert request.dequeue_count == 1
            await harness.backend.abandon_activity(request, deferred=True)

        request = await harness.lock_activity()
        assert request.dequeue_count == 1
        await harness.backend.abandon_activity(request)  # a failure counts again
        assert (await harness.lock_activity()).dequeue_count == 2

    async def test_abandon_activity_with_delay(self, harness: BackendHarness) -> None:
        await _schedule(harness, "act-delay", "A")
        request = await harness.lock_activity()

        await harness.backend.abandon_activity(request, delay=harness.delay)

        assert await harness.no_activity()
        await harness.advance(harness.delay + timedelta(seconds=1))
        assert (await harness.lock_activity()).dequeue_count == 2

    async def test_expired_activity_lock_redelivers(self, harness: BackendHarness) -> None:
        await _schedule(harness, "act-exp", "A")
        first = await harness.lock_activity()

        await harness.expire_locks()
        second = await harness.lock_activity(harness.peer)

        assert second.task_id == first.task_id
        assert second.dequeue_count == first.dequeue_count + 1
        with pytest.raises(LockLostError):
            await harness.backend.renew_activity(first)
        with pytest.raises(LockLostError):
            await harness.backend.abandon_activity(first)

    async def test_late_completion_still_sends_the_result(self, harness: BackendHarness) -> None:
        await _schedule(harness, "act-late", "A")
        late = await harness.lock_activity()
        await harness.expire_locks()
        current = await harness.lock_activity(harness.peer)

        with pytest.raises(LockLostError):
            await harness.backend.complete_activity(late, _result(late, '"late"'))
        await harness.peer.complete_activity(current, _result(current, '"current"'))

        results: list[h.HistoryEvent] = []
        while len(results) < 2:
            item = await harness.lock_orchestration()
            results += [m.event for m in item.messages]
            await harness.backend.complete_orchestration(item, episode(item, now=harness.now()))
        assert sorted(e.result for e in results) == ['"current"', '"late"']  # type: ignore[attr-defined]

    async def test_renew_activity_keeps_the_lock(self, harness: BackendHarness) -> None:
        await _schedule(harness, "act-renew", "A")
        request = await harness.lock_activity()
        step = harness.lock_timeout * 0.6

        await harness.advance(step)
        await harness.backend.renew_activity(request)
        await harness.advance(step)

        assert await harness.no_activity(harness.peer)
        await harness.backend.complete_activity(request, _result(request))

    async def test_foreign_activity_token_is_refused(self, harness: BackendHarness) -> None:
        await _schedule(harness, "act-forged", "A")
        request = await harness.lock_activity()
        forged = dataclasses.replace(request, lock_token=object())

        with pytest.raises(LockLostError):
            await harness.backend.renew_activity(forged)
        with pytest.raises(LockLostError):
            await harness.backend.abandon_activity(forged)
        with pytest.raises(LockLostError):
            await harness.backend.complete_activity(forged, _result(request))
        await harness.backend.complete_activity(request, _result(request))
