"""Without the ``otel`` extra: nothing imports OpenTelemetry, orchestrations run as before,
and ``--metrics-port`` says which extra to install.

Runs in a fresh interpreter whose import system refuses every ``opentelemetry`` module, as
if the packages were not installed.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import importlib.abc, sys

    class NoOpenTelemetry(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "opentelemetry" or name.startswith("opentelemetry."):
                raise ImportError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, NoOpenTelemetry())

    from durable_azstorage import InMemoryBackend, TaskHubClient, TaskHubWorker
    from durable_azstorage.telemetry import otel
    from durable_azstorage.telemetry.prometheus import MetricsUnavailable, start_prometheus_endpoint

    def double(ctx, x):
        return 2 * x

    def orchestrator(ctx, x):
        return (yield ctx.call_activity(double, input=x))

    backend = InMemoryBackend()
    worker = TaskHubWorker(backend=backend)
    worker.add_orchestrator(orchestrator)
    worker.add_activity(double)
    with worker, TaskHubClient(backend=backend) as client:
        worker.start()
        iid = client.schedule_new_orchestration(orchestrator, input=21)
        print("output", client.wait_for_orchestration_completion(iid, timeout=30).get_output())
        print("context", client.get_orchestration_history(iid)[1].trace_context)
    print("available", otel.AVAILABLE)
    print("imported", sorted(m for m in sys.modules if m.startswith("opentelemetry")))
    try:
        start_prometheus_endpoint(0)
    except MetricsUnavailable as exc:
        print("metrics", exc)
    """
)


def test_everything_runs_and_nothing_imports_opentelemetry_without_the_extra() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    lines = dict(line.split(" ", 1) for line in done.stdout.splitlines())
    assert lines["output"] == "42"
    assert lines["context"] == "None"  # untraced: no trace context stored
    assert lines["available"] == "False"
    assert lines["imported"] == "[]"
    assert 'the "otel" extra: pip install "durable-azstorage[otel]"' in lines["metrics"]
