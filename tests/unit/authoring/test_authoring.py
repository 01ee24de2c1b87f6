"""Authoring API: RetryPolicy validation, Registry rules, task combinators."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from durable_azstorage.authoring.errors import TaskCancelledError
from durable_azstorage.authoring.registry import Registry
from durable_azstorage.authoring.retry import RetryPolicy
from durable_azstorage.authoring.tasks import CancellableTask, CompletableTask, when_all, when_any
from durable_azstorage.model.errors import TaskFailedError
from durable_azstorage.model.failure import FailureDetails

SECOND = timedelta(seconds=1)


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        (
            {"first_retry_interval": timedelta(0), "max_number_of_attempts": 1},
            "first_retry_interval",
        ),
        ({"first_retry_interval": SECOND, "max_number_of_attempts": 0}, "max_number_of_attempts"),
        (
            {
                "first_retry_interval": SECOND,
                "max_number_of_attempts": 2,
                "backoff_coefficient": 0.5,
            },
            "backoff_coefficient",
        ),
        (
            {
                "first_retry_interval": SECOND,
                "max_number_of_attempts": 2,
                "max_retry_interval": timedelta(0),
            },
            "max_retry_interval",
        ),
        (
            {"first_retry_interval": SECOND, "max_number_of_attempts": 2, "retry_timeout": -SECOND},
            "retry_timeout",
        ),
    ],
)
def test_retry_policy_rejects_invalid_values_naming_the_field(
    kwargs: dict[str, Any], fragment: str
) -> None:
    with pytest.raises(ValueError, match=fragment):
        RetryPolicy(**kwargs)


def test_retry_policy_arguments_are_keyword_only() -> None:
    with pytest.raises(TypeError):
        RetryPolicy(SECOND, 3)  # type: ignore[call-arg]


def test_retry_policy_delays() -> None:
    policy = RetryPolicy(
        first_retry_interval=SECOND,
        max_number_of_attempts=4,
        backoff_coefficient=3,
        max_retry_interval=5 * SECOND,
        retry_timeout=60 * SECOND,
    )
    t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
    assert [policy.next_delay(n, first_attempt_at=t0, now=t0) for n in (1, 2, 3, 4)] == [
        SECOND,
        3 * SECOND,
        5 * SECOND,
        None,
    ]
    assert policy.next_delay(1, first_attempt_at=t0, now=t0 + 60 * SECOND) is None


def test_registry_names_default_to_the_function_name_and_reject_duplicates() -> None:
    def work(ctx: Any, x: Any) -> Any:
        return x

    r = Registry()
    assert r.add_activity(work) == "work"
    assert r.add_activity(work, name="alias") == "alias"
    assert r.get_activity("work") is work and r.get_activity("alias") is work
    assert r.get_activity("missing") is None
    with pytest.raises(ValueError, match="'work' is already registered"):
        r.add_activity(lambda c, x: x, name="work")
    assert r.add_orchestrator(work) == "work"  # separate namespaces
    with pytest.raises(ValueError, match="pass name="):
        r.add_orchestrator(lambda c, x: x)
    with pytest.raises(ValueError, match="non-empty"):
        r.add_orchestrator(work, name=" ")


def _failure(message: str) -> TaskFailedError:
    return TaskFailedError(
        message, FailureDetails(message=message, error_type="builtins.ValueError")
    )


def test_when_all_completes_only_after_every_child_and_raises_the_first_failure_in_task_order() -> (
    None
):
    a, b, c = CompletableTask[int](), CompletableTask[int](), CompletableTask[int]()
    combined = when_all([a, b, c])
    b.fail(_failure("b"))
    a.fail(_failure("a"))
    assert not combined.is_complete and combined.pending_tasks == 1
    c.complete(3)
    assert combined.is_complete and combined.is_failed
    with pytest.raises(TaskFailedError, match="^a$"):
        combined.get_result()


def test_when_all_of_nothing_is_complete_and_empty() -> None:
    assert when_all([]).get_result() == []


def test_when_any_returns_the_first_completed_task_even_if_already_complete() -> None:
    a, b = CompletableTask[str](), CompletableTask[str]()
    b.complete("b")
    winner = when_any([a, b])
    assert winner.get_result() is b
    a.complete("a")
    assert winner.get_result() is b
    with pytest.raises(ValueError, match="at least one"):
        when_any([])


def test_cancelled_tasks_raise_task_cancelled_error_and_cannot_be_completed_twice() -> None:
    task = CancellableTask[int]()
    called: list[bool] = []
    task.set_cancel_handler(lambda: called.append(True))
    assert task.cancel() and called == [True] and task.is_cancelled
    assert not task.cancel()
    with pytest.raises(TaskCancelledError):
        task.get_result()
    with pytest.raises(ValueError, match="already completed"):
        task.complete(1)


def test_a_pending_task_has_no_result_yet() -> None:
    with pytest.raises(ValueError, match="not completed"):
        CompletableTask[int]().get_result()
