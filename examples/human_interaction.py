"""Human interaction: wait for an approval event, but give up after a timeout.

The orchestration races an external event against a durable timer with ``when_any``. The
example runs it twice: once approved in time, once left to time out.

Run: python examples/human_interaction.py
"""

from __future__ import annotations

from collections.abc import Generator
from datetime import timedelta
from typing import Any

from durable_azstorage import OrchestrationContext, when_any
from durable_azstorage.testing.local import local_runtime


def approval(ctx: OrchestrationContext, timeout_seconds: float) -> Generator[Any, Any, str]:
    ctx.set_custom_status("waiting for approval")
    decision = ctx.wait_for_external_event("Approval")
    deadline = ctx.create_timer(timedelta(seconds=timeout_seconds))
    winner = yield when_any([decision, deadline])
    if winner is decision:
        deadline.cancel()
        return f"approved by {decision.get_result()}"
    return "timed out: escalated to a manager"


def main() -> None:
    with local_runtime(task_hub="approvals", orchestrators=[approval]) as client:
        approved = client.schedule_new_orchestration(approval, input=30)
        client.wait_for_orchestration_start(approved, timeout=60)
        client.raise_orchestration_event(approved, "Approval", data="alice")
        timed_out = client.schedule_new_orchestration(approval, input=2)
        for instance_id in (approved, timed_out):
            state = client.wait_for_orchestration_completion(instance_id, timeout=60)
            state.raise_if_failed()
            print(f"{instance_id}: {state.get_output()}")


if __name__ == "__main__":
    main()
