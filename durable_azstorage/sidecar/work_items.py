"""The worker side of the sidecar: our engine runs, portable-SDK workers execute the code.

``WorkItemService`` runs the same ``WorkerEngine`` as ``TaskHubWorker`` (backend start with
partition leases, dispatchers, lock renewal, poison handling, graceful stop) with remote
executors: an orchestration episode or activity request becomes a ``pb.WorkItem`` on one of
the connected ``GetWorkItems`` streams, and the SDK's ``CompleteOrchestratorTask`` /
``CompleteActivityTask`` answer it. SDK actions therefore go through ``run_episode`` and
become the same ``OrchestrationCommit`` as our own code's: one path, no second engine.

Rules the SDKs can rely on:

* Work is locked in the backend only while an SDK worker with room is connected.
* A work item held by a stream that disconnects, or that the SDK abandons, is abandoned in
  the backend and delivered again (never lost); its lock is renewed while the SDK works.
* A completion or abandon naming an unknown token is refused with ``NOT_FOUND`` (a token of
  the other kind: ``FAILED_PRECONDITION``), and the message names the token.
* Idle streams get a ``healthPing`` every ``health_ping_interval`` seconds.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import grpc
import grpc.aio
from durabletask.internal import orchestrator_service_pb2 as pb

from durable_azstorage.backend.protocol import Backend, SettingsBacked
from durable_azstorage.sidecar.remote_entities import RemoteEntityExecutor
from durable_azstorage.sidecar.remote_executor import (
    RemoteActivityExecutor,
    RemoteOrchestrationExecutor,
)
from durable_azstorage.sidecar.streams import (
    CompletionError,
    Kind,
    Slots,
    WorkerStreams,
)
from durable_azstorage.worker.engine import WorkerEngine, engine_limits
from durable_azstorage.worker.worker import backend_clock, renew_interval_for

_log = logging.getLogger("durable_azstorage.sidecar")


class WorkItemService:
    """Serves ``GetWorkItems`` and the completion RPCs from ``backend``'s work items."""

    def __init__(
        self,
        backend: Backend,
        *,
        logger: logging.Logger | None = None,
        max_concurrent_orchestrations: int = 100,
        max_concurrent_activities: int = 100,
        max_dequeue_count: int | None = None,
        lock_renew_interval: timedelta | None = None,
        health_ping_interval: float = 30.0,
        dispatch_wait: float = 5.0,
        orchestration_timeout: float | None = 300.0,
        activity_timeout: float | None = None,
        poll_timeout: float = 1.0,
    ) -> None:
        """Tuning: ``max_concurrent_*`` cap the items in flight over all connected workers (a
        worker's own ``GetWorkItemsRequest`` limits apply below that); ``dispatch_wait`` is how
        long a locked item waits for a worker with room before it is abandoned;
        ``orchestration_timeout`` bounds one SDK replay (then the episode is abandoned and
        retried); activities have no bound by default (their locks are renewed)."""
        max_dequeue_count = engine_limits(
            max_concurrent_orchestrations=max_concurrent_orchestrations,
            max_concurrent_activities=max_concurrent_activities,
            max_dequeue_count=max_dequeue_count,
            settings=backend.settings if isinstance(backend, SettingsBacked) else None,
        )
        self._backend = backend
        self._log = logger or _log
        self._ceilings: dict[Kind, int] = {
            "orchestration": max_concurrent_orchestrations,
            "activity": max_concurrent_activities,
        }
        self._max_dequeue_count = max_dequeue_count
        self._renew_interval = renew_interval_for(backend, lock_renew_interval)
        self._ping_interval = health_ping_interval
        self._dispatch_wait = dispatch_wait
        self._timeouts = (orchestration_timeout, activity_timeout)
        self._poll_timeout = poll_timeout
        self._streams: WorkerStreams | None = None
        self._engine: WorkerEngine | None = None

    @property
    def connected_workers(self) -> int:
        """SDK worker streams connected now."""
        return 0 if self._streams is None else self._streams.connected

    # --- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        """Start the backend (takes partition leases) and the dispatch loops."""
        if self._engine is not None:
            raise RuntimeError("this WorkItemService is already started")
        streams = WorkerStreams(
            default_limits=dict(self._ceilings),
            ceilings=self._ceilings,
            dispatch_wait=self._dispatch_wait,
            logger=self._log,
        )
        clock = backend_clock(self._backend)
        orchestration_timeout, activity_timeout = self._timeouts
        engine = WorkerEngine(
            self._backend,
            orchestrations=RemoteOrchestrationExecutor(
                streams, asyncio.get_running_loop(), timeout=orchestration_timeout
            ),
            activities=RemoteActivityExecutor(streams, timeout=activity_timeout, clock=clock),
            entities=RemoteEntityExecutor(
                streams, asyncio.get_running_loop(), timeout=orchestration_timeout
            ),
            max_concurrent_orchestrations=self._ceilings["orchestration"],
            max_concurrent_activities=self._ceilings["activity"],
            max_dequeue_count=self._max_dequeue_count,
            renew_interval=self._renew_interval,
            # Episode threads mostly wait for an SDK worker: one per orchestration in flight.
            episode_threads=self._ceilings["orchestration"],
            orchestration_admission=Slots(streams, "orchestration"),
            activity_admission=Slots(streams, "activity"),
            poll_timeout=self._poll_timeout,
            clock=clock,
            logger=self._log,
        )
        await engine.start()
        self._streams, self._engine = streams, engine

    async def stop(self, grace: float = 30.0) -> None:
        """Stop fetching; give SDK workers up to ``grace`` seconds to finish what they hold;
        abandon the rest (delivered again elsewhere); stop the backend (releases partitions);
        end the ``GetWorkItems`` streams. Safe to call when not (fully) started."""
        streams, engine = self._streams, self._engine
        if engine is None or streams is None:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(grace, 0.0)
        engine.request_stop()
        if not await streams.wait_idle(max(grace, 0.0)):
            count = streams.abandon_all("the sidecar is stopping")
            self._log.warning(
                "sidecar stopping: abandoned %d work item(s) still held by SDK workers", count
            )
        streams.close()
        try:
            # Lets the processors commit what the SDKs answered and abandon the rest.
            await engine.stop(max(deadline - loop.time(), 1.0))
        finally:
            self._engine = None
            self._streams = None

    # --- gRPC methods ------------------------------------------------------------------------
    async def GetWorkItems(
        self, request: pb.GetWorkItemsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[pb.WorkItem]:
        """One connected SDK worker: stream work items to it until it (or the sidecar) stops."""
        streams = self._streams
        if streams is None or streams.closed:
            await context.abort(
                grpc.StatusCode.UNAVAILABLE, "the sidecar is not accepting SDK workers (stopping)"
            )
            return
        stream = streams.connect(request)
        self._log.info(
            "SDK worker stream %d connected (up to %d orchestration and %d activity work items)",
            stream.number,
            stream.limits["orchestration"],
            stream.limits["activity"],
        )
        try:
            async for item in stream.items(self._ping_interval):
                yield item
        finally:
            streams.disconnect(stream)
            self._log.info("SDK worker stream %d disconnected", stream.number)

    async def CompleteOrchestratorTask(
        self, request: pb.OrchestratorResponse, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.CompleteTaskResponse:
        if request.isPartial or request.HasField("chunkIndex"):
            await context.abort(
                grpc.StatusCode.UNIMPLEMENTED,
                f"chunked orchestrator responses are not supported (completion token {request.completionToken!r})",
            )
        await self._resolve(
            context,
            lambda s: s.complete(
                "orchestration", request.completionToken, request, instance_id=request.instanceId
            ),
        )
        return pb.CompleteTaskResponse()

    async def CompleteActivityTask(
        self, request: pb.ActivityResponse, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.CompleteTaskResponse:
        await self._resolve(
            context,
            lambda s: s.complete(
                "activity", request.completionToken, request, instance_id=request.instanceId
            ),
        )
        return pb.CompleteTaskResponse()

    async def CompleteEntityTask(
        self, request: pb.EntityBatchResult, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.CompleteTaskResponse:
        await self._resolve(
            context,
            lambda s: s.complete(
                "orchestration", request.completionToken, request, instance_id=None
            ),
        )
        return pb.CompleteTaskResponse()

    async def AbandonTaskEntityWorkItem(
        self, request: pb.AbandonEntityTaskRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.AbandonEntityTaskResponse:
        await self._resolve(context, lambda s: s.abandon("orchestration", request.completionToken))
        return pb.AbandonEntityTaskResponse()

    async def AbandonTaskOrchestratorWorkItem(
        self,
        request: pb.AbandonOrchestrationTaskRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> pb.AbandonOrchestrationTaskResponse:
        await self._resolve(context, lambda s: s.abandon("orchestration", request.completionToken))
        return pb.AbandonOrchestrationTaskResponse()

    async def AbandonTaskActivityWorkItem(
        self, request: pb.AbandonActivityTaskRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.AbandonActivityTaskResponse:
        await self._resolve(context, lambda s: s.abandon("activity", request.completionToken))
        return pb.AbandonActivityTaskResponse()

    async def _resolve(self, context: grpc.aio.ServicerContext[Any, Any], action: Any) -> None:
        streams = self._streams
        if streams is None:
            await context.abort(
                grpc.StatusCode.NOT_FOUND,
                "no work item is pending: the sidecar's work-item service is not running",
            )
            return
        try:
            action(streams)
        except CompletionError as exc:
            await context.abort(getattr(grpc.StatusCode, exc.code), str(exc))
