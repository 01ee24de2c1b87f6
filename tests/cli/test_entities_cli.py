"""``durable-azstorage entities list|show|clean`` against Azurite (run in this process: ``invoke_cli``)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
from cli_support import invoke_cli

from durable_azstorage import EntityContext, EntityInstanceId, TaskHubClient, TaskHubWorker
from durable_azstorage.azure.settings import AzureStorageSettings
from durable_azstorage.testing.eventually import eventually


def counter(ctx: EntityContext, amount: Any) -> None:
    ctx.set_state(ctx.get_state(int, 0) + amount)


@pytest.fixture
def entity_worker(
    azure_settings: AzureStorageSettings, client: TaskHubClient
) -> Iterator[TaskHubWorker]:
    client.create_task_hub()
    worker = TaskHubWorker(azure_settings)
    worker.add_entity(counter)
    worker.start()
    try:
        yield worker
    finally:
        worker.stop()


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"exit {result.returncode}: {result.stderr}"
    return result.stdout


def test_list_show_and_clean(
    entity_worker: TaskHubWorker, client: TaskHubClient, cli_env: dict[str, str]
) -> None:
    one, two = EntityInstanceId("counter", "one"), EntityInstanceId("counter", "two")
    client.signal_entity(one, "add", 5)
    client.signal_entity(two, "add", 7)
    for entity, value in ((one, 5), (two, 7)):
        eventually(
            lambda entity=entity: client.get_entity(entity),
            until=lambda e, value=value: e is not None and e.get_state() == value,
            timeout=60,
        )
    listed = json.loads(ok(invoke_cli("entities", "list", "--json", env=cli_env)))
    assert {(e["id"], e["state"]) for e in listed} == {("@counter@one", 5), ("@counter@two", 7)}
    table = ok(invoke_cli("entities", "list", "--prefix", "@counter@o", env=cli_env))
    assert "@counter@one" in table and "@counter@two" not in table
    shown = json.loads(ok(invoke_cli("entities", "show", "@counter@two", "--json", env=cli_env)))
    assert shown["state"] == 7 and shown["locked_by"] is None
    missing = invoke_cli("entities", "show", "@counter@nobody", env=cli_env)
    assert missing.returncode != 0 and "entity '@counter@nobody' not found" in missing.stderr
    bad = invoke_cli("entities", "show", "counter-without-at", env=cli_env)
    assert bad.returncode != 0 and "must have the form '@name@key'" in bad.stderr
    cleaned = json.loads(ok(invoke_cli("entities", "clean", "--json", env=cli_env)))
    assert cleaned == {"empty_entities_removed": 0, "orphaned_locks_released": 0}
