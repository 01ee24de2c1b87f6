"""Replay: an orchestrator asking for an id or name storage cannot hold fails clearly, once.

Before ``model.identifiers`` such a child id was committed as history and every attempt to
create the child failed in storage (and was retried forever).
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pytest

from durable_azstorage.authoring.context import OrchestrationContext
from durable_azstorage.authoring.registry import Registry
from durable_azstorage.model.actions import CompleteOrchestration
from durable_azstorage.model.errors import InvalidIdentifierError
from durable_azstorage.model.failure import qualified_type_name
from durable_azstorage.model.status import OrchestrationStatus
from durable_azstorage.replay.executor import ExecutionResult, execute

from ..builders import IID, orch_started, started


def _run(fn: Any, instance_id: str = IID) -> ExecutionResult:
    r = Registry()
    r.add_orchestrator(fn, name="orch")
    return execute(r, instance_id, [], [orch_started(), started("orch")])


def _failure(result: ExecutionResult) -> str:
    completion = result.completion
    assert completion is not None and completion.status is OrchestrationStatus.FAILED
    assert completion.failure_details is not None
    assert completion.failure_details.error_type == qualified_type_name(InvalidIdentifierError)
    assert result.actions == (completion,), "nothing may be scheduled for the bad id"
    return completion.failure_details.message


@pytest.mark.parametrize("child_id", ["..", "$poison", "c" * 300])
def test_a_sub_orchestration_with_an_invalid_id_fails_the_orchestration(child_id: str) -> None:
    def orch(ctx: OrchestrationContext, _: Any) -> Generator[Any, Any, Any]:
        return (yield ctx.call_sub_orchestrator("child", instance_id=child_id))

    assert _failure(_run(orch)).startswith("sub-orchestration instance id ")


def test_a_default_child_id_grown_past_the_limit_fails_the_orchestration() -> None:
    def orch(ctx: OrchestrationContext, _: Any) -> Generator[Any, Any, Any]:
        return (yield ctx.call_sub_orchestrator("child"))

    message = _failure(_run(orch, instance_id="p" * 254))
    assert "259 characters long; the limit is 256" in message


def test_the_orchestrator_can_catch_the_error_where_it_asked() -> None:
    def orch(ctx: OrchestrationContext, _: Any) -> Generator[Any, Any, Any]:
        try:
            ctx.send_event(".", "ping")
        except InvalidIdentifierError as exc:
            return str(exc)
        yield ctx.create_timer(ctx.current_utc_datetime)

    result = _run(orch)
    assert (
        result.completion is not None and result.completion.status is OrchestrationStatus.COMPLETED
    )
    assert "send_event target instance id '.'" in (result.completion.result or "")


def test_an_activity_name_over_the_column_limit_fails_the_orchestration() -> None:
    def orch(ctx: OrchestrationContext, _: Any) -> Generator[Any, Any, Any]:
        return (yield ctx.call_activity("a" * 40_000))

    assert _failure(_run(orch)).startswith("activity name 'aaa")


def test_a_version_over_the_column_limit_fails_the_orchestration() -> None:
    def orch(ctx: OrchestrationContext, _: Any) -> Generator[Any, Any, Any]:
        return (yield ctx.call_sub_orchestrator("child", version="v" * 20_000))

    assert _failure(_run(orch)).startswith("sub-orchestration version 'vvv")


def test_a_continue_as_new_version_over_the_column_limit_is_refused() -> None:
    # Only the portable SDKs set it (through the sidecar, which fails the orchestration on it).
    with pytest.raises(InvalidIdentifierError, match="continue_as_new version 'vvv"):
        CompleteOrchestration(
            id=0, status=OrchestrationStatus.CONTINUED_AS_NEW, new_version="v" * 20_000
        )
