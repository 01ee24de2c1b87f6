"""A worker process for the crash-recovery test: ``python crash_worker.py CONN HUB``.

Runs a fan-out orchestration's worker until killed. Each activity sleeps a little so that a
kill lands mid-fan-out.
"""

from __future__ import annotations

import sys
import time
from datetime import timedelta

from durable_azstorage import ActivityContext, OrchestrationContext, TaskHubWorker, when_all
from durable_azstorage.azure.settings import AzureStorageSettings


def slow_square(ctx: ActivityContext, x: int) -> int:
    time.sleep(0.05)
    return x * x


def squares(ctx: OrchestrationContext, n: int):  # type: ignore[no-untyped-def]
    results = yield when_all([ctx.call_activity("slow_square", input=i) for i in range(n)])
    return sum(results)


def settings(conn: str, hub: str) -> AzureStorageSettings:
    return AzureStorageSettings(
        connection_string=conn,
        task_hub=hub,
        partition_count=2,
        control_queue_visibility_timeout=timedelta(seconds=3),
        work_item_visibility_timeout=timedelta(seconds=3),
        max_poll_interval=timedelta(milliseconds=500),
        # The next worker takes the killed one's partitions once their leases expire: short
        # leases keep that wait (30 s with the defaults) to a few seconds.
        lease_interval=timedelta(seconds=6),
        lease_renew_interval=timedelta(seconds=2),
        lease_acquire_interval=timedelta(seconds=1),
    )


def main(argv: list[str]) -> None:
    worker = TaskHubWorker(settings(argv[1], argv[2]), max_concurrent_activities=4)
    worker.add_orchestrator(squares)
    worker.add_activity(slow_square)
    worker.start()
    print("ready", flush=True)
    while True:
        time.sleep(1)


if __name__ == "__main__":
    main(sys.argv)
