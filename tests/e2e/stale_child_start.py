"""Scenario shared by both backends: a parent's re-sent start must not re-run a child chain.

A parent's crash recovery re-sends the child's start with its original execution id. After
the child continued as new its current execution id differs, so before the fix an ended
child took that start as a new attempt and ran the whole chain again. ``resend_child_start``
sends exactly the message recovery derives (``model.outbound``) and reports what the child
did; ``RUNS`` counts the child's activity executions, one per generation. Used by
tests/e2e/test_stale_child_start_e2e.py (in memory) and tests/azure/backend/test_e2e.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

from durable_azstorage import (
    ActivityContext,
    AsyncTaskHubClient,
    OrchestrationContext,
    OrchestrationStatus,
)
from durable_azstorage.model.history import ExecutionStarted, SubOrchestrationInstanceCreated
from durable_azstorage.model.outbound import Outbound

RUNS: list[str] = []


def count_run(ctx: ActivityContext, label: str) -> None:
    RUNS.append(label)


def chained_child(ctx: OrchestrationContext, generation: int) -> Generator[Any, Any, Any]:
    yield ctx.call_activity(count_run, input=f"{ctx.instance_id}:{generation}")
    if generation == 0:
        ctx.continue_as_new(1)
        return None
    return "done"


def parent_of_chain(ctx: OrchestrationContext, child_id: str) -> Generator[Any, Any, Any]:
    return (yield ctx.call_sub_orchestrator(chained_child, input=0, instance_id=child_id))


@dataclass(frozen=True)
class Outcome:
    child_id: str
    runs_before: list[str]
    runs_after: list[str]
    execution_before: str | None
    execution_after: str | None
    status_after: OrchestrationStatus

    def assert_not_re_run(self) -> None:
        assert self.runs_before == [f"{self.child_id}:0", f"{self.child_id}:1"]
        assert self.runs_after == self.runs_before, "the child chain ran again"
        assert self.execution_after == self.execution_before
        assert self.status_after is OrchestrationStatus.COMPLETED


async def resend_child_start(
    client: AsyncTaskHubClient, child_id: str, *, settle: float, timeout: float
) -> Outcome:
    """Run parent and child to the end, re-send the child's original start, wait ``settle``."""
    parent_id = await client.schedule_new_orchestration(parent_of_chain, input=child_id)
    done = await client.wait_for_orchestration_completion(parent_id, timeout=timeout)
    assert done.runtime_status is OrchestrationStatus.COMPLETED, done.failure_details
    assert done.get_output() == "done"
    child = await client.get_orchestration_state(child_id)
    assert child is not None and child.runtime_status is OrchestrationStatus.COMPLETED
    runs_before = [r for r in RUNS if r.startswith(f"{child_id}:")]
    execution_before = (await _started(client, child_id)).instance.execution_id

    history = await client.get_orchestration_history(parent_id)
    started = next(e for e in history if isinstance(e, ExecutionStarted))
    created = next(e for e in history if isinstance(e, SubOrchestrationInstanceCreated))
    outbox = Outbound()
    outbox.add_for(created, started=started, history=history)  # what recovery re-sends
    (start,) = outbox.orchestrator
    await client.backend.send_message(start)
    await asyncio.sleep(settle)

    after = await client.get_orchestration_state(child_id)
    assert after is not None
    return Outcome(
        child_id=child_id,
        runs_before=runs_before,
        runs_after=[r for r in RUNS if r.startswith(f"{child_id}:")],
        execution_before=execution_before,
        execution_after=(await _started(client, child_id)).instance.execution_id,
        status_after=after.runtime_status,
    )


async def _started(client: AsyncTaskHubClient, instance_id: str) -> ExecutionStarted:
    history = await client.get_orchestration_history(instance_id)
    return next(e for e in history if isinstance(e, ExecutionStarted))
