"""Function chaining: one orchestration calls an activity three times, in order.

Run: python examples/hello_cities.py
With no storage account configured (DURABLE_AZSTORAGE_CONNECTION_STRING), a local Azurite is
started for the run and stopped afterwards.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from durable_azstorage import ActivityContext, OrchestrationContext
from durable_azstorage.testing.local import local_runtime


def say_hello(ctx: ActivityContext, city: str) -> str:
    return f"Hello, {city}!"


def hello_cities(ctx: OrchestrationContext, _: None) -> Generator[Any, Any, list[str]]:
    greetings = []
    for city in ("Tokyo", "Seattle", "London"):
        greetings.append((yield ctx.call_activity(say_hello, input=city)))
    return greetings


def main() -> None:
    with local_runtime(
        task_hub="hellocities", orchestrators=[hello_cities], activities=[say_hello]
    ) as client:
        instance_id = client.schedule_new_orchestration(hello_cities)
        state = client.wait_for_orchestration_completion(instance_id, timeout=60)
        state.raise_if_failed()
        print(f"{instance_id}: {state.runtime_status.value}: {state.get_output()}")


if __name__ == "__main__":
    main()
