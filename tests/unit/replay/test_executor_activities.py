"""Replay executor, activities and the orchestrator lifecycle: history in -> actions out."""

from __future__ import annotations

import logging
from collections.abc import Generator
from typing import Any

import pytest

from durable_azstorage.authoring.context import OrchestrationContext
from durable_azstorage.authoring.errors import (
    NonSerializableResultError,
    OrchestratorNotRegisteredError,
)
from durable_azstorage.authoring.registry import Registry
from durable_azstorage.model.actions import CompleteOrchestration, ScheduleTask
from durable_azstorage.model.errors import TaskFailedError
from durable_azstorage.model.failure import qualified_type_name
from durable_azstorage.model.status import OrchestrationStatus
from durable_azstorage.replay.executor import execute

from ..builders import (
    IID,
    T0,
    at,
    completed,
    failed,
    js,
    orch_completed,
    orch_started,
    scheduled,
    started,
)


def say_hello(ctx: Any, name: str) -> str:
    return f"Hello {name}!"


def hello_cities(ctx: OrchestrationContext, input: Any) -> Generator[Any, Any, list[str]]:
    a = yield ctx.call_activity(say_hello, input="Tokyo")
    b = yield ctx.call_activity("say_hello", input="London")
    return [a, b]


@pytest.fixture
def registry() -> Registry:
    r = Registry()
    r.add_orchestrator(hello_cities)
    r.add_activity(say_hello)
    return r


def test_first_episode_schedules_the_first_activity(registry: Registry) -> None:
    result = execute(registry, IID, [], [orch_started(), started("hello_cities")])
    assert result.actions == (ScheduleTask(id=0, name="say_hello", input=js("Tokyo")),)
    assert result.status is OrchestrationStatus.RUNNING


def test_a_completed_activity_resumes_the_code_with_its_result(registry: Registry) -> None:
    past = [
        orch_started(),
        started("hello_cities"),
        scheduled(0, "say_hello", "Tokyo"),
        orch_completed(),
    ]
    result = execute(registry, IID, past, [orch_started(at(1)), completed(0, "Hello Tokyo!")])
    assert result.actions == (ScheduleTask(id=1, name="say_hello", input=js("London")),)


def test_the_orchestration_completes_with_the_returned_value(registry: Registry) -> None:
    past = [
        orch_started(),
        started("hello_cities"),
        scheduled(0, "say_hello", "Tokyo"),
        orch_completed(),
        orch_started(),
        completed(0, "Hello Tokyo!"),
        scheduled(1, "say_hello", "London"),
        orch_completed(),
    ]
    result = execute(registry, IID, past, [orch_started(), completed(1, "Hello London!")])
    assert result.actions == (
        CompleteOrchestration(
            id=2, status=OrchestrationStatus.COMPLETED, result=js(["Hello Tokyo!", "Hello London!"])
        ),
    )


def test_a_function_registered_under_another_name_is_scheduled_by_that_name() -> None:
    r = Registry()

    def orch(ctx: OrchestrationContext, _: Any) -> Generator[Any, Any, None]:
        yield ctx.call_activity(say_hello, input="x")

    r.add_orchestrator(orch)
    r.add_activity(say_hello, name="greet")
    result = execute(r, IID, [], [orch_started(), started("orch")])
    assert result.actions == (ScheduleTask(id=0, name="greet", input=js("x")),)


def test_plain_function_orchestrators_complete_in_one_step() -> None:
    r = Registry()
    r.add_orchestrator(lambda ctx, x: x * 2, name="double")
    result = execute(r, IID, [], [orch_started(), started("double", 21)])
    assert result.completion == CompleteOrchestration(
        id=0, status=OrchestrationStatus.COMPLETED, result="42"
    )


def test_an_activity_failure_is_raised_into_the_code_as_task_failed_error() -> None:
    seen: list[TaskFailedError] = []

    def orch(ctx: OrchestrationContext, _: Any) -> Generator[Any, Any, str]:
        try:
            yield ctx.call_activity("charge")
        except TaskFailedError as exc:
            seen.append(exc)
            return "handled"
        return "not reached"

    r = Registry()
    r.add_orchestrator(orch)
    past = [orch_started(), started("orch"), scheduled(0, "charge"), orch_completed()]
    result = execute(
        r, IID, past, [orch_started(), failed(0, "card declined", "billing.CardDeclined")]
    )
    assert result.completion is not None and result.completion.result == js("handled")
    assert seen[0].details.error_type == "billing.CardDeclined"
    assert "charge" in str(seen[0]) and "card declined" in str(seen[0])


class PaymentError(Exception):
    pass


def test_an_unhandled_exception_fails_the_orchestration_with_failure_details() -> None:
    def orch(ctx: OrchestrationContext, _: Any) -> Generator[Any, Any, None]:
        yield ctx.call_activity("charge")
        try:
            raise KeyError("card")
        except KeyError as inner:
            raise PaymentError("payment could not be taken") from inner

    r = Registry()
    r.add_orchestrator(orch)
    past = [orch_started(), started("orch"), scheduled(0, "charge"), orch_completed()]
    result = execute(r, IID, past, [orch_started(), completed(0)])
    completion = result.completion
    assert completion is not None and completion.status is OrchestrationStatus.FAILED
    details = completion.failure_details
    assert details is not None
    assert details.error_type == qualified_type_name(PaymentError)
    assert details.message == "payment could not be taken"
    assert details.stack_trace and "raise PaymentError" in details.stack_trace
    assert (
        details.inner_failure is not None
        and details.inner_failure.error_type == "builtins.KeyError"
    )


def test_an_unserializable_return_value_fails_with_a_clear_message() -> None:
    r = Registry()
    r.add_orchestrator(lambda ctx, _: object(), name="bad")
    result = execute(r, IID, [], [orch_started(), started("bad")])
    completion = result.completion
    assert completion is not None and completion.status is OrchestrationStatus.FAILED
    assert completion.failure_details is not None
    assert completion.failure_details.error_type == qualified_type_name(NonSerializableResultError)
    assert "'bad' returned a value that cannot be serialized" in completion.failure_details.message
    assert "builtins.object" in completion.failure_details.message


def test_an_unregistered_orchestrator_fails_with_a_clear_reason(registry: Registry) -> None:
    result = execute(registry, IID, [], [orch_started(), started("nope")])
    completion = result.completion
    assert completion is not None and completion.status is OrchestrationStatus.FAILED
    assert completion.failure_details is not None
    assert completion.failure_details.error_type == qualified_type_name(
        OrchestratorNotRegisteredError
    )
    assert "'nope' is not registered" in completion.failure_details.message
    assert "hello_cities" in completion.failure_details.message


def test_yielding_something_that_is_not_a_task_fails_the_orchestration() -> None:
    def orch(ctx: OrchestrationContext, _: Any) -> Generator[Any, Any, None]:
        yield 42

    r = Registry()
    r.add_orchestrator(orch)
    completion = execute(r, IID, [], [orch_started(), started("orch")]).completion
    assert completion is not None and completion.failure_details is not None
    assert "yielded a int" in completion.failure_details.message


def test_duplicate_results_are_ignored(registry: Registry) -> None:
    past = [
        orch_started(),
        started("hello_cities"),
        scheduled(0, "say_hello", "Tokyo"),
        orch_completed(),
    ]
    new = [orch_started(), completed(0, "first"), completed(0, "second")]
    result = execute(registry, IID, past, new)
    assert result.actions == (ScheduleTask(id=1, name="say_hello", input=js("London")),)


def test_results_for_unknown_tasks_are_ignored(registry: Registry) -> None:
    past = [
        orch_started(),
        started("hello_cities"),
        scheduled(0, "say_hello", "Tokyo"),
        orch_completed(),
    ]
    result = execute(registry, IID, past, [orch_started(), completed(7, "stale")])
    assert result.actions == ()


def test_is_replaying_current_time_and_replay_safe_logging(
    caplog: pytest.LogCaptureFixture,
) -> None:
    observed: list[tuple[bool, Any]] = []
    user_log = logging.getLogger("tests.user")

    def orch(ctx: OrchestrationContext, _: Any) -> Generator[Any, Any, None]:
        log = ctx.create_replay_safe_logger(user_log)
        observed.append((ctx.is_replaying, ctx.current_utc_datetime))
        log.warning("step one")
        yield ctx.call_activity("a")
        observed.append((ctx.is_replaying, ctx.current_utc_datetime))
        log.warning("step two")
        yield ctx.call_activity("b")

    r = Registry()
    r.add_orchestrator(orch)
    past = [orch_started(T0), started("orch"), scheduled(0, "a"), orch_completed()]
    with caplog.at_level(logging.WARNING, logger="tests.user"):
        execute(r, IID, past, [orch_started(at(60)), completed(0)])
    assert observed == [(True, T0), (False, at(60))]
    assert [rec.getMessage() for rec in caplog.records if rec.name == "tests.user"] == ["step two"]


def test_new_uuid_is_deterministic_and_matches_the_portable_sdk() -> None:
    values: list[list[str]] = []

    def orch(ctx: OrchestrationContext, _: Any) -> list[str]:
        ids = [ctx.new_uuid(), ctx.new_uuid()]
        values.append(ids)
        return ids

    r = Registry()
    r.add_orchestrator(orch)
    for _ in range(2):
        execute(r, IID, [], [orch_started(T0), started("orch")])
    assert values[0] == values[1]
    assert values[0][0] != values[0][1]
    # uuid5(uuid5(NAMESPACE_OID, "9e952958-..."), "inst-1_2026-01-02T03:04:05.000000Z_0"),
    # the algorithm of durabletask-python's new_uuid
    import uuid

    ns = uuid.uuid5(uuid.NAMESPACE_OID, "9e952958-5e33-4daf-827f-2fa12937b875")
    assert values[0][0] == str(uuid.uuid5(ns, "inst-1_2026-01-02T03:04:05.000000Z_0"))
    assert uuid.UUID(values[0][0]).version == 5


def test_custom_status_is_reported_and_recomputed_on_replay() -> None:
    def orch(ctx: OrchestrationContext, _: Any) -> Generator[Any, Any, None]:
        ctx.set_custom_status({"stage": 1})
        yield ctx.call_activity("a")
        ctx.set_custom_status({"stage": 2})
        yield ctx.call_activity("b")

    r = Registry()
    r.add_orchestrator(orch)
    assert execute(r, IID, [], [orch_started(), started("orch")]).custom_status == js({"stage": 1})
    past = [orch_started(), started("orch"), scheduled(0, "a"), orch_completed()]
    assert execute(r, IID, past, [orch_started(), completed(0)]).custom_status == js({"stage": 2})


def test_unserializable_activity_input_raises_type_error_into_the_code() -> None:
    def orch(ctx: OrchestrationContext, _: Any) -> Generator[Any, Any, str]:
        try:
            yield ctx.call_activity("a", input=object())
        except TypeError as exc:
            return str(exc)
        return "no"

    r = Registry()
    r.add_orchestrator(orch)
    completion = execute(r, IID, [], [orch_started(), started("orch")]).completion
    assert completion is not None and "builtins.object" in (completion.result or "")


def test_the_replay_safe_logger_keeps_the_callers_extra_fields(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def orch(ctx: OrchestrationContext, _: Any) -> None:
        ctx.create_replay_safe_logger(logging.getLogger("tests.extra")).warning(
            "hi", extra={"order": 7}
        )

    r = Registry()
    r.add_orchestrator(orch)
    with caplog.at_level(logging.WARNING, logger="tests.extra"):
        execute(r, IID, [], [orch_started(), started("orch")])
    (record,) = [rec for rec in caplog.records if rec.name == "tests.extra"]
    assert record.order == 7  # type: ignore[attr-defined]
