"""``serve --metrics-port --log-format json``: the sidecar's metrics in Prometheus format and
its log lines as JSON, from the real subprocess (helpers shared with test_serve_cli)."""

from __future__ import annotations

import json
import re
import signal
import urllib.request
import uuid
from pathlib import Path

from durabletask import task
from durabletask.client import OrchestrationStatus, TaskHubGrpcClient
from durabletask.worker import TaskHubGrpcWorker
from test_serve_cli import STARTUP, _env, _serving, _wait_for

from durable_azstorage.testing.azurite import Azurite
from durable_azstorage.testing.eventually import eventually


def shout(ctx: task.ActivityContext, text: str) -> str:
    return text.upper()


def loud(ctx: task.OrchestrationContext, text: str):  # type: ignore[no-untyped-def]
    return (yield ctx.call_activity(shout, input=text))


def test_serve_exposes_metrics_and_writes_json_logs(azurite: Azurite, tmp_path: Path) -> None:
    hub = f"obs{uuid.uuid4().hex[:10]}"
    log = tmp_path / "serve.log"
    with _serving(
        _env(azurite, hub),
        log,
        "--port",
        "0",
        "--create-hub",
        "--grace",
        "5",
        "--metrics-port",
        "0",  # the process picks a free port and names it: no race for a port chosen here
        "--log-format",
        "json",
    ) as process:
        address = f"127.0.0.1:{int(_wait_for(process, log, STARTUP).group(1))}"
        metrics_port = int(_wait_for(process, log, re.compile(r"metrics on port (\d+)")).group(1))
        client = TaskHubGrpcClient(host_address=address)
        worker = TaskHubGrpcWorker(host_address=address)
        worker.add_orchestrator(loud)
        worker.add_activity(shout)
        worker.start()
        try:
            iid = client.schedule_new_orchestration(loud, input="hi")
            state = client.wait_for_orchestration_completion(iid, timeout=60)
            assert state is not None and state.runtime_status is OrchestrationStatus.COMPLETED
        finally:
            worker.stop()
            client.close()

        def scrape() -> str:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{metrics_port}/metrics", timeout=10
            ) as r:
                return str(r.read().decode())

        text = eventually(
            scrape,
            until=lambda t: "durable_azstorage_partitions_owned{" in t,
            timeout=60,
            what="the hub gauges sampled",
        )
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
    completed = [
        line
        for line in text.splitlines()
        if line.startswith("durable_azstorage_activity_executions_total{")
        and 'name="shout"' in line
    ]
    assert (
        len(completed) == 1
        and 'outcome="completed"' in completed[0]
        and completed[0].endswith(" 1.0")
    )
    assert "durable_azstorage_orchestration_episodes_total{" in text
    assert 'owner="' in text and "durable_azstorage_control_queue_backlog{" in text
    records = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    assert records and all({"time", "level", "logger", "message"} <= set(r) for r in records)
    assert any(r.get("task_hub") == hub for r in records), records[:5]
