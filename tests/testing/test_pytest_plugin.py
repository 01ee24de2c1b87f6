"""The user-facing pytest plugin: its fixtures, used exactly as a user's test would."""

from __future__ import annotations

from collections.abc import Generator
from datetime import timedelta
from typing import Any

import pytest

from durable_azstorage import (
    ActivityContext,
    OrchestrationContext,
    OrchestrationStatus,
    Task,
    TaskHubClient,
    TaskHubWorker,
)
from durable_azstorage.azure.settings import AzureStorageSettings
from durable_azstorage.testing.eventually import EventuallyTimeout
from durable_azstorage.testing.runtime import DurableRuntime


def remind_in_3_days(ctx: OrchestrationContext, who: str) -> Generator[Task[Any], Any, str]:
    yield ctx.create_timer(timedelta(days=3))
    return (yield ctx.call_activity(greet, input=who))


def greet(ctx: ActivityContext, who: str) -> str:
    return f"reminded {who}"


def test_plugin_is_registered_by_its_entry_point(request: pytest.FixtureRequest) -> None:
    assert request.config.pluginmanager.has_plugin("durable_azstorage")


def test_the_readme_example(durable_runtime: DurableRuntime) -> None:
    durable_runtime.add_orchestrator(remind_in_3_days)
    durable_runtime.add_activity(greet)
    iid = durable_runtime.client.schedule_new_orchestration(remind_in_3_days, input="ada")
    durable_runtime.skip_timer(iid)
    assert (
        durable_runtime.client.wait_for_orchestration_completion(iid).get_output() == "reminded ada"
    )


def test_durable_time_moves_only_when_told(durable_runtime: DurableRuntime) -> None:
    durable_runtime.add_orchestrator(remind_in_3_days)
    durable_runtime.add_activity(greet)
    before = durable_runtime.clock.now()
    iid = durable_runtime.client.schedule_new_orchestration(remind_in_3_days, input="bo")
    with pytest.raises(TimeoutError):
        durable_runtime.client.wait_for_orchestration_completion(iid, timeout=0.3)
    fired_at = durable_runtime.skip_timer(iid)
    assert fired_at - before >= timedelta(days=3)
    state = durable_runtime.client.wait_for_orchestration_completion(iid, timeout=10)
    assert state.runtime_status is OrchestrationStatus.COMPLETED
    with pytest.raises(EventuallyTimeout, match="to wait on a durable timer"):
        durable_runtime.skip_timer(iid, timeout=0.05)


def greet_now(ctx: OrchestrationContext, who: str) -> Generator[Task[Any], Any, str]:
    return (yield ctx.call_activity(greet, input=who))


@pytest.mark.azurite
def test_durable_azure_settings_run_on_the_session_azurite(
    durable_azure_settings: AzureStorageSettings,
) -> None:
    worker = TaskHubWorker(durable_azure_settings)
    worker.add_orchestrator(greet_now)
    worker.add_activity(greet)
    with TaskHubClient(durable_azure_settings) as client:
        client.create_task_hub()
        worker.start()
        try:
            iid = client.schedule_new_orchestration(greet_now, input="cy")
            state = client.wait_for_orchestration_completion(iid, timeout=60)
        finally:
            worker.stop(grace=timedelta(seconds=5))
            client.delete_task_hub()
    assert state.get_output() == "reminded cy"
