"""What a client's start tells the first episode, and what happens when it is wrong.

The start names the ETag of the Instances row the client inserted, so the first episode
replaces that row without reading it first; a row changed meanwhile is read and decided as
before (the write is guarded by the ETag). A start of an instance the client created (not a
restart) says so, and its first delivery reads no history; if history exists after all (a
purge that deleted the row and died before the history), step 1 loses the ETag race and the
redelivered start reads it."""

from __future__ import annotations

import pytest
from builders import MakeBackend, episode, start_message

from durable_azstorage.model.errors import ConcurrencyConflictError
from durable_azstorage.model.status import OrchestrationStatus

pytestmark = pytest.mark.azurite


async def test_the_first_episode_writes_the_row_without_reading_it(
    make_backend: MakeBackend,
) -> None:
    backend = await make_backend()
    before = backend.request_counter.snapshot()
    assert await backend.create_instance(start_message("etag-1"))
    item = await backend.lock_next_orchestration(10)
    assert item is not None
    await backend.complete_orchestration(item, episode(item))
    used = backend.request_counter.snapshot() - before
    assert used.counts.get(("table", "GetEntity"), 0) == 0
    assert used.counts.get(("table", "QueryEntities"), 0) == 0  # no history read either
    assert used.counts.get(("table", "UpdateEntity"), 0) == 1
    found = await backend.get_instance("etag-1")
    assert found is not None and found.runtime_status is OrchestrationStatus.RUNNING


async def test_a_row_changed_after_the_start_is_read_before_it_is_replaced(
    make_backend: MakeBackend,
) -> None:
    """The client's row was rewritten after the start was sent: the ETag no longer matches
    (412), so the episode reads the row and decides as without the ETag."""
    backend = await make_backend()
    assert await backend.create_instance(start_message("etag-2"))
    item = await backend.lock_next_orchestration(10)
    assert item is not None
    instances = backend.hub.resources.instances
    found = await instances.get("etag-2", fetch_payloads=False)
    assert found is not None
    pending, etag = found
    await instances.insert_pending(pending, replace_etag=etag)  # someone rewrote the row
    before = backend.request_counter.snapshot()
    await backend.complete_orchestration(item, episode(item))
    used = backend.request_counter.snapshot() - before
    assert used.counts.get(("table", "UpdateEntity"), 0) == 2  # refused (412), then written
    assert used.counts.get(("table", "GetEntity"), 0) == 1  # read and decided in between
    row = await backend.get_instance("etag-2")
    assert row is not None and row.runtime_status is OrchestrationStatus.RUNNING


async def test_a_new_row_over_leftover_history_loses_the_race_and_is_read_again(
    make_backend: MakeBackend,
) -> None:
    backend = await make_backend()
    assert await backend.create_instance(start_message("etag-3"))
    first = await backend.lock_next_orchestration(10)
    assert first is not None
    await backend.complete_orchestration(
        first, episode(first, status=OrchestrationStatus.COMPLETED, output='"old"')
    )
    await backend.hub.resources.instances.delete("etag-3")  # the row only: history stays
    restart = start_message("etag-3")
    assert await backend.create_instance(restart)  # a new row: the start says "new"

    item = await backend.lock_next_orchestration(10)
    assert item is not None and item.history == ()  # believed unborn: nothing was read
    with pytest.raises(ConcurrencyConflictError):
        await backend.complete_orchestration(item, episode(item))
    await backend.abandon_orchestration(item)

    again = await backend.lock_next_orchestration(10)
    assert again is not None  # delivered again: the history was read, the row names it
    await backend.complete_orchestration(again, episode(again))
    row = await backend.get_instance("etag-3")
    assert row is not None and row.runtime_status is OrchestrationStatus.RUNNING
    assert row.execution_id == restart.instance.execution_id
    history = await backend.get_history("etag-3")
    assert history[1].instance.execution_id == restart.instance.execution_id  # type: ignore[attr-defined]
