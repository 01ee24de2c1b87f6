"""Executors that run the code in a connected portable-SDK worker instead of in this process.

``RemoteOrchestrationExecutor.execute`` is the orchestration seam of ``replay.episode``: called
on an episode thread, it sends ``pastEvents``/``newEvents`` (full history inline) to an SDK
worker and blocks that thread until the SDK's ``OrchestratorResponse`` arrives, which becomes
an ``ExecutionResult`` exactly as our own executor's would. ``RemoteActivityExecutor`` does the
same for activity requests, on the event loop. The engine around them (locks, renewal,
commits, poison handling) is the one ``TaskHubWorker`` uses.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import datetime, timezone

from durabletask.internal import orchestrator_service_pb2 as pb

from durable_azstorage.backend.protocol import ActivityWorkItem
from durable_azstorage.model.history import (
    ExecutionStarted,
    HistoryEvent,
    OrchestratorStarted,
    TaskCompleted,
    TaskFailed,
)
from durable_azstorage.model.termination import is_termination_request
from durable_azstorage.replay.executor import ExecutionAbandoned, ExecutionResult
from durable_azstorage.sidecar.convert_actions import execution_result_from_pb
from durable_azstorage.sidecar.convert_failure import failure_from_pb
from durable_azstorage.sidecar.convert_history import history_event_to_pb
from durable_azstorage.sidecar.convert_trace import orchestration_trace_to_pb, trace_to_pb
from durable_azstorage.sidecar.streams import WorkerStreams, answer_within


class RemoteOrchestrationExecutor:
    """An ``OrchestrationExecutor`` whose code runs in an SDK worker connected to ``streams``."""

    def __init__(
        self, streams: WorkerStreams, loop: asyncio.AbstractEventLoop, *, timeout: float | None
    ) -> None:
        self._streams = streams
        self._loop = loop
        self._timeout = timeout

    def execute(
        self,
        instance_id: str,
        past_events: Sequence[HistoryEvent],
        new_events: Sequence[HistoryEvent],
    ) -> ExecutionResult:
        if not new_events:
            # A replay only to learn the state (re-armed timers): the SDK wants at least one
            # new event, and an OrchestratorStarted at the last episode's time changes nothing.
            new_events = (OrchestratorStarted(timestamp=_last_episode_time(past_events)),)
        request = pb.OrchestratorRequest(
            instanceId=instance_id,
            pastEvents=[
                history_event_to_pb(e) for e in past_events if not is_termination_request(e)
            ],
            newEvents=[history_event_to_pb(e) for e in new_events],
        )
        started = _started(past_events, new_events)
        if started is not None and started.instance.execution_id is not None:
            request.executionId.value = started.instance.execution_id
        orchestration_trace_to_pb(request, started)
        name = started.name if started is not None else "?"
        what = f"orchestration {name!r} ({instance_id})"
        work = asyncio.run_coroutine_threadsafe(
            self._streams.dispatch(
                "orchestration",
                pb.WorkItem(orchestratorRequest=request),
                instance_id=instance_id,
                what=what,
                name=name,
                version=started.version if started is not None else None,
            ),
            self._loop,
        )
        response = answer_within(work, self._timeout, what)
        return execution_result_from_pb(response, past_events=past_events, new_events=new_events)


class RemoteActivityExecutor:
    """An ``ActivityExecutor`` whose activities run in an SDK worker connected to ``streams``."""

    def __init__(
        self,
        streams: WorkerStreams,
        *,
        timeout: float | None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self._streams = streams
        self._timeout = timeout
        self._clock = clock or (lambda: datetime.now(timezone.utc))

    async def __call__(self, item: ActivityWorkItem) -> TaskCompleted | TaskFailed:
        request = pb.ActivityRequest(name=item.name, taskId=item.task_id)
        request.orchestrationInstance.instanceId = item.instance.instance_id
        if item.instance.execution_id is not None:
            request.orchestrationInstance.executionId.value = item.instance.execution_id
        if item.input is not None:
            request.input.value = item.input
        if item.version is not None:
            request.version.value = item.version
        if item.tags:
            request.tags.update(item.tags)
        trace_to_pb(request.parentTraceContext, item.trace_context)
        what = f"activity {item.name!r} (task {item.task_id} of {item.instance.instance_id})"
        dispatch = self._streams.dispatch(
            "activity",
            pb.WorkItem(activityRequest=request),
            instance_id=item.instance.instance_id,
            what=what,
            name=item.name,
            version=item.version,
        )
        try:
            response = await asyncio.wait_for(dispatch, self._timeout)
        except asyncio.TimeoutError:
            raise ExecutionAbandoned(
                f"{what}: no answer from the SDK worker within {self._timeout}s"
            ) from None
        now = self._clock()
        if response.HasField("failureDetails"):
            return TaskFailed(
                timestamp=now,
                task_scheduled_id=item.task_id,
                failure_details=failure_from_pb(response.failureDetails),
            )
        result = response.result.value if response.HasField("result") else None
        return TaskCompleted(timestamp=now, task_scheduled_id=item.task_id, result=result)


def _started(*groups: Sequence[HistoryEvent]) -> ExecutionStarted | None:
    for events in groups:
        for event in events:
            if isinstance(event, ExecutionStarted):
                return event
    return None


def _last_episode_time(events: Sequence[HistoryEvent]) -> datetime:
    for event in reversed(events):
        if isinstance(event, OrchestratorStarted):
            return event.timestamp
    return datetime.now(timezone.utc)
