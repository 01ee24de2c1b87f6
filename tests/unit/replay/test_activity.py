"""run_activity: sync functions in the executor, async ones awaited, failures as TaskFailed."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from durable_azstorage.authoring.context import ActivityContext
from durable_azstorage.authoring.errors import (
    ActivityNotRegisteredError,
    NonSerializableResultError,
)
from durable_azstorage.authoring.registry import Registry
from durable_azstorage.model.failure import qualified_type_name
from durable_azstorage.model.history import TaskCompleted, TaskFailed
from durable_azstorage.replay.activity import run_activity
from durable_azstorage.serialization.converter import JsonDataConverter

CTX = ActivityContext(orchestration_id="inst-1", task_id=4, task_name="work", attempt=2)


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="activity") as executor:
        yield executor


async def _run(
    registry: Registry, name: str, input: Any, pool: ThreadPoolExecutor
) -> TaskCompleted | TaskFailed:
    return await run_activity(
        registry,
        CTX,
        name,
        JsonDataConverter().serialize(input),
        converter=JsonDataConverter(),
        executor=pool,
    )


async def test_sync_activities_run_in_the_thread_pool(pool: ThreadPoolExecutor) -> None:
    seen: list[Any] = []

    def work(ctx: ActivityContext, value: int) -> dict[str, Any]:
        seen.append((threading.current_thread().name, ctx))
        return {"double": value * 2}

    r = Registry()
    r.add_activity(work)
    result = await _run(r, "work", 21, pool)
    assert isinstance(result, TaskCompleted)
    assert (result.task_scheduled_id, result.result) == (4, '{"double":42}')
    thread, ctx = seen[0]
    assert thread.startswith("activity") and ctx is CTX and ctx.attempt == 2


async def test_async_activities_are_awaited_on_the_loop(pool: ThreadPoolExecutor) -> None:
    loops: list[Any] = []

    async def work(ctx: ActivityContext, value: str) -> str:
        loops.append(asyncio.get_running_loop())
        await asyncio.sleep(0)
        return value.upper()

    r = Registry()
    r.add_activity(work)
    result = await _run(r, "work", "hi", pool)
    assert isinstance(result, TaskCompleted) and result.result == '"HI"'
    assert loops == [asyncio.get_running_loop()]


async def test_exceptions_become_task_failed_with_details(pool: ThreadPoolExecutor) -> None:
    def work(ctx: ActivityContext, _: Any) -> None:
        raise PermissionError("no access to the ledger")

    r = Registry()
    r.add_activity(work)
    result = await _run(r, "work", None, pool)
    assert isinstance(result, TaskFailed) and result.task_scheduled_id == 4
    details = result.failure_details
    assert (
        details.error_type == "builtins.PermissionError"
        and details.message == "no access to the ledger"
    )
    assert details.stack_trace and "raise PermissionError" in details.stack_trace


async def test_an_unregistered_activity_fails_with_a_clear_reason(pool: ThreadPoolExecutor) -> None:
    r = Registry()
    r.add_activity(lambda ctx, x: x, name="known")
    result = await _run(r, "unknown", None, pool)
    assert isinstance(result, TaskFailed)
    assert result.failure_details.error_type == qualified_type_name(ActivityNotRegisteredError)
    assert "'unknown' is not registered" in result.failure_details.message
    assert "known" in result.failure_details.message


async def test_an_unserializable_result_fails_the_task(pool: ThreadPoolExecutor) -> None:
    r = Registry()
    r.add_activity(lambda ctx, x: threading.Lock(), name="lock")
    result = await _run(r, "lock", None, pool)
    assert isinstance(result, TaskFailed)
    assert result.failure_details.error_type == qualified_type_name(NonSerializableResultError)
    assert "'lock' returned a value that cannot be serialized" in result.failure_details.message
