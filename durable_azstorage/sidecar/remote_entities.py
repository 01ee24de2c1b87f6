"""Entity episodes whose operations run in a connected portable-SDK worker.

The episode itself (which requests run, locks, sender order, the commit) is
``replay.entity_episode``'s, as for our own workers; only the batch of operations goes to the
SDK, as an ``entityRequest`` work item answered by ``CompleteEntityTask``. Entity work items
share the orchestration slots of the streams (they are orchestration-dispatcher work items).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import datetime

from durabletask.internal import orchestrator_service_pb2 as pb

from durable_azstorage.model.entities import EntityInstanceId, EntityRequest
from durable_azstorage.model.history import HistoryEvent
from durable_azstorage.model.messages import TaskMessage
from durable_azstorage.replay.entity_episode import run_entity_episode
from durable_azstorage.replay.entity_operations import BatchOutcome
from durable_azstorage.replay.episode import Episode
from durable_azstorage.replay.executor import ExecutionAbandoned
from durable_azstorage.sidecar.convert_entities import batch_outcome_from_pb, batch_request_to_pb
from durable_azstorage.sidecar.convert_failure import failure_from_pb
from durable_azstorage.sidecar.streams import WorkerStreams, answer_within


class RemoteOperations:
    """An ``OperationRunner`` that hands the batch to an SDK worker and waits (episode thread)."""

    def __init__(
        self, streams: WorkerStreams, loop: asyncio.AbstractEventLoop, *, timeout: float | None
    ) -> None:
        self._streams = streams
        self._loop = loop
        self._timeout = timeout

    def run(
        self, entity_id: EntityInstanceId, state: str | None, operations: Sequence[EntityRequest]
    ) -> BatchOutcome:
        instance_id = str(entity_id)
        what = f"entity {instance_id} ({len(operations)} operation(s))"
        item = pb.WorkItem(entityRequest=batch_request_to_pb(instance_id, state, operations))
        work = asyncio.run_coroutine_threadsafe(
            self._streams.dispatch(
                "orchestration",
                item,
                instance_id=instance_id,
                what=what,
                name=entity_id.entity,
                filtered_as="entity",
            ),
            self._loop,
        )
        result = answer_within(work, self._timeout, what)
        if result.HasField("failureDetails"):
            failure = failure_from_pb(result.failureDetails)
            raise ExecutionAbandoned(f"{what}: the SDK worker failed the batch: {failure.message}")
        try:
            return batch_outcome_from_pb(result, len(operations))
        except ValueError as exc:
            raise ExecutionAbandoned(f"{what}: {exc}") from None


class RemoteEntityExecutor:
    """The ``EntityExecutor`` of the sidecar: our entity episodes, the SDK's operations."""

    def __init__(
        self, streams: WorkerStreams, loop: asyncio.AbstractEventLoop, *, timeout: float | None
    ) -> None:
        self._operations = RemoteOperations(streams, loop, timeout=timeout)

    def run(
        self,
        instance_id: str,
        history: Sequence[HistoryEvent],
        messages: Sequence[TaskMessage],
        *,
        now: datetime,
        logger: logging.Logger,
    ) -> Episode:
        return run_entity_episode(
            self._operations, instance_id, history, messages, now=now, logger=logger
        )
