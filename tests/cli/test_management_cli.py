"""``instances counts|purge (by filter)|restart|rewind|stale`` and ``poison list|show|replay|
delete`` against Azurite with a real ``worker --app`` process running; the commands run in
this process (``invoke_cli``), the entry point itself is tested by ``run_cli`` elsewhere."""

from __future__ import annotations

import json
import subprocess
from typing import Any

from azure.data.tables import TableClient, UpdateMode
from azure.storage.queue import QueueClient
from cli_support import invoke_cli

from durable_azstorage import OrchestrationStatus, TaskHubClient
from durable_azstorage.azure.storage.naming import TaskHubNames, control_queue_name, escape_key
from durable_azstorage.testing.eventually import eventually

S = OrchestrationStatus


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"exit {result.returncode}: {result.stderr}"
    assert "Traceback" not in result.stderr
    return result.stdout


def error(result: subprocess.CompletedProcess[str], code: int) -> str:
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert lines and lines[-1].startswith("error: ") and "Traceback" not in result.stderr
    return lines[-1]


def cli_json(*args: str, env: dict[str, str]) -> Any:
    return json.loads(ok(invoke_cli(*args, "--json", env=env)))


def started(client: TaskHubClient, name: str, iid: str, data: Any = None) -> str:
    return client.schedule_new_orchestration(name, input=data, instance_id=iid)


def test_counts_and_purge_by_filter(
    cli_worker: subprocess.Popen[bytes], cli_env: dict[str, str], client: TaskHubClient
) -> None:
    for i in range(3):
        started(client, "hello", f"h-{i}", str(i))
    started(client, "broken", "b-0")
    started(client, "approval", "a-0")
    for iid in ("h-0", "h-1", "h-2", "b-0"):
        client.wait_for_orchestration_completion(iid, timeout=120)
    client.wait_for_orchestration_start("a-0", timeout=120)

    counts = cli_json("instances", "counts", env=cli_env)
    assert (counts["Completed"], counts["Failed"], counts["Running"], counts["total"]) == (
        3,
        1,
        1,
        5,
    )
    assert cli_json("instances", "counts", "--status", "failed,running", env=cli_env) == {
        "Failed": 1,
        "Running": 1,
        "total": 2,
    }
    table = ok(invoke_cli("instances", "counts", env=cli_env))
    assert "Completed" in table and "total" in table

    refused = error(
        invoke_cli("instances", "purge", "--status", "Completed,Running", "--yes", env=cli_env), 2
    )
    assert "Running" in refused and "only ended statuses" in refused
    assert "needs runtime_status" in error(
        invoke_cli("instances", "purge", "--created-from", "2020-01-01", "--yes", env=cli_env), 2
    )
    assert "--yes" in error(
        invoke_cli("instances", "purge", "--status", "Completed", env=cli_env), 2
    )
    assert "not both" in error(
        invoke_cli("instances", "purge", "h-0", "--status", "Completed", "--yes", env=cli_env), 2
    )

    # --timeout 0: nothing purged, exit 1 saying to run again; running again finishes.
    unfinished = invoke_cli(
        "instances",
        "purge",
        "--status",
        "Completed",
        "--timeout",
        "0",
        "--yes",
        "--json",
        env=cli_env,
    )
    assert json.loads(unfinished.stdout) == {"deleted_instance_count": 0, "is_complete": False}
    assert "run the same command again" in error(unfinished, 1)
    done = cli_json(
        "instances", "purge", "--status", "Completed", "--status", "Failed", "--yes", env=cli_env
    )
    assert done == {"deleted_instance_count": 4, "is_complete": True}
    again = ok(invoke_cli("instances", "purge", "-s", "Completed", "--yes", env=cli_env))
    assert again.strip() == "purged 0 instance(s)"
    counts = cli_json("instances", "counts", env=cli_env)
    assert (counts["Completed"], counts["Failed"], counts["Running"]) == (0, 0, 1)


def test_restart_and_rewind(
    cli_worker: subprocess.Popen[bytes], cli_env: dict[str, str], client: TaskHubClient
) -> None:
    started(client, "hello", "r-1", "Oslo")
    started(client, "broken", "r-bad")
    started(client, "approval", "r-live")
    client.wait_for_orchestration_completion("r-1", timeout=120)
    client.wait_for_orchestration_completion("r-bad", timeout=120)
    client.wait_for_orchestration_start("r-live", timeout=120)

    assert cli_json("instances", "restart", "r-1", env=cli_env) == {"instance_id": "r-1"}
    assert (
        client.wait_for_orchestration_completion("r-1", timeout=120).get_output() == "Hello, Oslo!"
    )
    other = ok(invoke_cli("instances", "restart", "r-1", "--new-id", env=cli_env)).strip()
    assert other != "r-1"
    assert (
        client.wait_for_orchestration_completion(other, timeout=120).get_output() == "Hello, Oslo!"
    )
    assert "nope" in error(invoke_cli("instances", "restart", "nope", env=cli_env), 3)
    assert "only ended" in error(invoke_cli("instances", "restart", "r-live", env=cli_env), 1)

    # ``broken`` always raises: the rewind runs it again and it fails again.
    out = ok(invoke_cli("instances", "rewind", "r-bad", "--reason", "try again", env=cli_env))
    assert out.strip() == "rewind of r-bad requested"
    state = client.wait_for_orchestration_completion("r-bad", timeout=120)
    assert state.runtime_status is S.FAILED
    history = client.get_orchestration_history("r-bad")
    assert any(getattr(e, "data", None) == "rewind: try again" for e in history)
    assert "only Failed" in error(invoke_cli("instances", "rewind", "r-live", env=cli_env), 1)
    assert "ghost" in error(invoke_cli("instances", "rewind", "ghost", env=cli_env), 3)


def test_stale_listing_and_repair(
    cli_worker: subprocess.Popen[bytes], cli_env: dict[str, str], client: TaskHubClient
) -> None:
    started(client, "hello", "s-1", "Rome")
    client.wait_for_orchestration_completion("s-1", timeout=120)
    assert cli_json("instances", "stale", env=cli_env) == {"stale": [], "repaired": []}

    conn = cli_env["DURABLE_AZSTORAGE_CONNECTION_STRING"]
    names = TaskHubNames(cli_env["DURABLE_AZSTORAGE_TASK_HUB"], 4)
    with TableClient.from_connection_string(conn, names.instances_table) as table:
        table.update_entity(
            {"PartitionKey": escape_key("s-1"), "RowKey": "", "RuntimeStatus": "Running"},
            mode=UpdateMode.MERGE,
        )

    listed = cli_json("instances", "stale", env=cli_env)
    assert [(s["instance_id"], s["problem"], s["repairable"]) for s in listed["stale"]] == [
        ("s-1", "status", True)
    ]
    repaired = cli_json("instances", "stale", "--repair", env=cli_env)
    assert repaired["repaired"] == ["s-1"]
    state = client.get_orchestration_state("s-1")
    assert state is not None and state.runtime_status is S.COMPLETED
    assert cli_json("instances", "stale", env=cli_env)["stale"] == []


def test_poison_list_show_replay_delete(
    cli_worker: subprocess.Popen[bytes], cli_env: dict[str, str]
) -> None:
    conn = cli_env["DURABLE_AZSTORAGE_CONNECTION_STRING"]
    hub = cli_env["DURABLE_AZSTORAGE_TASK_HUB"]
    with QueueClient.from_connection_string(conn, control_queue_name(hub, 0)) as queue:
        queue.send_message("this is not a task message")

    records = poll_poison(cli_env, 1)
    key = records[0]["key"]
    assert key.startswith(control_queue_name(hub, 0) + "/")
    assert "cannot decode" in records[0]["reason"]
    shown = cli_json("poison", "show", key, env=cli_env)
    assert shown["body"] == "this is not a task message" and shown["key"] == key
    assert key in ok(invoke_cli("poison", "list", env=cli_env))

    # Replayed, it is still undecodable: the worker quarantines it again under the same key
    # (keys name the queue message id, which the replay changes).
    assert ok(invoke_cli("poison", "replay", key, env=cli_env)).strip() == f"replayed {key}"
    replayed = poll_poison(cli_env, 1, other_than=key)
    new_key = replayed[0]["key"]

    assert "--yes" in error(invoke_cli("poison", "delete", new_key, env=cli_env), 2)
    assert ok(invoke_cli("poison", "delete", new_key, "--yes", env=cli_env)).strip() == (
        f"deleted {new_key}"
    )
    assert cli_json("poison", "list", env=cli_env) == []
    assert "no poison message" in error(
        invoke_cli("poison", "delete", new_key, "--yes", env=cli_env), 3
    )
    assert "no poison message" in error(invoke_cli("poison", "show", "q/none", env=cli_env), 3)
    assert "no poison message" in error(invoke_cli("poison", "replay", "q/none", env=cli_env), 3)


def poll_poison(env: dict[str, str], count: int, *, other_than: str | None = None) -> list[Any]:
    records: list[Any] = eventually(
        lambda: [r for r in cli_json("poison", "list", env=env) if r["key"] != other_than],
        until=lambda records: len(records) >= count,
        timeout=120,
        interval=1,
        what=f"{count} poison message(s) listed",
    )
    return records
