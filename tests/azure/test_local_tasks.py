"""The sentinel's record of activities dispatched in process (``tracking.local_tasks``)."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from durable_azstorage.azure.tracking.local_tasks import EMPTY, MAX_CARRIERS, LocalTasks
from durable_azstorage.model import history as h
from durable_azstorage.model.failure import FailureDetails

T = datetime(2026, 1, 1, tzinfo=timezone.utc)


def _completed(task: int) -> h.TaskCompleted:
    return h.TaskCompleted(task_scheduled_id=task, result='"ok"', timestamp=T)


def _failed(task: int) -> h.TaskFailed:
    return h.TaskFailed(
        task_scheduled_id=task,
        timestamp=T,
        failure_details=FailureDetails.from_exception(ValueError("x")),
    )


def test_round_trip_and_empty() -> None:
    assert LocalTasks.parse("") is EMPTY and EMPTY.encode() == ""
    tasks = LocalTasks({"m1": (0, 2), "m2": (5,)})
    assert LocalTasks.parse(tasks.encode()) == tasks
    assert tasks.carriers == {"m1", "m2"}
    assert tasks.tasks_of(["m2", "unknown"]) == {5}


@pytest.mark.parametrize("text", ['["m1"]', '{"m1": "0"}', '{"m1": [0, "x"]}'])
def test_malformed_values_are_refused_naming_the_column(text: str) -> None:
    with pytest.raises(ValueError, match="LocalTasks"):
        LocalTasks.parse(text)


def test_results_settle_tasks_and_new_dispatches_join_their_carrier() -> None:
    tasks = LocalTasks({"m1": (0, 1), "m0": (7,)})
    after = tasks.after(
        [_completed(0), _failed(7)], new_execution=False, carrier="m1", dispatched=[2]
    )
    assert after.by_carrier == {"m1": (1, 2)}  # m0 has nothing left


def test_a_new_execution_forgets_every_earlier_task() -> None:
    tasks = LocalTasks({"m1": (0, 1)})
    assert tasks.after([], new_execution=True).by_carrier == {}
    restarted = tasks.after([], new_execution=True, carrier="m1", dispatched=[0])
    assert restarted.by_carrier == {"m1": (0,)}


def test_the_newest_carriers_are_kept_first() -> None:
    many = LocalTasks({f"m{i}": (i,) for i in range(MAX_CARRIERS)})
    after = many.after([], new_execution=False, carrier="new", dispatched=[99])
    assert list(after.by_carrier)[0] == "new" and len(after.by_carrier) == MAX_CARRIERS
