"""Extended sessions (no History read for a cached instance) and back-pressure."""

from __future__ import annotations

import dataclasses

import pytest
from builders import MakeBackend, episode, event_message, kinds, start_message

from durable_azstorage.azure.settings import AzureStorageSettings
from durable_azstorage.model.errors import ConcurrencyConflictError

pytestmark = pytest.mark.azurite


def queries(backend) -> int:  # type: ignore[no-untyped-def]
    return backend.request_counter.snapshot().counts.get(("table", "QueryEntities"), 0)


async def test_cached_instance_is_not_read_again(make_backend: MakeBackend) -> None:
    backend = await make_backend()
    assert await backend.create_instance(start_message("cached-1"))
    item = await backend.lock_next_orchestration(10)
    assert item is not None
    await backend.complete_orchestration(item, episode(item))
    before = queries(backend)
    await backend.send_message(event_message("cached-1"))
    item = await backend.lock_next_orchestration(10)
    assert item is not None
    assert queries(backend) == before, "the History table was queried for a cached instance"
    assert kinds(item.history)[1] == "ExecutionStarted"
    assert backend.session_cache.hits >= 1
    await backend.complete_orchestration(item, episode(item))
    assert [type(e).__name__ for e in await backend.get_history("cached-1")] == [
        *kinds(item.history),
        *kinds(episode(item).new_events),
    ]


async def test_disabled_sessions_read_history_every_time(
    make_backend: MakeBackend, fast_settings: AzureStorageSettings
) -> None:
    backend = await make_backend(
        settings=dataclasses.replace(fast_settings, extended_sessions=False)
    )
    assert await backend.create_instance(start_message("uncached-1"))
    item = await backend.lock_next_orchestration(10)
    assert item is not None
    await backend.complete_orchestration(item, episode(item))
    before = queries(backend)
    await backend.send_message(event_message("uncached-1"))
    item = await backend.lock_next_orchestration(10)
    assert item is not None
    assert queries(backend) > before


async def test_stale_cache_loses_the_race_then_reloads(make_backend: MakeBackend) -> None:
    cached = await make_backend()
    assert await cached.create_instance(start_message("stale-1"))
    item = await cached.lock_next_orchestration(10)
    assert item is not None
    await cached.complete_orchestration(item, episode(item))
    await cached.stop()  # its cache is now stale once another writer commits
    other = await make_backend()
    await other.send_message(event_message("stale-1", "ByOther"))
    item = await other.lock_next_orchestration(10)
    assert item is not None
    await other.complete_orchestration(item, episode(item))
    await other.stop()
    await cached.start()
    await cached.send_message(event_message("stale-1", "Next"))
    item = await cached.lock_next_orchestration(10)
    assert item is not None
    if "ByOther" not in [getattr(e, "name", None) for e in item.history]:
        with pytest.raises(ConcurrencyConflictError):
            await cached.complete_orchestration(item, episode(item))
        await cached.abandon_orchestration(item)
        item = await cached.lock_next_orchestration(10)
        assert item is not None
    names = [getattr(e, "name", None) for e in item.history]
    assert "ByOther" in names
    await cached.complete_orchestration(item, episode(item))


async def test_buffer_is_bounded(make_backend: MakeBackend) -> None:
    backend = await make_backend(max_buffered_messages=3)
    for i in range(10):
        assert await backend.create_instance(start_message(f"bp-{i}"))
    # Receivers poll only while someone waits for work, so the bound is checked while
    # lock_next_orchestration creates demand (a sleep here would check an empty buffer).
    seen = set()
    for _ in range(10):
        item = await backend.lock_next_orchestration(10)
        assert item is not None
        assert backend.buffered_messages <= 3
        seen.add(item.instance_id)
        await backend.complete_orchestration(item, episode(item))
    assert seen == {f"bp-{i}" for i in range(10)}
