"""The replay executor: a pure function from history to the orchestrator's next decisions.

``execute(registry, instance_id, past_events, new_events)`` re-runs the orchestrator code
against ``past_events`` (``is_replaying`` is True), then feeds it ``new_events``, and
returns the actions the code produced that history does not record yet, plus the custom
status. No I/O, no clock, no event loop: the same input always gives the same output.

Orchestrator exceptions become a ``CompleteOrchestration(FAILED)`` action with
``FailureDetails``; divergence from history raises ``NonDeterminismError``.

``OrchestrationExecutor`` is the seam ``replay.episode`` runs code through (as durabletask-go's
``Executor``): ``LocalOrchestrationExecutor`` replays registered Python code in-process; the
gRPC sidecar implements the same method by sending the events to a portable-SDK worker.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from durable_azstorage.authoring.registry import Registry
from durable_azstorage.authoring.versioning import VersionRejected
from durable_azstorage.model.actions import CompleteOrchestration, OrchestratorAction
from durable_azstorage.model.history import HistoryEvent
from durable_azstorage.model.status import OrchestrationStatus
from durable_azstorage.replay.context import RuntimeOrchestrationContext
from durable_azstorage.replay.handlers import DELIVERY_EVENTS, HANDLERS
from durable_azstorage.serialization.converter import DataConverter, JsonDataConverter

_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class ExecutionResult:
    """What one replay decided. ``completion`` is set when the execution ended."""

    actions: tuple[OrchestratorAction, ...]
    custom_status: str | None
    suspended: bool

    @property
    def completion(self) -> CompleteOrchestration | None:
        for action in reversed(self.actions):
            if isinstance(action, CompleteOrchestration):
                return action
        return None

    @property
    def status(self) -> OrchestrationStatus:
        """RUNNING, SUSPENDED, or the status of the completion action."""
        completion = self.completion
        if completion is not None:
            return completion.status
        return OrchestrationStatus.SUSPENDED if self.suspended else OrchestrationStatus.RUNNING


class ExecutionAbandoned(Exception):
    """The executor gave the work back without a result (a remote worker disconnected or
    abandoned it): the work item is abandoned and delivered again, never failed.

    ``deferred`` says the give-back was a choice that says nothing about the messages (a
    version the worker rejects, no worker with room or matching filters, a worker shutting
    down): the backend is told not to count that delivery toward poison.
    """

    def __init__(self, message: str, *, deferred: bool = False) -> None:
        super().__init__(message)
        self.deferred = deferred


class OrchestrationExecutor(Protocol):
    """Runs orchestrator code over a generation's events; called on a worker thread.

    ``past_events`` were seen by the code before (replayed); ``new_events`` are applied
    now. Raises ``NonDeterminismError`` when the code diverges from history (the instance
    fails) and ``ExecutionAbandoned`` when there is no result to give (it is retried).
    """

    def execute(
        self,
        instance_id: str,
        past_events: Sequence[HistoryEvent],
        new_events: Sequence[HistoryEvent],
    ) -> ExecutionResult: ...


@dataclass(frozen=True, slots=True)
class LocalOrchestrationExecutor:
    """The in-process executor: replays the code registered in ``registry``."""

    registry: Registry
    converter: DataConverter | None = None
    logger: logging.Logger | None = None

    def execute(
        self,
        instance_id: str,
        past_events: Sequence[HistoryEvent],
        new_events: Sequence[HistoryEvent],
    ) -> ExecutionResult:
        try:
            return execute(
                self.registry,
                instance_id,
                past_events,
                new_events,
                converter=self.converter,
                logger=self.logger,
            )
        except VersionRejected as exc:
            raise ExecutionAbandoned(
                f"orchestration {instance_id!r}: {exc}", deferred=True
            ) from exc


def execute(
    registry: Registry,
    instance_id: str,
    past_events: Sequence[HistoryEvent],
    new_events: Sequence[HistoryEvent],
    *,
    converter: DataConverter | None = None,
    logger: logging.Logger | None = None,
) -> ExecutionResult:
    """Replay ``past_events`` then apply ``new_events``; returns the new actions.

    Raises:
        NonDeterminismError: the code no longer makes the calls history recorded; the
            message names the sequence number, the recorded event and what the code did.
    """
    ctx = RuntimeOrchestrationContext(
        registry=registry, instance_id=instance_id, converter=converter or JsonDataConverter()
    )
    _run(ctx, past_events, replaying=True)
    _run(ctx, new_events, replaying=False)
    result = ExecutionResult(
        actions=tuple(ctx.actions()), custom_status=ctx.custom_status, suspended=ctx.suspended
    )
    (logger or _log).debug(
        "replayed %s (%s): %d past + %d new events -> %d actions, status %s",
        instance_id,
        ctx.name,
        len(past_events),
        len(new_events),
        len(result.actions),
        result.status.value,
    )
    return result


def _run(
    ctx: RuntimeOrchestrationContext, events: Iterable[HistoryEvent], *, replaying: bool
) -> None:
    ctx.replaying = replaying
    for event in events:
        if ctx.suspended and isinstance(event, DELIVERY_EVENTS):
            ctx.suspended_events.append(event)
            continue
        handler = HANDLERS.get(type(event))
        if handler is None:
            raise TypeError(f"no replay handler for history event type {type(event).__qualname__}")
        handler(ctx, event)
        ctx.resume()
