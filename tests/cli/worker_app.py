"""A tiny user app for ``durable-azstorage worker --app worker_app:...`` in the CLI tests.

It builds its settings from the environment, as the ``worker`` command documents.
"""

from __future__ import annotations

from typing import Any

from durable_azstorage import (
    ActivityContext,
    AzureStorageSettings,
    OrchestrationContext,
    TaskHubWorker,
)


def greet(ctx: ActivityContext, name: str) -> str:
    return f"Hello, {name}!"


def hello(ctx: OrchestrationContext, name: str):  # type: ignore[no-untyped-def]
    return (yield ctx.call_activity(greet, input=name))


def family(ctx: OrchestrationContext, names: list[str]):  # type: ignore[no-untyped-def]
    """Starts one ``hello`` sub-orchestration per name (for recursive purge)."""
    results = []
    for name in names:
        results.append((yield ctx.call_sub_orchestrator(hello, input=name)))
    return results


def approval(ctx: OrchestrationContext, _: Any):  # type: ignore[no-untyped-def]
    """Waits for the ``approve`` event and returns its data."""
    return (yield ctx.wait_for_external_event("approve"))


def counted(ctx: OrchestrationContext, n: int) -> int | None:
    """Continues as new until 2 (for the histories of earlier executions)."""
    if n < 2:
        ctx.continue_as_new(n + 1)
        return None
    return n


def broken(ctx: OrchestrationContext, _: Any) -> None:
    raise ValueError("the ledger does not balance")


def create_worker() -> TaskHubWorker:
    worker = TaskHubWorker(AzureStorageSettings.from_env())
    for orchestrator in (hello, family, approval, broken, counted):
        worker.add_orchestrator(orchestrator)
    worker.add_activity(greet)
    return worker


NOT_A_WORKER = 42


worker = create_worker()  # the instance form: `--app worker_app:worker`
