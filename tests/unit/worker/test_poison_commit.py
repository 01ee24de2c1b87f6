"""The failure a poison work item leads to says where its kept copies are."""

from __future__ import annotations

import dataclasses

from durable_azstorage.backend.protocol import OrchestrationWorkItem
from durable_azstorage.model.history import ExecutionCompleted, SubOrchestrationInstanceFailed
from durable_azstorage.model.status import OrchestrationStatus
from durable_azstorage.worker.poison import POISON_ERROR_TYPE, poison_commit

from ..builders import IID, at, msg, parent_of, started


def _failure_message(quarantined: tuple[str, ...]) -> str:
    item = OrchestrationWorkItem(
        instance_id=IID,
        history=(),
        messages=(msg(started("flaky")),),
        lock_token=object(),
        dequeue_count=11,
        quarantined=quarantined,
    )
    commit = poison_commit(item, None, now=at(5), max_dequeue_count=10)
    assert commit is not None
    (completed,) = [e for e in commit.new_events if isinstance(e, ExecutionCompleted)]
    assert completed.status is OrchestrationStatus.FAILED
    assert completed.failure_details is not None
    assert completed.failure_details.error_type == POISON_ERROR_TYPE
    return completed.failure_details.message


def test_the_failure_names_the_kept_copies() -> None:
    keys = ("$poison/hub-control-01/abc.json", "$poison/hub-control-01/def.json")
    message = _failure_message(keys)
    assert "delivered 11 times (max_dequeue_count=10)" in message
    assert f"(durable-azstorage poison show KEY): {keys[0]}, {keys[1]}." in message


def test_without_kept_copies_the_failure_does_not_invent_any() -> None:
    assert "poison show" not in _failure_message(())


def test_a_poisoned_child_tells_its_parent_which_scheduling_failed() -> None:
    parent = dataclasses.replace(parent_of(5), schedule_index=1)  # an SDK retry of task 5
    item = OrchestrationWorkItem(
        instance_id=IID,
        history=(),
        messages=(msg(started("child", parent=parent)),),
        lock_token=object(),
        dequeue_count=11,
    )
    commit = poison_commit(item, None, now=at(5), max_dequeue_count=10)
    assert commit is not None
    (notice,) = commit.orchestrator_messages
    assert isinstance(notice.event, SubOrchestrationInstanceFailed)
    assert (notice.event.task_scheduled_id, notice.event.schedule_index) == (5, 1)
