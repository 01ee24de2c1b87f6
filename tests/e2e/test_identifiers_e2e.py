"""Bad instance ids and names: the clients refuse them up front, an orchestrator fails once."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pytest

from durable_azstorage import (
    AsyncTaskHubClient,
    InvalidIdentifierError,
    OrchestrationContext,
    OrchestrationStatus,
    TaskHubClient,
    TaskHubWorker,
)


def noop(ctx: OrchestrationContext, _: Any) -> None:
    return None


def spawn(ctx: OrchestrationContext, child_id: str) -> Generator[Any, Any, Any]:
    return (yield ctx.call_sub_orchestrator(noop, instance_id=child_id))


@pytest.mark.parametrize("bad", ["..", "$poison", "x" * 1500])
def test_sync_client_refuses_an_invalid_instance_id(client: TaskHubClient, bad: str) -> None:
    with pytest.raises(InvalidIdentifierError, match="instance id"):
        client.schedule_new_orchestration(noop, instance_id=bad)
    assert client.get_all_orchestration_states() == []


async def test_async_client_refuses_invalid_ids_and_names(async_client: AsyncTaskHubClient) -> None:
    with pytest.raises(InvalidIdentifierError, match=r"instance id '\.'"):
        await async_client.schedule_new_orchestration(noop, instance_id=".")
    with pytest.raises(InvalidIdentifierError, match="orchestration name 'nnn.*the limit is 16384"):
        await async_client.schedule_new_orchestration("n" * 40_000)
    with pytest.raises(InvalidIdentifierError, match="orchestration version 'vvv"):
        await async_client.schedule_new_orchestration(noop, version="v" * 20_000)
    iid = await async_client.schedule_new_orchestration(noop)
    with pytest.raises(InvalidIdentifierError, match="event name 'eee"):
        await async_client.raise_orchestration_event(iid, "e" * 40_000)


def test_a_child_with_an_invalid_id_fails_the_parent_once(
    worker: TaskHubWorker, client: TaskHubClient
) -> None:
    worker.add_orchestrator(spawn)
    worker.add_orchestrator(noop)
    worker.start()

    iid = client.schedule_new_orchestration(spawn, input="$poison")
    state = client.wait_for_orchestration_completion(iid, timeout=10)

    assert state.runtime_status is OrchestrationStatus.FAILED
    assert state.failure_details is not None
    assert state.failure_details.error_type.endswith("InvalidIdentifierError")
    assert "sub-orchestration instance id '$poison'" in state.failure_details.message
    assert client.get_orchestration_state("$poison") is None
