"""Running one activity: decode the input, call the function, encode the outcome as an event.

Plain functions run in the ``Executor`` the worker passes in (a thread pool), so a slow or
blocking activity never stalls the event loop; ``async def`` activities are awaited on the
caller's loop. Every failure (unregistered name, bad input, exception, unserializable
result) becomes a ``TaskFailed`` with ``FailureDetails``; nothing escapes to the worker.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import functools
import inspect
from datetime import datetime, timezone

from durable_azstorage.authoring.context import ActivityContext
from durable_azstorage.authoring.errors import (
    ActivityNotRegisteredError,
    NonSerializableResultError,
)
from durable_azstorage.authoring.registry import Activity, Registry
from durable_azstorage.authoring.signatures import input_type
from durable_azstorage.model.errors import PayloadTypeError
from durable_azstorage.model.failure import FailureDetails
from durable_azstorage.model.history import TaskCompleted, TaskFailed
from durable_azstorage.serialization.converter import DataConverter, deserialize_as


def _is_async(fn: Activity) -> bool:
    call = getattr(fn, "__call__", None)  # noqa: B004 - async callable objects
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(call)


async def run_activity(
    registry: Registry,
    ctx: ActivityContext,
    name: str,
    input: str | None,
    *,
    converter: DataConverter,
    executor: concurrent.futures.Executor,
) -> TaskCompleted | TaskFailed:
    """Run activity ``name`` for task ``ctx.task_id``; never raises for user-code errors."""
    fn = registry.get_activity(name)
    if fn is None:
        known = ", ".join(registry.activity_names) or "none"
        error = ActivityNotRegisteredError(
            f"activity {name!r} is not registered with this worker (registered activities: {known})"
        )
        return _failed(ctx, error)
    try:
        value = _decode_input(converter, input, fn, name)
        if _is_async(fn):
            result = await fn(ctx, value)
        else:
            loop = asyncio.get_running_loop()
            call = functools.partial(contextvars.copy_context().run, fn, ctx, value)
            result = await loop.run_in_executor(executor, call)
            if inspect.isawaitable(result):  # a plain function that returned a coroutine
                result = await result
    except Exception as exc:  # noqa: BLE001 - user code: report as a task failure
        return _failed(ctx, exc)
    try:
        encoded = converter.serialize(result)
    except TypeError as exc:
        return _failed(
            ctx,
            NonSerializableResultError(
                f"activity {name!r} returned a value that cannot be serialized: {exc}"
            ),
        )
    return TaskCompleted(task_scheduled_id=ctx.task_id, result=encoded, timestamp=_now())


def _decode_input(converter: DataConverter, input: str | None, fn: Activity, name: str) -> object:
    """The input as the activity's annotation asks; a mismatch names the activity."""
    try:
        return deserialize_as(converter, input, input_type(fn))
    except PayloadTypeError as exc:
        raise PayloadTypeError(f"input of activity {name!r}: {exc}") from exc


def _failed(ctx: ActivityContext, error: BaseException) -> TaskFailed:
    return TaskFailed(
        task_scheduled_id=ctx.task_id,
        failure_details=FailureDetails.from_exception(error),
        timestamp=_now(),
    )


def _now() -> datetime:
    return datetime.now(timezone.utc)
