"""``ClientRpcs``: the client-side requests of ``TaskHubSidecarService`` carried out on our client.

Each method takes a request message and returns the response message, raising our own
errors (``errors.status_of`` maps them to status codes); gRPC itself is not touched here.
One ``AsyncTaskHubClient`` with a ``PassThroughConverter`` does the work: the SDK sends
payloads already serialized. Behaviour the SDKs rely on:

* ``GetInstance`` of an unknown id answers ``exists=false`` (the SDK returns None); so do the
  Wait requests, at once. ``GetInstance`` and ``QueryInstances`` read the backend's state, so
  their answers carry ``executionId`` and ``scheduledStartTimestamp``; a Wait's answer does not. Otherwise they wait until the condition holds or ``deadline``
  (seconds left, None: no deadline) is about to pass, then raise ``TimeoutError``.
* ``StartInstance`` without a reuse policy refuses an id whose instance is Pending, Running or
  Suspended and replaces an ended one; with one, see ``convert_state.reuse_policy_from_pb``.
* ``ListInstanceIds`` lists ended instances only (as the protocol defines it), filtered by
  completion time ``[from, to)``; its ``lastInstanceKey`` names the page's last instance
  and carries the backend's opaque query token, and is absent on the last page.
* A purge by filter that names no status purges every *ended* status; its time budget is
  the request's timeout, cut short to answer ``isComplete=false`` before the deadline.
* ``DeleteTaskHub`` and ``CreateTaskHub(recreateIfExists)`` wipe the hub under every engine
  running on it, and the sidecar has no authentication (any local process can call it):
  they are refused (``PERMISSION_DENIED``) unless ``allow_hub_management`` was given (the
  ``serve --allow-hub-management`` flag). ``CreateTaskHub`` without it only creates what is
  missing, so it is always served.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from durabletask.internal import orchestrator_service_pb2 as pb

from durable_azstorage.client.async_client import AsyncTaskHubClient
from durable_azstorage.client.instance_ids import list_instance_ids
from durable_azstorage.client.state import OrchestrationState
from durable_azstorage.model.errors import InvalidOperationError
from durable_azstorage.model.query import PurgeInstancesResult
from durable_azstorage.model.state import InstanceState
from durable_azstorage.model.status import OrchestrationStatus
from durable_azstorage.sidecar.convert_history import history_event_to_pb
from durable_azstorage.sidecar.convert_state import (
    datetime_from_pb,
    page_size,
    purge_filter_from_pb,
    query_from_pb,
    reuse_policy_from_pb,
    state_to_pb,
    statuses_from_pb,
)
from durable_azstorage.sidecar.convert_trace import trace_from_pb
from durable_azstorage.sidecar.errors import (
    HubManagementDisabledError,
    InvalidRequestError,
    field_named,
)

HISTORY_CHUNK_EVENTS = 100
HISTORY_CHUNK_BYTES = 1 << 20
"""A history chunk closes at this many events or bytes (gRPC's default limit is 4 MiB)."""
DEADLINE_MARGIN = 0.2
"""Seconds before a call's deadline at which a long request answers by itself."""
NO_DEADLINE_WAIT = 24 * 3600.0
"""How long a Wait without a deadline waits (the caller's disconnect ends it sooner)."""
_ENDED = tuple(s for s in OrchestrationStatus if s.is_terminal)


class ClientRpcs:
    """The client-side requests, on one ``AsyncTaskHubClient`` (see the module docstring)."""

    def __init__(self, client: AsyncTaskHubClient, *, allow_hub_management: bool) -> None:
        self._client = client
        self._allow_hub_management = allow_hub_management

    # --- starting and reading instances ------------------------------------------------------
    async def start(self, request: pb.CreateInstanceRequest) -> pb.CreateInstanceResponse:
        if not request.name:
            raise InvalidRequestError("name", "the orchestrator name is required")
        start_at = None
        if request.HasField("scheduledStartTimestamp"):
            start_at = datetime_from_pb(request.scheduledStartTimestamp)
        policy = None
        if request.HasField("orchestrationIdReusePolicy"):
            with field_named("orchestrationIdReusePolicy"):
                policy = reuse_policy_from_pb(request.orchestrationIdReusePolicy)
        with field_named("parentTraceContext"):
            trace_context = trace_from_pb(request)
        instance_id = await self._client.schedule_new_orchestration(
            request.name,
            input=_text(request, "input"),
            instance_id=request.instanceId or None,
            start_at=start_at,
            reuse_id_policy=policy,
            version=_text(request, "version"),
            tags=dict(request.tags) or None,
            trace_context=trace_context,
        )
        return pb.CreateInstanceResponse(instanceId=instance_id)

    async def get(self, request: pb.GetInstanceRequest) -> pb.GetInstanceResponse:
        _require_id(request.instanceId)
        payloads = request.getInputsAndOutputs
        # The backend's view also has the execution id and the scheduled start time.
        state = await self._client.backend.get_instance(request.instanceId, fetch_payloads=payloads)
        return _instance_response(state, payloads)

    async def wait(
        self, request: pb.GetInstanceRequest, *, completion: bool, deadline: float | None
    ) -> pb.GetInstanceResponse:
        """Wait for the instance to start (or, with ``completion``, to end)."""
        _require_id(request.instanceId)
        if (
            await self._client.get_orchestration_state(request.instanceId, fetch_payloads=False)
            is None
        ):
            return pb.GetInstanceResponse(exists=False)
        timeout = NO_DEADLINE_WAIT if deadline is None else max(0.0, deadline - DEADLINE_MARGIN)
        wait = (
            self._client.wait_for_orchestration_completion
            if completion
            else self._client.wait_for_orchestration_start
        )
        payloads = request.getInputsAndOutputs
        state = await wait(request.instanceId, fetch_payloads=payloads, timeout=timeout)
        return _instance_response(state, payloads)

    # --- controlling instances ---------------------------------------------------------------
    async def raise_event(self, request: pb.RaiseEventRequest) -> pb.RaiseEventResponse:
        _require_id(request.instanceId)
        if not request.name:
            raise InvalidRequestError("name", "the event name is required")
        await self._client.raise_orchestration_event(
            request.instanceId, request.name, data=_text(request, "input")
        )
        return pb.RaiseEventResponse()

    async def terminate(self, request: pb.TerminateRequest) -> pb.TerminateResponse:
        _require_id(request.instanceId)
        await self._client.terminate_orchestration(
            request.instanceId, output=_text(request, "output"), recursive=request.recursive
        )
        return pb.TerminateResponse()

    async def suspend(self, request: pb.SuspendRequest) -> pb.SuspendResponse:
        _require_id(request.instanceId)
        await self._client.suspend_orchestration(
            request.instanceId, reason=_text(request, "reason")
        )
        return pb.SuspendResponse()

    async def resume(self, request: pb.ResumeRequest) -> pb.ResumeResponse:
        _require_id(request.instanceId)
        await self._client.resume_orchestration(request.instanceId, reason=_text(request, "reason"))
        return pb.ResumeResponse()

    async def restart(self, request: pb.RestartInstanceRequest) -> pb.RestartInstanceResponse:
        _require_id(request.instanceId)
        new_id = await self._client.restart_orchestration(
            request.instanceId, restart_with_new_instance_id=request.restartWithNewInstanceId
        )
        return pb.RestartInstanceResponse(instanceId=new_id)

    async def rewind(self, request: pb.RewindInstanceRequest) -> pb.RewindInstanceResponse:
        _require_id(request.instanceId)
        await self._client.rewind_orchestration(request.instanceId, reason=_text(request, "reason"))
        return pb.RewindInstanceResponse()

    # --- queries and history -----------------------------------------------------------------
    async def query(self, request: pb.QueryInstancesRequest) -> pb.QueryInstancesResponse:
        with field_named("query.runtimeStatus"):
            query = query_from_pb(request.query)
        if query is None:
            return pb.QueryInstancesResponse()
        with field_named("query.continuationToken"):
            page = await self._client.backend.query_instances(query)
        response = pb.QueryInstancesResponse(
            orchestrationState=[
                state_to_pb(s, include_payloads=query.fetch_inputs_and_outputs) for s in page.items
            ]
        )
        if page.continuation_token is not None:
            response.continuationToken.value = page.continuation_token
        return response

    async def list_ids(self, request: pb.ListInstanceIdsRequest) -> pb.ListInstanceIdsResponse:
        """One page of ended instances' ids; ``lastInstanceKey`` is absent on the last page
        (the SDK loops until it is) and otherwise names the page's last instance."""
        statuses = _ENDED
        if request.runtimeStatus:
            with field_named("runtimeStatus"):
                named = statuses_from_pb(request.runtimeStatus)
            statuses = tuple(s for s in named if s in _ENDED)
            if not statuses:
                return pb.ListInstanceIdsResponse()
        with field_named("lastInstanceKey"):
            token = (
                _token_of_key(request.lastInstanceKey.value)
                if request.lastInstanceKey.value
                else None
            )
            page = await list_instance_ids(
                self._client.backend,
                runtime_status=statuses,
                completed_time_from=_optional_time(request, "completedTimeFrom"),
                completed_time_to=_optional_time(request, "completedTimeTo"),
                page_size=page_size(request.pageSize or 100),
                continuation_token=token,
                completed_to_inclusive=False,
            )
        response = pb.ListInstanceIdsResponse(instanceIds=page.items)
        if page.continuation_token is not None:
            last = page.items[-1] if page.items else ""
            response.lastInstanceKey.value = json.dumps(
                {"last": last, "token": page.continuation_token}, ensure_ascii=False
            )
        return response

    async def history(self, request: pb.StreamInstanceHistoryRequest) -> list[pb.HistoryChunk]:
        """The history of the current execution, or of the one ``executionId`` names (also
        an earlier one that is kept), in chunks (at most 100 events or ~1 MiB each)."""
        _require_id(request.instanceId)
        execution_id = request.executionId.value if request.HasField("executionId") else ""
        try:
            events = await self._client.get_orchestration_history(
                request.instanceId, execution_id=execution_id or None
            )
        except InvalidOperationError as exc:  # that execution is not kept
            raise InvalidRequestError("executionId", str(exc)) from None
        return _chunks([history_event_to_pb(e) for e in events])

    # --- purge and task hub ------------------------------------------------------------------
    async def purge(
        self, request: pb.PurgeInstancesRequest, *, deadline: float | None
    ) -> PurgeInstancesResult:
        which = request.WhichOneof("request")
        if which == "instanceId":
            return await self._client.purge_orchestration(
                request.instanceId, recursive=request.recursive
            )
        if which == "instanceBatch":
            deleted = 0
            for instance_id in request.instanceBatch.instanceIds:
                result = await self._client.purge_orchestration(
                    instance_id, recursive=request.recursive
                )
                deleted += result.deleted_instance_count
            return PurgeInstancesResult(deleted_instance_count=deleted)
        if which == "purgeInstanceFilter":
            with field_named("purgeInstanceFilter.runtimeStatus"):
                spec = purge_filter_from_pb(request.purgeInstanceFilter)
            if not spec.runtime_status:  # only CANCELED named: nothing can match
                return PurgeInstancesResult(deleted_instance_count=0)
            timeout = spec.timeout
            if deadline is not None:
                budget = max(0.0, deadline - DEADLINE_MARGIN)
                timeout = budget if timeout is None else min(timeout, budget)
            return await self._client.purge_orchestrations_by(
                created_time_from=spec.created_from,
                created_time_to=spec.created_to,
                runtime_status=spec.runtime_status,
                timeout=timeout,
            )
        raise InvalidRequestError(
            "request", "name an instanceId, an instanceBatch or a purgeInstanceFilter"
        )

    async def create_task_hub(self, request: pb.CreateTaskHubRequest) -> pb.CreateTaskHubResponse:
        if request.recreateIfExists:
            self._require_hub_management("CreateTaskHub(recreateIfExists=true)")
            await self._client.delete_task_hub()
        await self._client.create_task_hub()
        return pb.CreateTaskHubResponse()

    async def delete_task_hub(self, request: pb.DeleteTaskHubRequest) -> pb.DeleteTaskHubResponse:
        self._require_hub_management("DeleteTaskHub")
        await self._client.delete_task_hub()
        return pb.DeleteTaskHubResponse()

    def _require_hub_management(self, rpc: str) -> None:
        if not self._allow_hub_management:
            raise HubManagementDisabledError(rpc)


def _text(message: Any, field: str) -> str | None:
    """A ``StringValue`` field's text, or None when it is not set."""
    return str(getattr(message, field).value) if message.HasField(field) else None


def _require_id(instance_id: str) -> None:
    if not instance_id:
        raise InvalidRequestError("instanceId", "an instance id is required")


def _optional_time(message: Any, field: str) -> datetime | None:
    return datetime_from_pb(getattr(message, field)) if message.HasField(field) else None


def _token_of_key(key: str) -> str:
    """The backend token inside a ``lastInstanceKey`` this service returned."""
    try:
        doc = json.loads(key)
    except ValueError:
        doc = None
    token = doc.get("token") if isinstance(doc, dict) else None
    if not isinstance(token, str):
        raise ValueError(f"{key!r} is not a key returned by ListInstanceIds")
    return token


def _instance_response(
    state: OrchestrationState | InstanceState | None, payloads: bool
) -> pb.GetInstanceResponse:
    if state is None:
        return pb.GetInstanceResponse(exists=False)
    return pb.GetInstanceResponse(
        exists=True, orchestrationState=state_to_pb(state, include_payloads=payloads)
    )


def _chunks(events: list[pb.HistoryEvent]) -> list[pb.HistoryChunk]:
    chunks: list[pb.HistoryChunk] = []
    current: list[pb.HistoryEvent] = []
    size = 0
    for event in events:
        event_size = event.ByteSize()
        full = len(current) >= HISTORY_CHUNK_EVENTS or size + event_size > HISTORY_CHUNK_BYTES
        if current and full:
            chunks.append(pb.HistoryChunk(events=current))
            current, size = [], 0
        current.append(event)
        size += event_size
    if current:
        chunks.append(pb.HistoryChunk(events=current))
    return chunks
