"""Error handling: retry a flaky activity durably, and compensate when a step fails for good.

``book_flight`` fails twice before it succeeds; a ``RetryPolicy`` retries it (the waits are
durable timers, so a worker restart does not lose them). ``book_car`` always fails, so after
its retries run out the orchestration catches ``TaskFailedError`` and cancels the flight.

Run: python examples/error_handling.py
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Generator
from datetime import timedelta
from typing import Any

from durable_azstorage import (
    ActivityContext,
    OrchestrationContext,
    RetryPolicy,
    TaskFailedError,
)
from durable_azstorage.testing.local import local_runtime

RETRY = RetryPolicy(
    first_retry_interval=timedelta(seconds=0.5), max_number_of_attempts=3, backoff_coefficient=2.0
)
_flight_calls: Counter[str] = Counter()  # simulates a flaky API (the worker runs in-process)


def book_flight(ctx: ActivityContext, city: str) -> str:
    _flight_calls[city] += 1
    if _flight_calls[city] < 3:
        raise ConnectionError(f"airline API timed out (call {_flight_calls[city]})")
    return f"flight to {city}"


def book_car(ctx: ActivityContext, city: str) -> str:
    raise RuntimeError(f"no cars available in {city}")


def cancel_flight(ctx: ActivityContext, booking: str) -> str:
    return f"cancelled {booking}"


def book_trip(ctx: OrchestrationContext, city: str) -> Generator[Any, Any, dict[str, Any]]:
    flight = yield ctx.call_activity(book_flight, input=city, retry_policy=RETRY)
    try:
        car = yield ctx.call_activity(book_car, input=city, retry_policy=RETRY)
    except TaskFailedError as error:
        undo = yield ctx.call_activity(cancel_flight, input=flight)
        return {
            "booked": False,
            "error_type": error.details.error_type,
            "reason": error.details.message,
            "compensation": undo,
        }
    return {"booked": True, "flight": flight, "car": car}


def main() -> None:
    with local_runtime(
        task_hub="errorhandling",
        orchestrators=[book_trip],
        activities=[book_flight, book_car, cancel_flight],
    ) as client:
        instance_id = client.schedule_new_orchestration(book_trip, input="Lisbon")
        state = client.wait_for_orchestration_completion(instance_id, timeout=120)
        state.raise_if_failed()
        print(f"{instance_id}: {state.get_output()}")


if __name__ == "__main__":
    main()
