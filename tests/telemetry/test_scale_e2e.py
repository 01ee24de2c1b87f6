"""Scale advice from real queues: a backlogged and an idle hub on Azurite, the in-memory
backend's samples, and ``durable-azstorage hub scale --json``."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from durable_azstorage import InMemoryBackend, ScaleAction, TaskHubClient
from durable_azstorage.azure.settings import AzureStorageSettings
from durable_azstorage.backend.clock import FakeClock
from durable_azstorage.model.history import ExecutionStarted, OrchestrationInstance
from durable_azstorage.model.messages import TaskMessage

INSTANCES = 12


def _backlog(client: TaskHubClient) -> None:
    for i in range(INSTANCES):
        client.schedule_new_orchestration("nobody_runs_this", instance_id=f"backlog-{i}")


def test_a_backlogged_hub_asks_for_workers_up_to_its_partitions(hub: AzureStorageSettings) -> None:
    with TaskHubClient(hub) as client:
        _backlog(client)
        first = client.get_scale_recommendation(0, sample_interval=0.2)
        assert first.action is ScaleAction.ADD_WORKER and "first worker" in first.reason
        # Samples are kept: after them, each call adds one. Messages wait longer than 300 ms.
        more = client.get_scale_recommendation(1, sample_interval=0.2)
        latest = client.scale_advisor.latest
        assert latest is not None and all(
            p.messages > 0 for p in latest.partitions
        )  # both partitions busy
        assert more.action is ScaleAction.ADD_WORKER, more
        assert "2 busy partitions, 1 workers" in more.reason
        assert more.keep_workers_alive
        enough = client.get_scale_recommendation(2, sample_interval=0.2)
        assert enough.action is ScaleAction.NONE and enough.reason == "queue latencies are healthy"


def test_an_idle_hub_lets_the_workers_go(hub: AzureStorageSettings) -> None:
    with TaskHubClient(hub) as client:
        advice = client.get_scale_recommendation(2, sample_interval=0.05)
    assert advice.action is ScaleAction.REMOVE_WORKER
    assert not advice.keep_workers_alive and advice.reason == "task hub is idle"


def test_hub_scale_cli_prints_the_advice_as_json(hub: AzureStorageSettings) -> None:
    with TaskHubClient(hub) as client:
        _backlog(client)
    env = {
        "PATH": "/usr/bin:/bin",
        "DURABLE_AZSTORAGE_CONNECTION_STRING": hub.connection_string or "",
        "DURABLE_AZSTORAGE_TASK_HUB": hub.task_hub,
    }
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "durable_azstorage",
            "hub",
            "scale",
            "--workers",
            "0",
            "--sample-interval",
            "0.1",
            "--json",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["action"] == "add" and doc["current_workers"] == 0
    assert doc["partition_count"] == 2 and sum(doc["control_queue_lengths"]) == INSTANCES
    assert len(doc["control_queue_latencies_ms"]) == 2
    assert all(len(h) == 5 for h in doc["control_queue_latencies_ms"])
    bad = subprocess.run(
        [sys.executable, "-m", "durable_azstorage", "hub", "scale", "--workers", "-1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert bad.returncode == 2 and "--workers" in bad.stderr


async def test_the_in_memory_backend_samples_its_queues_like_azure() -> None:
    clock = FakeClock()
    backend = InMemoryBackend(clock=clock)
    await backend.create_task_hub()
    empty = await backend.sample_queues()
    assert empty.partitions[0].messages == 0 and empty.partitions[0].oldest_message_age is None
    for i in range(3):
        instance = OrchestrationInstance(instance_id=f"i{i}", execution_id=f"e{i}")
        started = ExecutionStarted(timestamp=clock.now(), name="o", instance=instance)
        await backend.create_instance(TaskMessage(instance=instance, event=started))
    clock.advance(2.5)
    sample = await backend.sample_queues()
    assert sample.partitions[0].messages == 3
    assert sample.partitions[0].oldest_message_age == pytest.approx(2.5)
    assert sample.work_items == 0 and sample.work_item_age is None
