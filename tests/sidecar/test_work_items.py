"""WorkItemService over real gRPC, driven by a hand-written SDK worker (raw stub calls).

A raw stream shows exactly what the sidecar sends and when: nothing is locked while no worker
is connected, per-stream limits hold, abandoned and disconnected items come back, unknown
tokens are refused by name, idle streams get health pings, and a stop gives back what a
worker still holds. The backend is the in-memory one (the Azure path is in test_sdk_e2e.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from typing import Any

import grpc
import grpc.aio
import pytest
from durabletask.internal import orchestrator_service_pb2 as pb
from durabletask.internal import orchestrator_service_pb2_grpc as pb_grpc

from durable_azstorage import AsyncTaskHubClient, InMemoryBackend
from durable_azstorage.model.history import (
    ExecutionStarted,
    OrchestrationInstance,
    OrchestratorStarted,
)
from durable_azstorage.model.status import OrchestrationStatus
from durable_azstorage.replay.executor import ExecutionAbandoned
from durable_azstorage.sidecar.remote_executor import RemoteOrchestrationExecutor
from durable_azstorage.sidecar.work_items import WorkItemService
from durable_azstorage.worker import processor

WAIT = 10.0


class _Servicer(pb_grpc.TaskHubSidecarServiceServicer):  # type: ignore[misc]
    """Only the work-item RPCs, delegated as the real service does."""

    def __init__(self, work: WorkItemService) -> None:
        self._work = work

    async def GetWorkItems(self, request: Any, context: Any) -> AsyncIterator[pb.WorkItem]:
        async for item in self._work.GetWorkItems(request, context):
            yield item

    async def CompleteOrchestratorTask(self, request: Any, context: Any) -> Any:
        return await self._work.CompleteOrchestratorTask(request, context)

    async def CompleteActivityTask(self, request: Any, context: Any) -> Any:
        return await self._work.CompleteActivityTask(request, context)

    async def AbandonTaskOrchestratorWorkItem(self, request: Any, context: Any) -> Any:
        return await self._work.AbandonTaskOrchestratorWorkItem(request, context)

    async def AbandonTaskActivityWorkItem(self, request: Any, context: Any) -> Any:
        return await self._work.AbandonTaskActivityWorkItem(request, context)


class RawStream:
    """A ``GetWorkItems`` call read by a pump task (cancelling a grpc.aio read would cancel
    the whole call, so timeouts apply to the queue, not to the stream)."""

    def __init__(self, call: Any) -> None:
        self.call = call
        self.items: asyncio.Queue[Any] = asyncio.Queue()
        self._pump = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        try:
            while True:
                item = await self.call.read()
                await self.items.put(item)
                if item is grpc.aio.EOF:
                    return
        except (grpc.aio.AioRpcError, asyncio.CancelledError):
            await self.items.put(grpc.aio.EOF)

    async def read(self, timeout: float = WAIT) -> Any:
        return await asyncio.wait_for(self.items.get(), timeout)

    def cancel(self) -> None:
        self.call.cancel()


class Harness:
    def __init__(
        self, backend: InMemoryBackend, work: WorkItemService, stub: Any, client: AsyncTaskHubClient
    ) -> None:
        self.backend, self.work, self.stub, self.client = backend, work, stub, client

    def connect(self, *, orchestrations: int = 0, activities: int = 0) -> Any:
        return RawStream(
            self.stub.GetWorkItems(
                pb.GetWorkItemsRequest(
                    maxConcurrentOrchestrationWorkItems=orchestrations,
                    maxConcurrentActivityWorkItems=activities,
                )
            )
        )

    async def status(self, iid: str) -> OrchestrationStatus | None:
        state = await self.client.get_orchestration_state(iid)
        return None if state is None else state.runtime_status


@contextlib.asynccontextmanager
async def _serving(work: WorkItemService, backend: InMemoryBackend) -> AsyncIterator[Harness]:
    """``work`` served over real gRPC on a free port, with a client on ``backend``."""
    server = grpc.aio.server()
    pb_grpc.add_TaskHubSidecarServiceServicer_to_server(_Servicer(work), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await work.start()
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    client = AsyncTaskHubClient(backend=backend)
    try:
        yield Harness(backend, work, pb_grpc.TaskHubSidecarServiceStub(channel), client)
    finally:
        await work.stop(grace=0.5)
        await channel.close()
        await server.stop(None)
        await client.close()


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    backend = InMemoryBackend()
    await backend.create_task_hub()
    work = WorkItemService(backend, health_ping_interval=0.3, dispatch_wait=0.5, poll_timeout=0.1)
    async with _serving(work, backend) as h:
        yield h


async def _next_work(stream: RawStream, timeout: float = WAIT) -> pb.WorkItem:
    """The next work item that is not a health ping, within ``timeout`` seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        item = await stream.read(max(deadline - asyncio.get_running_loop().time(), 0.0))
        assert item is not grpc.aio.EOF, "the stream ended"
        if not item.HasField("healthPing"):
            return item


def _schedule_activity(
    orchestration: pb.WorkItem, name: str, task_id: int
) -> pb.OrchestratorResponse:
    action = pb.OrchestratorAction(id=task_id, scheduleTask=pb.ScheduleTaskAction(name=name))
    action.scheduleTask.input.value = json.dumps(task_id)
    return pb.OrchestratorResponse(
        instanceId=orchestration.orchestratorRequest.instanceId,
        completionToken=orchestration.completionToken,
        actions=[action],
    )


def _complete(orchestration: pb.WorkItem, result: str) -> pb.OrchestratorResponse:
    action = pb.OrchestratorAction(
        id=99,
        completeOrchestration=pb.CompleteOrchestrationAction(
            orchestrationStatus=pb.ORCHESTRATION_STATUS_COMPLETED
        ),
    )
    action.completeOrchestration.result.value = result
    return pb.OrchestratorResponse(
        instanceId=orchestration.orchestratorRequest.instanceId,
        completionToken=orchestration.completionToken,
        actions=[action],
    )


async def test_nothing_is_locked_until_a_worker_connects_then_the_full_history_is_sent(
    harness: Harness,
) -> None:
    iid = await harness.client.schedule_new_orchestration("orch", input={"x": 1})
    await asyncio.sleep(0.5)  # many poll intervals: with no stream, the engine fetches nothing
    assert harness.work.connected_workers == 0
    assert await harness.status(iid) is OrchestrationStatus.PENDING

    stream = harness.connect()
    first = await _next_work(stream)
    request = first.orchestratorRequest
    assert request.instanceId == iid and first.completionToken
    assert [e.WhichOneof("eventType") for e in request.pastEvents] == []
    assert [e.WhichOneof("eventType") for e in request.newEvents] == [
        "orchestratorStarted",
        "executionStarted",
    ]
    assert json.loads(request.newEvents[1].executionStarted.input.value) == {"x": 1}
    await harness.stub.CompleteOrchestratorTask(_schedule_activity(first, "act", 1))

    activity = await _next_work(stream)
    assert activity.activityRequest.name == "act" and activity.activityRequest.taskId == 1
    assert activity.activityRequest.orchestrationInstance.instanceId == iid
    response = pb.ActivityResponse(
        instanceId=iid, taskId=1, completionToken=activity.completionToken
    )
    response.result.value = '"done"'
    await harness.stub.CompleteActivityTask(response)

    second = await _next_work(stream)
    past = [e.WhichOneof("eventType") for e in second.orchestratorRequest.pastEvents]
    new = [e.WhichOneof("eventType") for e in second.orchestratorRequest.newEvents]
    assert past == [
        "orchestratorStarted",
        "executionStarted",
        "taskScheduled",
        "orchestratorCompleted",
    ]
    assert new == ["orchestratorStarted", "taskCompleted"]
    await harness.stub.CompleteOrchestratorTask(_complete(second, '"finished"'))
    state = await harness.client.wait_for_orchestration_completion(iid, timeout=WAIT)
    assert (
        state.runtime_status is OrchestrationStatus.COMPLETED and state.get_output() == "finished"
    )
    stream.cancel()


async def test_per_stream_limit_abandon_and_disconnect_redeliver(harness: Harness) -> None:
    iid = await harness.client.schedule_new_orchestration("orch")
    orchestrator = harness.connect(orchestrations=5, activities=1)
    first = await _next_work(orchestrator)
    response = _schedule_activity(first, "a", 1)
    response.actions.append(
        pb.OrchestratorAction(id=2, scheduleTask=pb.ScheduleTaskAction(name="b"))
    )
    await harness.stub.CompleteOrchestratorTask(response)

    held = await _next_work(orchestrator)
    assert held.HasField("activityRequest")
    with pytest.raises(asyncio.TimeoutError):  # the limit is one activity at a time
        await _next_work(orchestrator, timeout=1.0)

    # The SDK gives it back: it comes again (to the only stream with room).
    await harness.stub.AbandonTaskActivityWorkItem(
        pb.AbandonActivityTaskRequest(completionToken=held.completionToken)
    )
    again = await _next_work(orchestrator)
    assert again.activityRequest.taskId in (1, 2) and again.completionToken != held.completionToken

    # The stream goes away holding it: a new stream gets it (and the other one) again.
    orchestrator.cancel()
    replacement = harness.connect(orchestrations=5, activities=5)
    got = {(await _next_work(replacement)).activityRequest.taskId for _ in range(2)}
    assert got == {1, 2}
    assert await harness.status(iid) is OrchestrationStatus.RUNNING
    replacement.cancel()


async def test_unknown_and_mismatched_tokens_are_refused_by_name(harness: Harness) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as unknown:
        await harness.stub.CompleteActivityTask(
            pb.ActivityResponse(instanceId="x", completionToken="no-such-token")
        )
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
    assert "no-such-token" in (unknown.value.details() or "")
    with pytest.raises(grpc.aio.AioRpcError) as abandon:
        await harness.stub.AbandonTaskOrchestratorWorkItem(
            pb.AbandonOrchestrationTaskRequest(completionToken="gone")
        )
    assert abandon.value.code() == grpc.StatusCode.NOT_FOUND and "'gone'" in (
        abandon.value.details() or ""
    )

    iid = await harness.client.schedule_new_orchestration("orch")
    stream = harness.connect()
    item = await _next_work(stream)
    with pytest.raises(grpc.aio.AioRpcError) as kind:  # an orchestration token used for an activity
        await harness.stub.CompleteActivityTask(
            pb.ActivityResponse(instanceId=iid, completionToken=item.completionToken)
        )
    assert kind.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert item.completionToken in (kind.value.details() or "")
    wrong = _complete(item, "1")
    wrong.instanceId = "someone-else"
    with pytest.raises(grpc.aio.AioRpcError) as other:
        await harness.stub.CompleteOrchestratorTask(wrong)
    assert other.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "someone-else" in (
        other.value.details() or ""
    )
    # The item is still pending: the right answer completes it.
    await harness.stub.CompleteOrchestratorTask(_complete(item, "1"))
    state = await harness.client.wait_for_orchestration_completion(iid, timeout=WAIT)
    assert state.get_output() == 1
    stream.cancel()


async def test_idle_streams_get_health_pings(harness: Harness) -> None:
    stream = harness.connect()
    item = await stream.read()
    assert item.HasField("healthPing")
    stream.cancel()


async def test_unsupported_actions_fail_the_instance_with_a_clear_reason(harness: Harness) -> None:
    iid = await harness.client.schedule_new_orchestration("orch")
    stream = harness.connect()
    item = await _next_work(stream)
    entity = pb.OrchestratorAction(id=1, sendEntityMessage=pb.SendEntityMessageAction())
    await harness.stub.CompleteOrchestratorTask(
        pb.OrchestratorResponse(
            instanceId=iid, completionToken=item.completionToken, actions=[entity]
        )
    )
    state = await harness.client.wait_for_orchestration_completion(iid, timeout=WAIT)
    assert state.runtime_status is OrchestrationStatus.FAILED and state.failure_details is not None
    # an entity message with no message type in it (entity messages are supported)
    assert "sendEntityMessage action 1 has no known message type" in state.failure_details.message
    stream.cancel()


async def test_stop_gives_back_what_a_worker_still_holds() -> None:
    backend = InMemoryBackend()
    await backend.create_task_hub()
    work = WorkItemService(backend, health_ping_interval=5, dispatch_wait=0.5, poll_timeout=0.1)
    server = grpc.aio.server()
    pb_grpc.add_TaskHubSidecarServiceServicer_to_server(_Servicer(work), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await work.start()
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        client = AsyncTaskHubClient(backend=backend)
        iid = await client.schedule_new_orchestration("orch")
        stream = RawStream(
            pb_grpc.TaskHubSidecarServiceStub(channel).GetWorkItems(pb.GetWorkItemsRequest())
        )
        item = await _next_work(stream)
        await work.stop(grace=0.2)  # the worker never answers
        assert await stream.read() is grpc.aio.EOF  # the stream was ended
        assert work.connected_workers == 0
        # The backend got the item back: a new service on the same backend delivers it again.
        again_service = WorkItemService(backend, dispatch_wait=0.5, poll_timeout=0.1)
        server2 = grpc.aio.server()
        pb_grpc.add_TaskHubSidecarServiceServicer_to_server(_Servicer(again_service), server2)
        port2 = server2.add_insecure_port("127.0.0.1:0")
        await again_service.start()
        await server2.start()
        channel2 = grpc.aio.insecure_channel(f"127.0.0.1:{port2}")
        try:
            stream2 = RawStream(
                pb_grpc.TaskHubSidecarServiceStub(channel2).GetWorkItems(pb.GetWorkItemsRequest())
            )
            redelivered = await _next_work(stream2)
            assert (
                redelivered.orchestratorRequest.instanceId
                == iid
                == item.orchestratorRequest.instanceId
            )
            stream2.cancel()
        finally:
            await again_service.stop(grace=0.2)
            await channel2.close()
            await server2.stop(None)
        await client.close()
    finally:
        await work.stop(grace=0)
        await channel.close()
        await server.stop(None)


# --- the remote orchestration executor on its own ------------------------------------------------
class _CannedStreams:
    """Stands in for ``WorkerStreams``: records what is dispatched, answers from a script."""

    def __init__(self, answer: Any) -> None:
        self.sent: list[pb.WorkItem] = []
        self.answer = answer

    async def dispatch(
        self,
        kind: str,
        item: pb.WorkItem,
        *,
        instance_id: str,
        what: str,
        name: str,
        version: str | None = None,
    ) -> Any:
        self.sent.append(item)
        if self.answer is None:
            await asyncio.sleep(3600)  # an SDK that never answers
        return self.answer


async def test_remote_executor_replays_for_state_and_gives_up_after_its_timeout() -> None:
    when = datetime(2026, 1, 1, 12, 0, 0, 250000, tzinfo=timezone.utc)
    history = [
        OrchestratorStarted(timestamp=when),
        ExecutionStarted(
            timestamp=when,
            name="o",
            instance=OrchestrationInstance(instance_id="i", execution_id="x"),
        ),
    ]
    loop = asyncio.get_running_loop()
    answer = pb.OrchestratorResponse(instanceId="i")
    answer.customStatus.value = '"waiting"'
    streams = _CannedStreams(answer)
    executor = RemoteOrchestrationExecutor(streams, loop, timeout=WAIT)  # type: ignore[arg-type]
    # No new events (a replay only to learn the state): the SDK still gets one OrchestratorStarted,
    # at the last episode's time, so the code sees no time pass.
    result = await loop.run_in_executor(None, executor.execute, "i", history, ())
    request = streams.sent[0].orchestratorRequest
    assert [e.WhichOneof("eventType") for e in request.newEvents] == ["orchestratorStarted"]
    assert request.newEvents[0].timestamp.ToDatetime(tzinfo=timezone.utc) == when
    assert request.executionId.value == "x"
    assert result.custom_status == '"waiting"' and result.actions == ()

    silent = RemoteOrchestrationExecutor(_CannedStreams(None), loop, timeout=0.2)  # type: ignore[arg-type]
    with pytest.raises(ExecutionAbandoned, match="no answer from the SDK worker within"):
        await loop.run_in_executor(None, silent.execute, "i", history, ())


def _filtered(orchestrations: dict[str, list[str]]) -> pb.GetWorkItemsRequest:
    request = pb.GetWorkItemsRequest()
    request.workItemFilters.CopyFrom(
        pb.WorkItemFilters(
            orchestrations=[
                pb.OrchestrationFilter(name=name, versions=versions)
                for name, versions in orchestrations.items()
            ]
        )
    )
    return request


@pytest.fixture
async def strict_harness(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Harness]:
    """A sidecar that declares an item poison at its second failed delivery, deferring fast."""
    monkeypatch.setattr(processor, "DEFERRAL_DELAY", timedelta(milliseconds=100))
    backend = InMemoryBackend()
    await backend.create_task_hub()
    work = WorkItemService(backend, dispatch_wait=0.5, poll_timeout=0.1, max_dequeue_count=1)
    async with _serving(work, backend) as h:
        yield h


async def test_work_item_filters_route_items_and_unmatched_ones_stay_pending_without_poison(
    strict_harness: Harness,
) -> None:
    harness = strict_harness
    only_a = RawStream(harness.stub.GetWorkItems(_filtered({"a": ["2.0"]})))
    wrong_version = await harness.client.schedule_new_orchestration("a", version="1.0")
    other_name = await harness.client.schedule_new_orchestration("b")
    good = await harness.client.schedule_new_orchestration("a", version="2.0")

    first = await _next_work(only_a)
    assert first.orchestratorRequest.instanceId == good
    await harness.stub.CompleteOrchestratorTask(_complete(first, '"ok"'))
    await asyncio.sleep(1.5)  # many deferrals of the other two (100 ms each), none counted
    with pytest.raises(asyncio.TimeoutError):
        await _next_work(only_a, timeout=0.2)
    assert await harness.status(wrong_version) is OrchestrationStatus.PENDING
    assert await harness.status(other_name) is OrchestrationStatus.PENDING

    unfiltered_b = RawStream(harness.stub.GetWorkItems(_filtered({"b": []})))
    got = await _next_work(unfiltered_b)
    assert got.orchestratorRequest.instanceId == other_name
    await harness.stub.CompleteOrchestratorTask(_complete(got, '"b"'))
    state = await harness.client.wait_for_orchestration_completion(other_name, timeout=WAIT)
    assert state.runtime_status is OrchestrationStatus.COMPLETED
    assert await harness.status(wrong_version) is OrchestrationStatus.PENDING
    only_a.cancel()
    unfiltered_b.cancel()


async def test_sdk_abandons_never_count_toward_poison(strict_harness: Harness) -> None:
    """An SDK abandons under versioning REJECT (or when stopping): with max_dequeue_count=1,
    a counted abandon would fail the instance at its second delivery."""
    harness = strict_harness
    iid = await harness.client.schedule_new_orchestration("orch")
    stream = harness.connect()
    for _ in range(3):
        item = await _next_work(stream)
        await harness.stub.AbandonTaskOrchestratorWorkItem(
            pb.AbandonOrchestrationTaskRequest(completionToken=item.completionToken)
        )
    last = await _next_work(stream)
    assert last.orchestratorRequest.instanceId == iid
    await harness.stub.CompleteOrchestratorTask(_complete(last, '"done"'))
    state = await harness.client.wait_for_orchestration_completion(iid, timeout=WAIT)
    assert state.runtime_status is OrchestrationStatus.COMPLETED
    stream.cancel()
