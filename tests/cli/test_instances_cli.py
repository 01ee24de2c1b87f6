"""``durable-azstorage instances ...`` against Azurite.

Most commands run in this process (``invoke_cli``: a new process per command would cost a
second of CPU each); exit codes, the automatic Azurite and the connection option go through
the real entry point in a new process (``run_cli``).

Instances run on a real ``worker --app worker_app:create_worker`` subprocess where they need to
make progress; the test's ``TaskHubClient`` only waits for them.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from cli_support import clean_env, invoke_cli, run_cli, run_cli_on_terminal

from durable_azstorage import OrchestrationStatus, TaskHubClient
from durable_azstorage.testing.azurite import Azurite
from durable_azstorage.testing.eventually import eventually


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"exit {result.returncode}: {result.stderr}"
    assert "Traceback" not in result.stderr
    return result.stdout


def one_line_error(result: subprocess.CompletedProcess[str], code: int) -> str:
    """The stderr of a failed command: exactly one ``error: ...`` line, no traceback."""
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def one_line_error_after_prompt(result: subprocess.CompletedProcess[str], code: int) -> str:
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    return result.stderr.strip().splitlines()[-1]


def test_start_show_history_list_and_purge(
    cli_worker: subprocess.Popen[bytes], cli_env: dict[str, str], client: TaskHubClient
) -> None:
    assert ok(
        invoke_cli(
            "instances",
            "start",
            "--name",
            "hello",
            "--input",
            '"Tokyo"',
            "--instance-id",
            "greet-1",
            "--tag",
            "team=ops",
            env=cli_env,
        )
    ).strip() == ("greet-1")
    started = json.loads(
        ok(
            invoke_cli(
                "instances", "start", "-n", "family", "-i", '["a", "b"]', "--json", env=cli_env
            )
        )
    )
    family_id = started["instance_id"]
    waited = json.loads(
        ok(invoke_cli("instances", "wait", family_id, "--timeout", "120", "--json", env=cli_env))
    )
    assert waited["runtime_status"] == "Completed"
    assert waited["output"] == ["Hello, a!", "Hello, b!"]
    client.wait_for_orchestration_completion("greet-1", timeout=120).raise_if_failed()

    shown = json.loads(ok(invoke_cli("instances", "show", "greet-1", "--json", env=cli_env)))
    assert shown["runtime_status"] == "Completed"
    assert (shown["input"], shown["output"]) == ("Tokyo", "Hello, Tokyo!")
    assert shown["name"] == "hello" and shown["completed_at"] is not None
    assert shown["tags"] == {"team": "ops"}
    table = ok(invoke_cli("instances", "show", "greet-1", env=cli_env))
    assert "Completed" in table and '"Hello, Tokyo!"' in table

    events = json.loads(ok(invoke_cli("instances", "history", "greet-1", "--json", env=cli_env)))
    kinds = [e["type"] for e in events]
    for kind in ("ExecutionStarted", "TaskScheduled", "TaskCompleted", "ExecutionCompleted"):
        assert kind in kinds
    completed = next(e for e in events if e["type"] == "TaskCompleted")
    assert completed["result"] == "Hello, Tokyo!"
    assert "TaskCompleted" in ok(invoke_cli("instances", "history", "greet-1", env=cli_env))

    listed = json.loads(ok(invoke_cli("instances", "list", "--json", env=cli_env)))
    ids = sorted(item["instance_id"] for item in listed["items"])
    assert ids == sorted(["greet-1", family_id, f"{family_id}:0000", f"{family_id}:0001"])
    assert listed["continuation_token"] is None
    assert {item["runtime_status"] for item in listed["items"]} == {"Completed"}

    purged = json.loads(
        ok(invoke_cli("instances", "purge", family_id, "--yes", "--json", env=cli_env))
    )
    assert purged == {"deleted_instance_count": 3, "is_complete": True}  # recursive
    declined = run_cli_on_terminal("instances", "purge", "greet-1", env=cli_env, answer="n\n")
    assert "purge greet-1 (hello, Completed)" in declined.stderr  # the question, on stderr
    assert "aborted, nothing changed" in one_line_error_after_prompt(declined, 1)
    assert client.get_orchestration_state("greet-1") is not None
    accepted = run_cli_on_terminal("instances", "purge", "greet-1", env=cli_env, answer="y\n")
    assert ok(accepted).strip() == "purged 1 instance(s)"
    assert json.loads(ok(invoke_cli("instances", "list", "--json", env=cli_env)))["items"] == []
    gone = invoke_cli("instances", "show", "greet-1", env=cli_env)
    assert "'greet-1' was not found" in one_line_error(gone, 3)


def test_suspend_resume_raise_and_terminate(
    cli_worker: subprocess.Popen[bytes], cli_env: dict[str, str], client: TaskHubClient
) -> None:
    for instance_id in ("approve-1", "approve-2"):
        ok(
            invoke_cli(
                "instances", "start", "-n", "approval", "--instance-id", instance_id, env=cli_env
            )
        )
        client.wait_for_orchestration_start(instance_id, timeout=120)

    ok(invoke_cli("instances", "suspend", "approve-1", "--reason", "on hold", env=cli_env))
    _wait_status(client, "approve-1", OrchestrationStatus.SUSPENDED)
    shown = json.loads(ok(invoke_cli("instances", "show", "approve-1", "--json", env=cli_env)))
    assert shown["runtime_status"] == "Suspended"
    suspended = json.loads(
        ok(invoke_cli("instances", "history", "approve-1", "--json", env=cli_env))
    )
    assert any(e["type"] == "ExecutionSuspended" and e["reason"] == "on hold" for e in suspended)

    ok(invoke_cli("instances", "resume", "approve-1", "--reason", "go", env=cli_env))
    _wait_status(client, "approve-1", OrchestrationStatus.RUNNING)
    out = ok(
        invoke_cli(
            "instances",
            "raise",
            "approve-1",
            "--event",
            "approve",
            "--data",
            '{"ok": true, "by": "ops"}',
            env=cli_env,
        )
    )
    assert "approve" in out
    state = client.wait_for_orchestration_completion("approve-1", timeout=120)
    assert state.runtime_status is OrchestrationStatus.COMPLETED
    assert state.get_output() == {"ok": True, "by": "ops"}

    ok(
        invoke_cli(
            "instances",
            "terminate",
            "approve-2",
            "--reason",
            "no longer needed",
            "--yes",
            env=cli_env,
        )
    )
    state = client.wait_for_orchestration_completion("approve-2", timeout=120)
    assert state.runtime_status is OrchestrationStatus.TERMINATED
    shown = json.loads(ok(invoke_cli("instances", "show", "approve-2", "--json", env=cli_env)))
    assert (shown["runtime_status"], shown["output"]) == ("Terminated", "no longer needed")


def test_show_reports_failures(
    cli_worker: subprocess.Popen[bytes], cli_env: dict[str, str], client: TaskHubClient
) -> None:
    ok(invoke_cli("instances", "start", "-n", "broken", "--instance-id", "b-1", env=cli_env))
    waited = invoke_cli("instances", "wait", "b-1", "--timeout", "120", "--json", env=cli_env)
    assert one_line_error(waited, 1) == "error: b-1 ended Failed"
    assert json.loads(waited.stdout)["runtime_status"] == "Failed"  # the state is still shown
    shown = json.loads(ok(invoke_cli("instances", "show", "b-1", "--json", env=cli_env)))
    assert shown["runtime_status"] == "Failed"
    assert shown["failure_details"]["error_type"] == "builtins.ValueError"
    assert shown["failure_details"]["message"] == "the ledger does not balance"
    table = ok(invoke_cli("instances", "show", "b-1", env=cli_env))
    assert "builtins.ValueError: the ledger does not balance" in table


def _wait_status(client: TaskHubClient, instance_id: str, status: OrchestrationStatus) -> None:
    eventually(
        lambda: client.get_orchestration_state(instance_id, fetch_payloads=False),
        until=lambda state: state is not None and state.runtime_status is status,
        timeout=120,
        interval=0.2,
        what=f"{instance_id} to become {status.value}",
    )


@pytest.fixture
def pending_instances(cli_env: dict[str, str], client: TaskHubClient) -> list[str]:
    """Five ``batch-N`` and two ``other-N`` instances, Pending (no worker runs)."""
    client.create_task_hub()
    ids = [f"batch-{i}" for i in range(5)] + [f"other-{i}" for i in range(2)]
    for instance_id in ids:
        client.schedule_new_orchestration("hello", input=instance_id, instance_id=instance_id)
    return ids


def test_list_filters_and_pages(pending_instances: list[str], cli_env: dict[str, str]) -> None:
    def listed(*args: str) -> dict[str, Any]:
        page: dict[str, Any] = json.loads(
            ok(invoke_cli("instances", "list", "--json", *args, env=cli_env))
        )
        return page

    seen: list[str] = []
    token: str | None = None
    pages = 0
    while True:
        extra = ("--continuation-token", token) if token else ()
        page = listed("--prefix", "batch-", "--page-size", "2", *extra)
        items = page["items"]
        assert isinstance(items, list) and len(items) <= 2
        seen += [item["instance_id"] for item in items]
        pages += 1
        token = page["continuation_token"]
        if token is None:
            break
        assert isinstance(token, str) and pages < 10
    assert sorted(seen) == [f"batch-{i}" for i in range(5)]  # each exactly once
    assert pages >= 3

    everything = listed("--prefix", "batch-", "--page-size", "2", "--all")
    assert len(everything["items"]) == 5 and everything["continuation_token"] is None

    assert len(listed("--status", "Pending,Running")["items"]) == 7
    assert listed("-s", "completed", "-s", "FAILED")["items"] == []
    now = datetime.now(timezone.utc)
    assert listed("--created-from", (now + timedelta(hours=1)).isoformat())["items"] == []
    assert listed("--created-to", "2020-01-01T00:00:00Z")["items"] == []
    assert (
        len(
            listed(
                "--created-from",
                (now - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S"),
                "--prefix",
                "other-",
            )["items"]
        )
        == 2
    )
    with_payloads = listed("--prefix", "other-0", "--payloads")
    assert with_payloads["items"][0]["input"] == "other-0"

    table = invoke_cli("instances", "list", "--prefix", "other-", env=cli_env)
    assert "other-0" in ok(table) and "other-1" in table.stdout and "Pending" in table.stdout
    assert "2 instance(s)" in table.stderr
    paged = invoke_cli("instances", "list", "--page-size", "3", env=cli_env)
    assert re.search(r"more: --continuation-token \S+", paged.stderr), paged.stderr


def test_usage_errors_name_the_option(
    pending_instances: list[str], cli_env: dict[str, str]
) -> None:
    cases = [
        (("list", "--status", "bogus"), "--status"),
        (("list", "--created-from", "yesterday"), "--created-from"),
        (("list", "--all", "--continuation-token", "abc"), "--continuation-token"),
        (("start", "--name", "hello", "--input", "not json"), "--input"),
        (("start", "--name", "hello", "--start-at", "soon"), "--start-at"),
        (("raise", "batch-0", "--event", "approve", "--data", "{bad"), "--data"),
    ]
    for args, option in cases:
        line = one_line_error(invoke_cli("instances", *args, env=cli_env), 2)
        assert option in line, (args, line)
    bad_hub = invoke_cli("instances", "list", "--task-hub", "1nvalid", env=cli_env)
    assert "task_hub" in one_line_error(bad_hub, 2)


def test_history_of_earlier_executions(
    cli_worker: subprocess.Popen[bytes], cli_env: dict[str, str], client: TaskHubClient
) -> None:
    client.schedule_new_orchestration("counted", input=0, instance_id="counted-1")
    client.wait_for_orchestration_completion("counted-1", timeout=120).raise_if_failed()
    ids = json.loads(
        ok(run_cli("instances", "history", "counted-1", "--executions", "--json", env=cli_env))
    )
    assert len(ids) == 3  # generations 0 and 1 continued as new; 2 completed
    assert (
        ok(run_cli("instances", "history", "counted-1", "--executions", env=cli_env)).split() == ids
    )
    first = json.loads(
        ok(
            run_cli(
                "instances", "history", "counted-1", "--execution-id", ids[0], "--json", env=cli_env
            )
        )
    )
    started = next(e for e in first if e["type"] == "ExecutionStarted")
    ended = next(e for e in first if e["type"] == "ExecutionCompleted")
    assert (started["input"], ended["status"], ended["result"]) == (0, "ContinuedAsNew", 1)
    unknown = run_cli(
        "instances", "history", "counted-1", "--execution-id", "not-kept", env=cli_env
    )
    assert "'not-kept' of orchestration 'counted-1' is not kept" in one_line_error(unknown, 1)


def test_unknown_instances_exit_3_with_one_line(
    pending_instances: list[str], cli_env: dict[str, str], hub_name: str
) -> None:
    commands = [
        ("show", "nope-1"),
        ("wait", "nope-1"),
        ("history", "nope-1"),
        ("raise", "nope-1", "--event", "approve"),
        ("terminate", "nope-1", "--yes"),
        ("suspend", "nope-1"),
        ("resume", "nope-1"),
        ("purge", "nope-1", "--yes"),
    ]
    for args in commands:
        line = one_line_error(invoke_cli("instances", *args, env=cli_env), 3)
        assert "'nope-1' was not found" in line and hub_name in line, (args, line)

    # Through the real entry point: the process's exit status and stderr say the same.
    debug = run_cli("instances", "show", "nope-1", "--debug", env=cli_env)
    assert debug.returncode == 3 and "Traceback" in debug.stderr

    missing_hub = run_cli("instances", "list", "--task-hub", "nosuchhub", env=cli_env)
    line = one_line_error(missing_hub, 3)
    assert "task hub 'nosuchhub' does not exist" in line and "hub create" in line


def test_destructive_operations_refuse_without_yes_and_terminal(
    pending_instances: list[str], cli_env: dict[str, str], client: TaskHubClient
) -> None:
    for command in ("purge", "terminate"):
        refused = invoke_cli("instances", command, "batch-0", env=cli_env)  # stdin: /dev/null
        line = one_line_error(refused, 2)
        assert "--yes" in line and "not a terminal" in line
    state = client.get_orchestration_state("batch-0")
    assert state is not None and state.runtime_status is OrchestrationStatus.PENDING

    timed_out = invoke_cli("instances", "wait", "batch-0", "--timeout", "0.5", env=cli_env)
    assert "did not complete within 0.5s (last status: Pending)" in one_line_error_after_prompt(
        timed_out, 1
    )

    running = invoke_cli("instances", "purge", "batch-0", "--yes", env=cli_env)
    assert "cannot purge" in one_line_error(running, 1)  # not ended: refused, kept
    assert client.get_orchestration_state("batch-0") is not None


@pytest.mark.azurite  # starts an Azurite of its own
def test_no_connection_starts_a_temporary_azurite_and_stops_it() -> None:
    env = clean_env()
    result = run_cli("instances", "list", "--task-hub", "demo", env=env)
    assert "starting a temporary local Azurite" in result.stderr
    match = re.search(r"local Azurite running \(pid (\d+)\)", result.stderr)
    assert match, result.stderr
    # A fresh Azurite is empty: the hub does not exist there.
    assert result.returncode == 3 and "task hub 'demo' does not exist" in result.stderr
    assert "Traceback" not in result.stderr
    with pytest.raises(ProcessLookupError):
        os.kill(int(match.group(1)), 0)


def test_connection_string_option_wins_and_is_never_echoed(
    pending_instances: list[str], azurite: Azurite, hub_name: str
) -> None:
    env = {**clean_env(), "DURABLE_AZSTORAGE_CONNECTION_STRING": "AccountName=x;AccountKey=eA=="}
    listed = run_cli(
        "instances",
        "list",
        "--json",
        "--prefix",
        "other-",
        "-t",
        hub_name,
        "--connection-string",
        azurite.connection_string,
        env=env,
    )
    assert len(json.loads(ok(listed))["items"]) == 2
    assert "Azurite" not in listed.stderr  # nothing started: the option named the account

    bad = run_cli(
        "instances", "list", "-c", "AccountName=a;SUPERSECRET", "-t", hub_name, env=clean_env()
    )
    line = one_line_error(bad, 2)
    assert "connection_string" in line and "SUPERSECRET" not in bad.stderr


def test_show_returns_large_payloads_not_blob_references(
    pending_instances: list[str], cli_env: dict[str, str]
) -> None:
    big = "x" * 70_000  # above the 60 KiB table-property threshold: stored in a blob
    ok(
        invoke_cli(
            "instances",
            "start",
            "-n",
            "hello",
            "--input",
            json.dumps(big),
            "--instance-id",
            "big-1",
            env=cli_env,
        )
    )
    shown = json.loads(ok(invoke_cli("instances", "show", "big-1", "--json", env=cli_env)))
    assert shown["input"] == big
    listed = json.loads(
        ok(invoke_cli("instances", "list", "--prefix", "big-", "--payloads", "--json", env=cli_env))
    )
    assert listed["items"][0]["input"] == big
