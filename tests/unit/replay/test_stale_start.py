"""A stale copy of an ``ExecutionStarted`` must not restart an instance that continued as new.

Found by the torture test (``python -m durable_azstorage.testing.torture --seed 17``, also
seeds 21, 85, 90, 117 of the first 200): a copy of an instance's first start message (a client
retrying a create after an ambiguous failure, a parent re-sending a child's start, a
redelivery) arrives after the instance continued as new and completed. Its execution id is
not the current one and the instance has ended, so ``replay.episode._start_refusal`` takes it
for a new attempt: the whole instance runs again from generation 0 (its state goes from
Completed back to Running, its activities run twice, its events are sent twice). The same hole
was in ``azure/work_items/message_filter.py``. Fixed: a continued generation records its
chain's first execution id (``ExecutionStarted.first_execution_id``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Generator
from typing import Any

from durable_azstorage.authoring.context import OrchestrationContext
from durable_azstorage.authoring.registry import Registry
from durable_azstorage.model.history import ExecutionCompleted
from durable_azstorage.model.status import OrchestrationStatus
from durable_azstorage.replay.episode import run_episode
from durable_azstorage.serialization.converter import JsonDataConverter

from ..builders import IID, at, js, msg, orch_completed, orch_started, started


def twice(ctx: OrchestrationContext, n: int) -> Generator[Any, Any, Any]:
    if n == 0:
        ctx.continue_as_new(1)
        return None
    yield ctx.create_timer(at(1))
    return n


def test_a_stale_start_does_not_restart_an_instance_that_continued_as_new() -> None:
    registry = Registry()
    registry.add_orchestrator(twice)
    history = [  # generation 1 (execution "gen-1") ran to completion
        orch_started(),
        dataclasses.replace(  # a continued generation names its chain's first execution
            started("twice", 1, execution_id="gen-1", generation=1), first_execution_id="gen-0"
        ),
        orch_completed(),
        orch_started(at(2)),
        ExecutionCompleted(status=OrchestrationStatus.COMPLETED, result=js(1), timestamp=at(2)),
        orch_completed(at(2)),
    ]
    stale = started("twice", 0, execution_id="gen-0")  # the original start, delivered again

    episode = run_episode(
        registry,
        IID,
        history,
        [msg(stale, execution_id="gen-0")],
        now=at(3),
        converter=JsonDataConverter(),
        new_execution_id=lambda: "gen-x",
    )

    assert episode.new_events == ()
    assert episode.state is None or episode.state.runtime_status is OrchestrationStatus.COMPLETED
    assert [reason for _, reason in episode.discarded]
