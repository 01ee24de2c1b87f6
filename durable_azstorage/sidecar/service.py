"""``SidecarService``: the ``TaskHubSidecarService`` servicer the portable SDKs talk to.

Only the gRPC plumbing lives here: client requests go to ``ClientRpcs`` (which does the
work on our ``AsyncTaskHubClient``), work-item requests (GetWorkItems, Complete*, Abandon*)
to the ``WorkItemService``. Errors become status codes in one place (``errors.rpc_errors``):
unknown instance ``NOT_FOUND``, id in use ``ALREADY_EXISTS``, operation the instance's status
does not allow ``FAILED_PRECONDITION``, bad request field ``INVALID_ARGUMENT`` (naming it),
a Wait past its deadline ``DEADLINE_EXCEEDED``. Entity RPCs go to ``EntityRpcs``; entity
work items are served by the ``WorkItemService`` like orchestrations.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable
from typing import Any, TypeAlias, TypeVar

import grpc.aio
from durabletask.internal import orchestrator_service_pb2 as pb
from durabletask.internal import orchestrator_service_pb2_grpc as pb_grpc
from google.protobuf import empty_pb2, wrappers_pb2  # type: ignore[import-untyped]

from durable_azstorage.client.async_client import AsyncTaskHubClient
from durable_azstorage.sidecar.client_rpcs import ClientRpcs
from durable_azstorage.sidecar.entity_rpcs import EntityRpcs
from durable_azstorage.sidecar.errors import UnsupportedError, rpc_errors
from durable_azstorage.sidecar.work_items import WorkItemService

T = TypeVar("T")
Context: TypeAlias = grpc.aio.ServicerContext


class SidecarService(pb_grpc.TaskHubSidecarServiceServicer):  # type: ignore[misc]
    """Serves one task hub: client RPCs through ``client``, work items through ``work_items``."""

    def __init__(
        self, client: AsyncTaskHubClient, work_items: WorkItemService, *, allow_hub_management: bool
    ) -> None:
        self._rpcs = ClientRpcs(client, allow_hub_management=allow_hub_management)
        self._entities = EntityRpcs(client)
        self._work = work_items

    async def Hello(self, request: empty_pb2.Empty, context: Context) -> empty_pb2.Empty:
        return empty_pb2.Empty()

    # --- client requests ---------------------------------------------------------------------
    async def StartInstance(
        self, request: pb.CreateInstanceRequest, context: Context
    ) -> pb.CreateInstanceResponse:
        return await _answer(context, "StartInstance", self._rpcs.start(request))

    async def GetInstance(
        self, request: pb.GetInstanceRequest, context: Context
    ) -> pb.GetInstanceResponse:
        return await _answer(context, "GetInstance", self._rpcs.get(request))

    async def WaitForInstanceStart(
        self, request: pb.GetInstanceRequest, context: Context
    ) -> pb.GetInstanceResponse:
        wait = self._rpcs.wait(request, completion=False, deadline=context.time_remaining())
        return await _answer(context, "WaitForInstanceStart", wait)

    async def WaitForInstanceCompletion(
        self, request: pb.GetInstanceRequest, context: Context
    ) -> pb.GetInstanceResponse:
        wait = self._rpcs.wait(request, completion=True, deadline=context.time_remaining())
        return await _answer(context, "WaitForInstanceCompletion", wait)

    async def RaiseEvent(
        self, request: pb.RaiseEventRequest, context: Context
    ) -> pb.RaiseEventResponse:
        return await _answer(context, "RaiseEvent", self._rpcs.raise_event(request))

    async def TerminateInstance(
        self, request: pb.TerminateRequest, context: Context
    ) -> pb.TerminateResponse:
        return await _answer(context, "TerminateInstance", self._rpcs.terminate(request))

    async def SuspendInstance(
        self, request: pb.SuspendRequest, context: Context
    ) -> pb.SuspendResponse:
        return await _answer(context, "SuspendInstance", self._rpcs.suspend(request))

    async def ResumeInstance(
        self, request: pb.ResumeRequest, context: Context
    ) -> pb.ResumeResponse:
        return await _answer(context, "ResumeInstance", self._rpcs.resume(request))

    async def RestartInstance(
        self, request: pb.RestartInstanceRequest, context: Context
    ) -> pb.RestartInstanceResponse:
        return await _answer(context, "RestartInstance", self._rpcs.restart(request))

    async def RewindInstance(
        self, request: pb.RewindInstanceRequest, context: Context
    ) -> pb.RewindInstanceResponse:
        return await _answer(context, "RewindInstance", self._rpcs.rewind(request))

    async def QueryInstances(
        self, request: pb.QueryInstancesRequest, context: Context
    ) -> pb.QueryInstancesResponse:
        return await _answer(context, "QueryInstances", self._rpcs.query(request))

    async def ListInstanceIds(
        self, request: pb.ListInstanceIdsRequest, context: Context
    ) -> pb.ListInstanceIdsResponse:
        return await _answer(context, "ListInstanceIds", self._rpcs.list_ids(request))

    async def StreamInstanceHistory(
        self, request: pb.StreamInstanceHistoryRequest, context: Context
    ) -> AsyncIterator[pb.HistoryChunk]:
        for chunk in await _answer(context, "StreamInstanceHistory", self._rpcs.history(request)):
            yield chunk

    async def PurgeInstances(
        self, request: pb.PurgeInstancesRequest, context: Context
    ) -> pb.PurgeInstancesResponse:
        purge = self._rpcs.purge(request, deadline=context.time_remaining())
        result = await _answer(context, "PurgeInstances", purge)
        return pb.PurgeInstancesResponse(
            deletedInstanceCount=result.deleted_instance_count,
            isComplete=wrappers_pb2.BoolValue(value=result.is_complete),
        )

    async def CreateTaskHub(
        self, request: pb.CreateTaskHubRequest, context: Context
    ) -> pb.CreateTaskHubResponse:
        return await _answer(context, "CreateTaskHub", self._rpcs.create_task_hub(request))

    async def DeleteTaskHub(
        self, request: pb.DeleteTaskHubRequest, context: Context
    ) -> pb.DeleteTaskHubResponse:
        return await _answer(context, "DeleteTaskHub", self._rpcs.delete_task_hub(request))

    # --- work items (WorkItemService) --------------------------------------------------------
    async def GetWorkItems(
        self, request: pb.GetWorkItemsRequest, context: Context
    ) -> AsyncIterator[pb.WorkItem]:
        async for item in self._work.GetWorkItems(request, context):
            yield item

    async def CompleteOrchestratorTask(
        self, request: pb.OrchestratorResponse, context: Context
    ) -> pb.CompleteTaskResponse:
        return await self._work.CompleteOrchestratorTask(request, context)

    async def CompleteActivityTask(
        self, request: pb.ActivityResponse, context: Context
    ) -> pb.CompleteTaskResponse:
        return await self._work.CompleteActivityTask(request, context)

    async def AbandonTaskOrchestratorWorkItem(
        self, request: pb.AbandonOrchestrationTaskRequest, context: Context
    ) -> pb.AbandonOrchestrationTaskResponse:
        return await self._work.AbandonTaskOrchestratorWorkItem(request, context)

    async def AbandonTaskActivityWorkItem(
        self, request: pb.AbandonActivityTaskRequest, context: Context
    ) -> pb.AbandonActivityTaskResponse:
        return await self._work.AbandonTaskActivityWorkItem(request, context)

    # --- entities ----------------------------------------------------------------------------
    async def SignalEntity(
        self, request: pb.SignalEntityRequest, context: Context
    ) -> pb.SignalEntityResponse:
        return await _answer(context, "SignalEntity", self._entities.signal(request))

    async def GetEntity(
        self, request: pb.GetEntityRequest, context: Context
    ) -> pb.GetEntityResponse:
        return await _answer(context, "GetEntity", self._entities.get(request))

    async def QueryEntities(
        self, request: pb.QueryEntitiesRequest, context: Context
    ) -> pb.QueryEntitiesResponse:
        return await _answer(context, "QueryEntities", self._entities.query(request))

    async def CleanEntityStorage(
        self, request: pb.CleanEntityStorageRequest, context: Context
    ) -> pb.CleanEntityStorageResponse:
        return await _answer(context, "CleanEntityStorage", self._entities.clean(request))

    async def CompleteEntityTask(
        self, request: pb.EntityBatchResult, context: Context
    ) -> pb.CompleteTaskResponse:
        return await self._work.CompleteEntityTask(request, context)

    async def AbandonTaskEntityWorkItem(
        self, request: pb.AbandonEntityTaskRequest, context: Context
    ) -> pb.AbandonEntityTaskResponse:
        return await self._work.AbandonTaskEntityWorkItem(request, context)

    # --- not supported -----------------------------------------------------------------------

    async def SkipGracefulOrchestrationTerminations(self, request: Any, context: Context) -> Any:
        await _refuse(
            context,
            "SkipGracefulOrchestrationTerminations is not supported by durable-azstorage serve; "
            "use TerminateInstance",
        )


async def _answer(context: Context, rpc: str, work: Awaitable[T]) -> T:
    """The result of ``work``, or the RPC aborted with the status code of its error."""
    async with rpc_errors(context, rpc):
        return await work
    raise AssertionError("unreachable: rpc_errors aborts the call")


async def _refuse(context: Context, message: str) -> None:
    async with rpc_errors(context, "unsupported"):
        raise UnsupportedError(message)
