"""One handler per history event type, and the dispatch table the executor uses.

Scheduling events (TaskScheduled, TimerCreated, SubOrchestrationInstanceCreated,
EventSent) are checked against the action the code produced under the same sequence
number; a mismatch raises ``NonDeterminismError`` naming the step. Response events
complete the waiting task; a response for a task that is no longer pending (a duplicate,
or a cancelled timer) is ignored.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from durable_azstorage.model.actions import (
    CreateSubOrchestration,
    CreateTimer,
    OrchestratorAction,
    ScheduleTask,
    SendEvent,
)
from durable_azstorage.model.errors import NonDeterminismError, TaskFailedError
from durable_azstorage.model.failure import FailureDetails
from durable_azstorage.model.history import (
    ContinueAsNew,
    EventRaised,
    EventSent,
    ExecutionCompleted,
    ExecutionResumed,
    ExecutionStarted,
    ExecutionSuspended,
    ExecutionTerminated,
    GenericEvent,
    HistoryEvent,
    OrchestratorCompleted,
    OrchestratorStarted,
    SubOrchestrationInstanceCompleted,
    SubOrchestrationInstanceCreated,
    SubOrchestrationInstanceFailed,
    TaskCompleted,
    TaskFailed,
    TaskScheduled,
    TimerCreated,
    TimerFired,
    event_type_name,
)
from durable_azstorage.replay.context import RetryableTask, RuntimeOrchestrationContext, as_utc
from durable_azstorage.serialization.converter import deserialize_as

Handler = Callable[[RuntimeOrchestrationContext, Any], None]

DELIVERY_EVENTS: tuple[type[HistoryEvent], ...] = (
    TaskCompleted,
    TaskFailed,
    SubOrchestrationInstanceCompleted,
    SubOrchestrationInstanceFailed,
    TimerFired,
    EventRaised,
)
"""Events that resume orchestrator code; held back while the instance is suspended."""


def describe_action(action: OrchestratorAction | None) -> str:
    """What the code did, in the words of the API it called."""
    if action is None:
        return "scheduled nothing with that sequence number"
    if isinstance(action, ScheduleTask):
        return f"called call_activity({action.name!r})"
    if isinstance(action, CreateSubOrchestration):
        return f"called call_sub_orchestrator({action.name!r})"
    if isinstance(action, CreateTimer):
        return f"called create_timer({action.fire_at.isoformat()})"
    if isinstance(action, SendEvent):
        return f"called send_event({action.instance_id!r}, {action.name!r})"
    return f"produced {type(action).__name__}"


def describe_event(event: HistoryEvent) -> str:
    """What history recorded: the event type and, where it has one, its name."""
    kind = event_type_name(event)
    if isinstance(event, EventSent):
        return f"{kind} {event.name!r} to {event.instance_id!r}"
    name = getattr(event, "name", None)
    if isinstance(event, TimerCreated):
        return f"{kind} (fire_at {event.fire_at.isoformat()})"
    return f"{kind} {name!r}" if name is not None else kind


def _diverged(
    ctx: RuntimeOrchestrationContext, event: HistoryEvent, action: OrchestratorAction | None
) -> None:
    suffix = ""
    if action is None and ctx.is_complete:
        suffix = " (the orchestrator had already finished)"
    raise NonDeterminismError(
        f"non-deterministic orchestrator {ctx.name!r} (instance {ctx.instance_id!r}) at sequence "
        f"number {event.event_id}: history recorded {describe_event(event)}, but the code now "
        f"{describe_action(action)}{suffix}. An orchestrator must make the same calls in the "
        "same order on every replay; deploy incompatible changes under a new name or version."
    )


def _match(
    ctx: RuntimeOrchestrationContext, event: HistoryEvent, kind: type[OrchestratorAction]
) -> Any:
    action = ctx.pending_actions.pop(event.event_id, None)
    if not isinstance(action, kind):
        _diverged(ctx, event, action)
    return action


# --- lifecycle ----------------------------------------------------------------------------
def on_execution_started(ctx: RuntimeOrchestrationContext, event: ExecutionStarted) -> None:
    if not ctx.started:
        ctx.start(event)


def on_execution_terminated(ctx: RuntimeOrchestrationContext, event: ExecutionTerminated) -> None:
    ctx.terminate(event.input)


def on_execution_suspended(ctx: RuntimeOrchestrationContext, event: ExecutionSuspended) -> None:
    if not ctx.is_complete:
        ctx.suspended = True


def on_execution_resumed(ctx: RuntimeOrchestrationContext, event: ExecutionResumed) -> None:
    if not ctx.suspended:
        return
    ctx.suspended = False
    held, ctx.suspended_events = ctx.suspended_events, []
    for delivered in held:
        HANDLERS[type(delivered)](ctx, delivered)
        ctx.resume()


def on_orchestrator_started(ctx: RuntimeOrchestrationContext, event: OrchestratorStarted) -> None:
    ctx.now = as_utc(event.timestamp)


def on_nothing(ctx: RuntimeOrchestrationContext, event: HistoryEvent) -> None:
    """Markers that carry no decision for the code (recorded for humans and tools)."""


# --- scheduling events: check them against the code's actions ----------------------------
def on_task_scheduled(ctx: RuntimeOrchestrationContext, event: TaskScheduled) -> None:
    action: ScheduleTask = _match(ctx, event, ScheduleTask)
    if action.name != event.name:
        _diverged(ctx, event, action)


def on_sub_orchestration_created(
    ctx: RuntimeOrchestrationContext, event: SubOrchestrationInstanceCreated
) -> None:
    action: CreateSubOrchestration = _match(ctx, event, CreateSubOrchestration)
    if action.name != event.name:
        _diverged(ctx, event, action)


def on_timer_created(ctx: RuntimeOrchestrationContext, event: TimerCreated) -> None:
    _match(ctx, event, CreateTimer)


def on_event_sent(ctx: RuntimeOrchestrationContext, event: EventSent) -> None:
    action: SendEvent = _match(ctx, event, SendEvent)
    if action.name != event.name or action.instance_id != event.instance_id:
        _diverged(ctx, event, action)


# --- responses: complete the waiting task ------------------------------------------------
def _succeeded(ctx: RuntimeOrchestrationContext, task_id: int, result: str | None) -> None:
    task = ctx.pending_tasks.pop(task_id, None)
    if task is None or task.is_complete:
        return  # duplicate delivery, or a task the code gave up on
    try:
        value = deserialize_as(ctx.converter, result, ctx.payload_type(task))
    except Exception as exc:  # noqa: BLE001 - surfaced to the orchestrator code
        task.fail(exc)
    else:
        task.complete(value)


def _failed(
    ctx: RuntimeOrchestrationContext, task_id: int, details: FailureDetails, what: str
) -> None:
    task = ctx.pending_tasks.pop(task_id, None)
    if task is None or task.is_complete:
        return
    error = TaskFailedError(f"{what} failed: {details.message}", details)
    if isinstance(task, RetryableTask):
        task.attempt_failed(error)
    else:
        task.fail(error)


def _label(ctx: RuntimeOrchestrationContext, task_id: int, kind: str) -> str:
    name = ctx.task_names.get(task_id)
    return f"{kind} {name!r} (task {task_id})" if name else f"{kind} task {task_id}"


def on_task_completed(ctx: RuntimeOrchestrationContext, event: TaskCompleted) -> None:
    _succeeded(ctx, event.task_scheduled_id, event.result)


def on_task_failed(ctx: RuntimeOrchestrationContext, event: TaskFailed) -> None:
    label = _label(ctx, event.task_scheduled_id, "activity")
    _failed(ctx, event.task_scheduled_id, event.failure_details, label)


def on_sub_orchestration_completed(
    ctx: RuntimeOrchestrationContext, event: SubOrchestrationInstanceCompleted
) -> None:
    _succeeded(ctx, event.task_scheduled_id, event.result)


def on_sub_orchestration_failed(
    ctx: RuntimeOrchestrationContext, event: SubOrchestrationInstanceFailed
) -> None:
    label = _label(ctx, event.task_scheduled_id, "sub-orchestration")
    _failed(ctx, event.task_scheduled_id, event.failure_details, label)


def on_timer_fired(ctx: RuntimeOrchestrationContext, event: TimerFired) -> None:
    task = ctx.pending_tasks.pop(event.timer_id, None)
    if task is not None and not task.is_complete:
        task.complete(None)


def on_event_raised(ctx: RuntimeOrchestrationContext, event: EventRaised) -> None:
    ctx.event_raised(event)


HANDLERS: dict[type[HistoryEvent], Handler] = {
    ExecutionStarted: on_execution_started,
    ExecutionCompleted: on_nothing,
    ExecutionTerminated: on_execution_terminated,
    ExecutionSuspended: on_execution_suspended,
    ExecutionResumed: on_execution_resumed,
    ContinueAsNew: on_nothing,
    OrchestratorStarted: on_orchestrator_started,
    OrchestratorCompleted: on_nothing,
    TaskScheduled: on_task_scheduled,
    TaskCompleted: on_task_completed,
    TaskFailed: on_task_failed,
    SubOrchestrationInstanceCreated: on_sub_orchestration_created,
    SubOrchestrationInstanceCompleted: on_sub_orchestration_completed,
    SubOrchestrationInstanceFailed: on_sub_orchestration_failed,
    TimerCreated: on_timer_created,
    TimerFired: on_timer_fired,
    EventRaised: on_event_raised,
    EventSent: on_event_sent,
    GenericEvent: on_nothing,
}
"""The dispatch table: exactly one handler per event type (checked by a unit test)."""
