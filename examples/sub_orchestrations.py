"""Sub-orchestrations: a parent provisions several devices, each by its own child orchestration.

Each child is a full orchestration instance (own history, own id: ``{parent}:{seq}``); the
parent waits for all of them with ``when_all``.

Run: python examples/sub_orchestrations.py
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from durable_azstorage import ActivityContext, OrchestrationContext, when_all
from durable_azstorage.testing.local import local_runtime


def register_device(ctx: ActivityContext, device: str) -> str:
    return f"{device}-key"


def activate_device(ctx: ActivityContext, key: str) -> str:
    return f"{key}:active"


def provision_device(ctx: OrchestrationContext, device: str) -> Generator[Any, Any, str]:
    key = yield ctx.call_activity(register_device, input=device)
    return (yield ctx.call_activity(activate_device, input=key))


def provision_fleet(
    ctx: OrchestrationContext, devices: list[str]
) -> Generator[Any, Any, list[str]]:
    children = [ctx.call_sub_orchestrator(provision_device, input=d) for d in devices]
    return (yield when_all(children))


def main() -> None:
    with local_runtime(
        task_hub="suborchestrations",
        orchestrators=[provision_fleet, provision_device],
        activities=[register_device, activate_device],
    ) as client:
        instance_id = client.schedule_new_orchestration(
            provision_fleet, input=["thermostat", "doorbell", "camera"]
        )
        state = client.wait_for_orchestration_completion(instance_id, timeout=60)
        state.raise_if_failed()
        print(f"{instance_id}: {state.get_output()}")


if __name__ == "__main__":
    main()
