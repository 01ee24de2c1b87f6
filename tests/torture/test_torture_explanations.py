"""What the torture world counts as explained activity runs: when a backend object dies,
when a committed episode is recovered, when a work item outlives its lock.

On Azure a worker crash replaces the backend object, and the results it buffered in process
die with it; each is carried by its own still-hidden request, which runs again. Seed 17 on
Azurite ran one task by its request and by a duplicate's copy, both results waited in the
buffer, the backend died, and the task ran twice more: an allowance of one run per task
reported a violation no engine defect caused.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator

import pytest

from durable_azstorage.backend.protocol import (
    ActivityWorkItem,
    OrchestrationCommit,
    OrchestrationWorkItem,
)
from durable_azstorage.model import history as h
from durable_azstorage.model.messages import TaskMessage
from durable_azstorage.model.state import InstanceState
from durable_azstorage.model.status import OrchestrationStatus
from durable_azstorage.testing.torture import World, programs
from durable_azstorage.testing.torture.clock import EPOCH
from durable_azstorage.testing.torture.faults import Fault

TASK = ("i3/g0s1", 0)
RUN = ("i3", *TASK)
INSTANCE = h.OrchestrationInstance(instance_id="i3", execution_id="e1")


@pytest.fixture
def world() -> Iterator[World]:
    world = World(17)
    try:
        yield world
    finally:
        for worker in world.workers:
            worker.close()


def test_a_crash_explains_one_run_again_per_run_since_the_previous_crash(world: World) -> None:
    world.ledger.executions[RUN] = 2  # the request and a duplicate's copy, both buffered
    world._explain_lost_buffer()
    assert world.explained[TASK] == 2


def test_runs_before_the_previous_crash_are_not_explained_again(world: World) -> None:
    world.ledger.executions[RUN] = 2
    world._explain_lost_buffer()
    world.ledger.executions[RUN] = 3  # one of the two requests ran again
    world._explain_lost_buffer()
    world._explain_lost_buffer()  # nothing ran since: nothing more may run again
    assert world.explained[TASK] == 3


def test_a_task_that_did_not_run_since_the_previous_crash_gets_nothing(world: World) -> None:
    world.ledger.executions[RUN] = 1
    world._explain_lost_buffer()
    world.ledger.executions[("i0", "i0/g0s0", 0)] = 1
    world._explain_lost_buffer()
    assert world.explained[TASK] == 1


def _request(task_id: int, key: str) -> TaskMessage:
    return TaskMessage(
        instance=INSTANCE,
        event=h.TaskScheduled(
            event_id=task_id, name=programs.ACTIVITY, input=json.dumps({"key": key, "fail": 0})
        ),
    )


def _episode(consumed: int) -> tuple[OrchestrationWorkItem, OrchestrationCommit]:
    """A work item that consumed ``consumed`` messages and committed one activity request."""
    fired = [
        TaskMessage(instance=INSTANCE, event=h.TimerFired(timer_id=n, fire_at=EPOCH))
        for n in range(consumed)
    ]
    item = OrchestrationWorkItem(
        instance_id="i3", history=(), messages=tuple(fired), lock_token=object()
    )
    state = InstanceState(
        instance_id="i3",
        execution_id="e1",
        name=programs.ORCHESTRATOR,
        runtime_status=OrchestrationStatus.RUNNING,
        created_at=EPOCH,
        last_updated_at=EPOCH,
    )
    commit = OrchestrationCommit(
        new_events=(), state=state, activity_messages=(_request(0, TASK[0]),)
    )
    return item, commit


def test_each_consumed_message_that_comes_back_may_recover_the_episode_again(
    world: World,
) -> None:
    """Seed 71 on Azurite: an episode that consumed a carried result and a timer crashed
    after step 2; the timer came back, and the result once its request ran again: two
    recoveries, each re-sending the episode's request, which ran three times in all."""
    world.storage.resends_on_recovery = True  # as Azure's recovery does
    world._explain_recoveries(*_episode(consumed=2), sent=True)
    assert world.explained[TASK] == 2
    world._explain_recoveries(*_episode(consumed=2), sent=False)  # step 2 never sent it
    assert world.explained[TASK] == 3


def test_an_exact_outbox_explains_no_resend(world: World) -> None:
    world._explain_recoveries(*_episode(consumed=2), sent=True)  # the in-memory backend
    assert world.explained[TASK] == 0


def test_an_activity_that_outlived_half_its_lock_may_run_again(world: World) -> None:
    item = ActivityWorkItem.from_message(_request(0, TASK[0]), lock_token=object(), dequeue_count=1)
    worker = world.workers[0]
    world._explain_outlived_lock(worker, item, took=world.time.lock_timeout / 2 - 0.1)
    assert world.explained[TASK] == 0
    world._explain_outlived_lock(worker, item, took=world.time.lock_timeout / 2)
    assert world.explained[TASK] == 1
    assert world.result.faults[Fault.OUTLIVED_LOCK] == 1


def test_each_extra_run_of_an_answered_task_may_recover_the_episode_that_applied_it(
    world: World,
) -> None:
    """Seed 10 on Azurite: task 1 ran twice (a held fault); its episode committed on one
    result, the other arrived later, matched by its request id, and recovered the episode,
    which requested task 2 again."""
    world.storage.resends_on_recovery = True
    item, commit = _episode(consumed=0)
    result = TaskMessage(instance=INSTANCE, event=h.TaskCompleted(task_scheduled_id=1))
    item = dataclasses.replace(item, messages=(result,))
    world._committed(item, commit)
    world._committed(item, commit)  # reported at step 1 and when the commit returned: once
    world.ledger.executions[("i3", "i3/g0s0", 1)] = 3
    world._explain_late_answers()
    assert world.explained[TASK] == 2
