"""What the torture world counts as explained activity runs when a backend object dies.

On Azure a worker crash replaces the backend object, and the results it buffered in process
die with it; each is carried by its own still-hidden request, which runs again. Seed 17 on
Azurite ran one task by its request and by a duplicate's copy, both results waited in the
buffer, the backend died, and the task ran twice more: an allowance of one run per task
reported a violation no engine defect caused.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from durable_azstorage.testing.torture import World

TASK = ("i3/g0s1", 0)
RUN = ("i3", *TASK)


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
