"""``OrchestrationCommit.check_for``: the checks every backend makes before its first write."""

from __future__ import annotations

import pytest

from durable_azstorage.backend.protocol import OrchestrationCommit
from durable_azstorage.model.messages import TaskMessage
from durable_azstorage.model.state import InstanceState
from durable_azstorage.model.status import OrchestrationStatus

from .builders import IID, T0, me, scheduled, timer_created


def _state(instance_id: str = IID) -> InstanceState:
    return InstanceState(
        instance_id=instance_id,
        execution_id="exec-1",
        name="o",
        runtime_status=OrchestrationStatus.RUNNING,
        created_at=T0,
        last_updated_at=T0,
    )


def test_a_commit_for_its_own_instance_passes() -> None:
    request = TaskMessage(instance=me(), event=scheduled(0, "work"))
    OrchestrationCommit(new_events=(), state=_state(), activity_messages=(request,)).check_for(IID)


def test_a_commit_whose_state_is_another_instances_is_refused() -> None:
    commit = OrchestrationCommit(new_events=(), state=_state("other"))
    with pytest.raises(ValueError, match="commit.state is for 'other', the work item for 'inst-1'"):
        commit.check_for(IID)


def test_an_activity_message_that_is_no_activity_request_is_refused() -> None:
    stray = TaskMessage(instance=me(), event=timer_created(0, T0))
    commit = OrchestrationCommit(new_events=(), state=_state(), activity_messages=(stray,))
    with pytest.raises(ValueError, match="activity_messages holds a TimerCreated"):
        commit.check_for(IID)
