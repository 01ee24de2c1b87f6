"""The SDK's ``terminateOrchestration`` action through a real sidecar, on both backends.

The Python SDK has no API that sends this action (other SDKs' contexts do), so a hand-written
worker answers the work items over raw gRPC: one orchestration terminates another (and,
with ``recurse``, that one's running child), and sends the same action again on a later
episode as an SDK that keeps it pending would; it is recorded and sent once.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

import grpc
import grpc.aio
import pytest
from durabletask.internal import orchestrator_service_pb2 as pb
from durabletask.internal import orchestrator_service_pb2_grpc as pb_grpc

from durable_azstorage import AsyncTaskHubClient, InMemoryBackend
from durable_azstorage.azure.provider import AzureStorageBackend
from durable_azstorage.azure.settings import AzureStorageSettings
from durable_azstorage.backend.protocol import Backend
from durable_azstorage.model.history import EventSent, ExecutionTerminated
from durable_azstorage.model.status import OrchestrationStatus
from durable_azstorage.model.termination import TERMINATION_REQUEST, TerminationRequest
from durable_azstorage.sidecar.server import SidecarServer
from durable_azstorage.testing.eventually import eventually_async

WAIT = 30.0
Answer = Callable[[pb.OrchestratorRequest], list[pb.OrchestratorAction]]


@pytest.fixture(params=["memory", "azurite"])
async def backend(
    request: pytest.FixtureRequest, azure_settings: AzureStorageSettings
) -> AsyncIterator[Backend]:
    made: Backend
    if request.param == "memory":
        made = InMemoryBackend()
    else:
        made = AzureStorageBackend(
            dataclasses.replace(azure_settings, max_poll_interval=timedelta(milliseconds=300))
        )
    await made.create_task_hub()
    try:
        yield made
    finally:
        if request.param == "azurite":
            await made.delete_task_hub()


class RawWorker:
    """Answers every orchestration work item with ``answers[name]`` and keeps the requests."""

    def __init__(self, stub: Any, answers: dict[str, Answer]) -> None:
        self._stub = stub
        self._answers = answers
        self.requests: dict[str, list[pb.OrchestratorRequest]] = {}
        self._call = stub.GetWorkItems(pb.GetWorkItemsRequest())
        self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        with contextlib.suppress(grpc.aio.AioRpcError, asyncio.CancelledError):
            while (item := await self._call.read()) is not grpc.aio.EOF:
                if item.HasField("orchestratorRequest"):
                    await self._answer(item)

    async def _answer(self, item: pb.WorkItem) -> None:
        request = item.orchestratorRequest
        self.requests.setdefault(request.instanceId, []).append(request)
        name = next(
            e.executionStarted.name
            for e in [*request.pastEvents, *request.newEvents]
            if e.HasField("executionStarted")
        )
        await self._stub.CompleteOrchestratorTask(
            pb.OrchestratorResponse(
                instanceId=request.instanceId,
                completionToken=item.completionToken,
                actions=self._answers[name](request),
            )
        )

    async def stop(self) -> None:
        self._call.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


@contextlib.asynccontextmanager
async def _serving(
    backend: Backend, answers: dict[str, Answer]
) -> AsyncIterator[tuple[AsyncTaskHubClient, RawWorker]]:
    """A sidecar on ``backend`` with a raw worker answering ``answers``, and a client."""
    server = SidecarServer(backend, port=0, ownership_wait=1.0)
    await server.start()
    channel = grpc.aio.insecure_channel(server.address)
    client = AsyncTaskHubClient(backend=backend)
    worker = RawWorker(pb_grpc.TaskHubSidecarServiceStub(channel), answers)
    try:
        yield client, worker
    finally:
        await worker.stop()
        await channel.close()
        await server.stop(grace=1.0)
        await client.close()


def _new_kinds(request: pb.OrchestratorRequest) -> list[str]:
    return [e.WhichOneof("eventType") for e in request.newEvents]


def _terminate(task_id: int, target: str, reason: str, *, recurse: bool) -> pb.OrchestratorAction:
    action = pb.OrchestratorAction(
        id=task_id,
        terminateOrchestration=pb.TerminateOrchestrationAction(instanceId=target, recurse=recurse),
    )
    action.terminateOrchestration.reason.value = reason
    return action


def _complete(task_id: int, result: str) -> pb.OrchestratorAction:
    action = pb.OrchestratorAction(
        id=task_id,
        completeOrchestration=pb.CompleteOrchestrationAction(
            orchestrationStatus=pb.ORCHESTRATION_STATUS_COMPLETED
        ),
    )
    action.completeOrchestration.result.value = result
    return action


def _victim(request: pb.OrchestratorRequest) -> list[pb.OrchestratorAction]:
    """Starts a child that waits for an event, then waits itself (until terminated)."""
    if "executionStarted" not in _new_kinds(request):
        return []  # its termination: the sidecar ends it whatever the SDK answers
    child = pb.OrchestratorAction(
        id=1,
        createSubOrchestration=pb.CreateSubOrchestrationAction(
            name="waiter", instanceId=f"{request.instanceId}-child"
        ),
    )
    return [child]


def _waiter(request: pb.OrchestratorRequest) -> list[pb.OrchestratorAction]:
    return []


def _terminator(victim: str) -> Answer:
    def answer(request: pb.OrchestratorRequest) -> list[pb.OrchestratorAction]:
        terminate = _terminate(1, victim, json.dumps("enough"), recurse=True)
        if "eventRaised" not in _new_kinds(request):
            return [terminate]  # first episode: terminate, then wait for "go"
        return [terminate, _complete(2, json.dumps("done"))]  # sent again, as still pending

    return answer


async def test_an_orchestration_terminates_another_and_its_children_once(
    backend: Backend,
) -> None:
    answers = {"victim": _victim, "waiter": _waiter, "terminator": _terminator("v1")}
    async with _serving(backend, answers) as (client, worker):
        await client.schedule_new_orchestration("victim", instance_id="v1")

        async def child_status() -> OrchestrationStatus | None:
            state = await client.get_orchestration_state("v1-child")
            return None if state is None else state.runtime_status

        await eventually_async(
            child_status, until=lambda s: s is OrchestrationStatus.RUNNING, timeout=WAIT
        )
        await client.schedule_new_orchestration("terminator", instance_id="t1")

        victim = await client.wait_for_orchestration_completion("v1", timeout=WAIT)
        assert victim.runtime_status is OrchestrationStatus.TERMINATED
        assert victim.get_output() == "enough"
        child = await client.wait_for_orchestration_completion("v1-child", timeout=WAIT)
        assert child.runtime_status is OrchestrationStatus.TERMINATED  # recurse=True

        await client.raise_orchestration_event("t1", "go")
        terminator = await client.wait_for_orchestration_completion("t1", timeout=WAIT)
        assert terminator.runtime_status is OrchestrationStatus.COMPLETED
        assert terminator.get_output() == "done"

        # Recorded once (the second sending of action 1 was dropped), never shown to the SDK.
        sent = [e for e in await client.get_orchestration_history("t1") if isinstance(e, EventSent)]
        assert [(e.event_id, e.instance_id, e.name) for e in sent] == [
            (1, "v1", TERMINATION_REQUEST)
        ]
        assert TerminationRequest.decode(sent[0].input) == TerminationRequest(
            reason=json.dumps("enough"), recurse=True
        )
        second = worker.requests["t1"][-1]
        assert [e.WhichOneof("eventType") for e in second.pastEvents] == [
            "orchestratorStarted",
            "executionStarted",
            "orchestratorCompleted",
        ]
        terminated = [
            e
            for e in await client.get_orchestration_history("v1")
            if isinstance(e, ExecutionTerminated)
        ]
        assert len(terminated) == 1 and terminated[0].recurse


async def test_terminating_an_entity_fails_the_sender_naming_the_target(backend: Backend) -> None:
    answers: dict[str, Answer] = {
        "bad": lambda _: [_terminate(1, "@counter@a", '"x"', recurse=False)]
    }
    async with _serving(backend, answers) as (client, _):
        await client.schedule_new_orchestration("bad", instance_id="b1")
        state = await client.wait_for_orchestration_completion("b1", timeout=WAIT)
        assert state.runtime_status is OrchestrationStatus.FAILED
        assert state.failure_details is not None
        assert "'@counter@a' is an entity" in state.failure_details.message
