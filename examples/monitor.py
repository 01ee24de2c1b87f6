"""Monitor: poll a job's status on a durable timer, restarting the orchestration with
``continue_as_new`` each round so its history stays small however long it watches.

Run: python examples/monitor.py
"""

from __future__ import annotations

from collections.abc import Generator
from datetime import timedelta
from typing import Any

from durable_azstorage import ActivityContext, OrchestrationContext
from durable_azstorage.testing.local import local_runtime


def job_progress(ctx: ActivityContext, check: int) -> int:
    """Stands in for a call to an external system: progress grows by 25 % per check."""
    return min(100, 25 * check)


def monitor(ctx: OrchestrationContext, state: dict[str, int]) -> Generator[Any, Any, str | None]:
    check = state["check"] + 1
    progress = yield ctx.call_activity(job_progress, input=check)
    ctx.set_custom_status({"check": check, "progress": progress})
    if progress >= 100:
        return f"job finished after {check} checks"
    yield ctx.create_timer(timedelta(seconds=state["interval"]))
    ctx.continue_as_new({"check": check, "interval": state["interval"]})
    return None


def main() -> None:
    with local_runtime(
        task_hub="monitor", orchestrators=[monitor], activities=[job_progress]
    ) as client:
        instance_id = client.schedule_new_orchestration(monitor, input={"check": 0, "interval": 1})
        state = client.wait_for_orchestration_completion(instance_id, timeout=60)
        state.raise_if_failed()
        print(f"{instance_id}: {state.get_output()} (last status {state.get_custom_status()})")


if __name__ == "__main__":
    main()
