"""Deliveries the worker causes itself never count toward poison.

A burst once failed half of 100 orchestrations as poison although nothing failed: buffered
control messages went back to the queue whenever no dispatcher was asking, came back, and
each receive raised their delivery count. Here the worker asks for one work item at a time
and pauses in between, as a worker at its concurrency limit does.
"""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import timedelta

import pytest
from builders import MakeBackend, episode, event_message, now, start_message

from durable_azstorage.azure.settings import AzureStorageSettings

pytestmark = pytest.mark.azurite

INSTANCES = 6


@pytest.mark.parametrize("managed", [True, False], ids=["leased-partition", "shared-partition"])
async def test_a_busy_worker_does_not_inflate_delivery_counts(
    make_backend: MakeBackend, fast_settings: AzureStorageSettings, managed: bool
) -> None:
    """With a leased partition buffered messages stay buffered; with an explicitly shared one
    they go back to the queue for competitors, and taking them again is not a failure."""
    settings = dataclasses.replace(fast_settings, partition_count=1, max_dequeue_count=2)
    backend = await (
        make_backend(settings=settings, ownership=None)
        if managed
        else make_backend(settings=settings)
    )
    for i in range(INSTANCES):
        assert await backend.create_instance(start_message(f"burst-{i}"))
    counts: dict[str, int] = {}
    for _ in range(INSTANCES):
        item = await backend.lock_next_orchestration(10)
        assert item is not None
        assert not item.quarantined, f"{item.instance_id} was quarantined: {item.quarantined}"
        counts[item.instance_id] = item.dequeue_count
        await asyncio.sleep(1.2)  # busy: nobody here asks for work meanwhile
        await backend.complete_orchestration(item, episode(item))
    assert sorted(counts) == sorted(f"burst-{i}" for i in range(INSTANCES))
    assert set(counts.values()) == {1}, f"delivery counts rose while the worker was busy: {counts}"


async def test_deferred_events_do_not_count_toward_poison(
    make_backend: MakeBackend, fast_settings: AzureStorageSettings
) -> None:
    """An event for an instance that has not started yet is deferred again and again; those
    deliveries are the worker's own doing."""
    settings = dataclasses.replace(fast_settings, partition_count=1, max_dequeue_count=1)
    backend = await make_backend(settings=settings)
    start_at = now() + timedelta(seconds=5)
    assert await backend.create_instance(start_message("late", scheduled_start_time=start_at))
    await backend.send_message(event_message("late", "Early"))
    seen: list[str] = []
    while "EventRaised" not in seen:
        item = await backend.lock_next_orchestration(20)
        assert item is not None
        assert not item.quarantined, f"quarantined after deferrals: {item.quarantined}"
        seen += [type(m.event).__name__ for m in item.messages]
        await backend.complete_orchestration(item, episode(item))
    assert seen[0] == "ExecutionStarted"
