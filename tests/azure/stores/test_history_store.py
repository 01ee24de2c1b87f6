"""HistoryStore against real Azurite: rows, sentinel ETag, batch splitting, crash, continue-as-new."""

from __future__ import annotations

import dataclasses
import string
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone

import pytest
from fault_proxy import Fault, fault_proxy, proxied_settings
from stores_support import Stores

from durable_azstorage.azure.settings import AzureStorageSettings
from durable_azstorage.azure.storage.clients import StorageClients
from durable_azstorage.azure.storage.naming import escape_key
from durable_azstorage.azure.storage.retry import TransientRetry
from durable_azstorage.azure.tracking.history_store import (
    EMPTY_SENTINEL,
    HistoryCorruptedError,
    HistoryStore,
    LoadedHistory,
    Sentinel,
    row_key,
)
from durable_azstorage.model.errors import ConcurrencyConflictError
from durable_azstorage.model.failure import FailureDetails
from durable_azstorage.model.history import (
    ContinueAsNew,
    EventRaised,
    EventSent,
    ExecutionCompleted,
    ExecutionResumed,
    ExecutionStarted,
    ExecutionSuspended,
    ExecutionTerminated,
    GenericEvent,
    HistoryEvent,
    OrchestrationInstance,
    OrchestratorCompleted,
    OrchestratorStarted,
    ParentInstance,
    SubOrchestrationInstanceCompleted,
    SubOrchestrationInstanceCreated,
    SubOrchestrationInstanceFailed,
    TaskCompleted,
    TaskFailed,
    TaskScheduled,
    TimerCreated,
    TimerFired,
)
from durable_azstorage.model.status import OrchestrationStatus

T0 = datetime(2026, 3, 4, 5, 6, 7, 123456, tzinfo=timezone.utc)
RUNNING = OrchestrationStatus.RUNNING


def started(instance_id: str, execution_id: str, input: str | None = '"in"') -> ExecutionStarted:
    return ExecutionStarted(
        timestamp=T0,
        name="Orch",
        instance=OrchestrationInstance(instance_id=instance_id, execution_id=execution_id),
        input=input,
    )


def every_event_type(instance_id: str, execution_id: str) -> list[HistoryEvent]:
    failure = FailureDetails(
        message="boom",
        error_type="builtins.ValueError",
        stack_trace="Traceback ...\n  line 1",
        inner_failure=FailureDetails(message="inner", error_type="builtins.KeyError"),
        is_non_retriable=True,
    )
    return [
        OrchestratorStarted(timestamp=T0),
        ExecutionStarted(
            timestamp=T0,
            name="Orch",
            version="2",
            instance=OrchestrationInstance(instance_id=instance_id, execution_id=execution_id),
            input='{"a": 1}',
            parent=ParentInstance(
                name="Parent",
                instance=OrchestrationInstance(instance_id="p/1", execution_id="pe"),
                task_scheduled_id=7,
                version="1",
            ),
            scheduled_start_time=T0 + timedelta(seconds=1),
            tags={"team": "a", "ünï": "cødé"},
            generation=3,
        ),
        TaskScheduled(
            event_id=0, timestamp=T0, name="Act", input='"x"', version="v", tags={"k": "v"}
        ),
        TimerCreated(event_id=1, timestamp=T0, fire_at=T0 + timedelta(days=9, microseconds=1)),
        SubOrchestrationInstanceCreated(event_id=2, name="Sub", instance_id="sub#1", input="1"),
        EventSent(event_id=3, instance_id="other", name="ping", input='"p"'),
        OrchestratorCompleted(timestamp=T0),
        OrchestratorStarted(timestamp=T0 + timedelta(seconds=2)),
        TaskCompleted(task_scheduled_id=0, result='"r"'),
        TaskFailed(task_scheduled_id=0, failure_details=failure),
        TimerFired(timer_id=1, fire_at=T0 + timedelta(days=9, microseconds=1)),
        SubOrchestrationInstanceCompleted(task_scheduled_id=2, result="null"),
        SubOrchestrationInstanceFailed(task_scheduled_id=2, failure_details=failure),
        EventRaised(name="go", input='"é"'),
        ExecutionSuspended(reason="pause"),
        ExecutionResumed(reason="resume"),
        GenericEvent(data="marker"),
        ExecutionTerminated(input='"stop"', recurse=False),
        ContinueAsNew(result='"next"'),
        ExecutionCompleted(status=OrchestrationStatus.FAILED, result=None, failure_details=failure),
        OrchestratorCompleted(timestamp=T0 + timedelta(seconds=3)),
    ]


async def commit(
    stores: Stores,
    instance_id: str,
    expected: Sentinel,
    events: Sequence[HistoryEvent],
    *,
    execution_id: str = "e1",
    new_execution: bool = False,
    consumed: Sequence[str] = ("m1",),
    status: OrchestrationStatus = RUNNING,
    completed_at: datetime | None = None,
    store: HistoryStore | None = None,
) -> Sentinel:
    target = store or stores.history
    return await target.commit(
        instance_id,
        expected=expected,
        new_events=events,
        new_execution=new_execution,
        execution_id=execution_id,
        consumed_message_ids=consumed,
        runtime_status=status,
        completed_at=completed_at,
    )


def same_history(a: LoadedHistory, b: LoadedHistory) -> bool:
    """Equal events and sentinel, ignoring the ETag (a stopped commit re-stamps it)."""
    return a.events == b.events and dataclasses.replace(
        a.sentinel, etag=None
    ) == dataclasses.replace(b.sentinel, etag=None)


async def test_every_event_type_round_trips_with_dtfx_columns(stores: Stores) -> None:
    iid = "orders/42#?\\x"  # needs key escaping
    events = every_event_type(iid, "e1")
    sentinel = await commit(stores, iid, EMPTY_SENTINEL, events, consumed=("a", "b"))
    assert sentinel.etag and sentinel.event_count == len(events) and sentinel.episode == 1

    loaded = await stores.history.load(iid)
    assert loaded.events == tuple(events)
    assert loaded.sentinel == sentinel

    table = stores.clients.table(stores.names.history_table)
    rows = {
        r["RowKey"]: r
        async for r in table.query_entities(
            "PartitionKey eq @pk", parameters={"pk": escape_key(iid)}
        )
    }
    assert list(rows) == [row_key(i) for i in range(len(events))] + ["sentinel"]
    first = rows["0000000000000001"]
    assert first["EventType"] == "ExecutionStarted"
    assert first["EventId"] == -1 and first["ExecutionId"] == "e1"
    assert first["_Timestamp"] == T0 and first["Name"] == "Orch" and first["Generation"] == 3
    assert first["Input"] == '{"a": 1}'
    assert '"execution_id":"pe"' in first["ParentInstance"]
    timer = rows["0000000000000003"]
    assert timer["EventType"] == "TimerCreated" and timer["EventId"] == 1
    assert timer["FireAt"] == T0 + timedelta(days=9, microseconds=1)
    completed = rows["0000000000000008"]
    assert completed["TaskScheduledId"] == 0 and completed["Result"] == '"r"'
    assert '"inner_failure"' in rows["0000000000000009"]["FailureDetails"]
    assert rows["0000000000000013"]["OrchestrationStatus"] == "Failed"
    s = rows["sentinel"]
    assert (s["ExecutionId"], s["EventCount"], s["IsCheckpointComplete"]) == (
        "e1",
        len(events),
        True,
    )


async def test_appends_across_episodes_and_records_the_sentinel(stores: Stores) -> None:
    first = await commit(stores, "i1", EMPTY_SENTINEL, [OrchestratorStarted(), started("i1", "e1")])
    done = T0 + timedelta(minutes=1)
    second = await commit(
        stores,
        "i1",
        first,
        [TaskCompleted(task_scheduled_id=0, result="1")],
        consumed=("m2", "m3"),
        status=OrchestrationStatus.COMPLETED,
        completed_at=done,
    )
    assert second.etag != first.etag
    assert (second.event_count, second.episode) == (3, 2)
    assert second.consumed_message_ids == ("m2", "m3")
    assert second.runtime_status is OrchestrationStatus.COMPLETED and second.completed_at == done
    loaded = await stores.history.load("i1")
    assert len(loaded.events) == 3 and loaded.sentinel == second
    # an empty commit still records consumed messages (e.g. a discarded duplicate)
    third = await commit(stores, "i1", second, [], consumed=("m4",))
    assert (await stores.history.load("i1")).sentinel == third
    assert third.event_count == 3 and third.consumed_message_ids == ("m4",)


async def test_unknown_instance_loads_empty(stores: Stores) -> None:
    loaded = await stores.history.load("nobody")
    assert loaded.events == () and loaded.sentinel == EMPTY_SENTINEL


async def test_stale_etag_conflicts_and_changes_nothing(stores: Stores) -> None:
    base = await commit(stores, "i2", EMPTY_SENTINEL, [OrchestratorStarted(), started("i2", "e1")])
    winner = await commit(stores, "i2", base, [TaskCompleted(task_scheduled_id=0, result='"w"')])
    before = await stores.history.load("i2")

    with pytest.raises(ConcurrencyConflictError, match="'i2'"):
        await commit(stores, "i2", base, [TaskCompleted(task_scheduled_id=0, result='"loser"')])
    with pytest.raises(ConcurrencyConflictError):  # a second "first" commit
        await commit(stores, "i2", EMPTY_SENTINEL, [OrchestratorStarted()])
    after = await stores.history.load("i2")
    assert after == before and after.sentinel == winner


async def test_loser_of_a_multi_batch_race_writes_nothing(stores: Stores) -> None:
    store = stores.history_store(max_batch_operations=5)
    base = await commit(stores, "race", EMPTY_SENTINEL, [started("race", "e1")], store=store)
    many = [TaskCompleted(task_scheduled_id=i, result=f'"w{i}"') for i in range(12)]
    await commit(stores, "race", base, many, store=store)
    before = await stores.history.load("race")
    loser = [TaskCompleted(task_scheduled_id=i, result=f'"l{i}"') for i in range(12)]
    with pytest.raises(ConcurrencyConflictError):
        await commit(stores, "race", base, loser, store=store)
    assert await stores.history.load("race") == before


async def test_fan_out_of_500_with_20_kib_results(stores: Stores) -> None:
    iid = "fan"
    base = await commit(stores, iid, EMPTY_SENTINEL, [OrchestratorStarted(), started(iid, "e1")])
    scheduled = [TaskScheduled(event_id=i, name="Act", input=str(i)) for i in range(500)]
    s1 = await commit(stores, iid, base, scheduled)
    payload = '"' + (string.ascii_letters * 400)[: 20 * 1024] + '"'
    results = [
        TaskCompleted(task_scheduled_id=i, result=payload[:-4] + f'{i:03d}"') for i in range(500)
    ]
    counter = stores.clients.counter
    before = counter.snapshot()
    s2 = await commit(stores, iid, s1, results)
    spent = counter.snapshot() - before
    assert spent.counts == {("table", "Batch"): 6}  # ceil(500 / 99)
    assert s2.event_count == 1002

    before = counter.snapshot()
    loaded = await stores.history.load(iid)
    assert (counter.snapshot() - before).counts == {("table", "QueryEntities"): 2}  # 1000/page
    assert loaded.events[2:502] == tuple(scheduled) and loaded.events[502:] == tuple(results)
    assert loaded.sentinel == s2


async def test_batches_split_by_size_below_4_mib(stores: Stores) -> None:
    # Values stored inline (< 60 KiB UTF-16) that grow when JSON-escaped in the request body
    # (é and control characters: 6 bytes, emoji: 12): 99 of them per transaction would far
    # exceed the 4 MiB Azurite enforces (RequestBodyTooLarge), so the size limit splits them.
    iid = "wide"
    base = await commit(stores, iid, EMPTY_SENTINEL, [started(iid, "e1")])
    shapes = [
        '"' + "é" * 25_000 + '"',
        '"' + '\\"' * 10_000 + '"',
        "x\n\t" * 9_000,
        "😀" * 15_000,
        "\u0001" * 25_000,
    ]
    results = [
        TaskCompleted(task_scheduled_id=i, result=shapes[i % 5] + str(i)) for i in range(150)
    ]
    before = stores.clients.counter.snapshot()
    s = await commit(stores, iid, base, results)
    batches = (stores.clients.counter.snapshot() - before).counts[("table", "Batch")]
    assert batches >= 4
    assert await stores.blob_names() == []  # nothing offloaded
    loaded = await stores.history.load(iid)
    assert loaded.events[1:] == tuple(results) and loaded.sentinel == s


async def test_a_commit_stopped_between_batches_leaves_history_unchanged(stores: Stores) -> None:
    calls: list[tuple[int, int]] = []

    async def crash_before_second(index: int, count: int) -> None:
        calls.append((index, count))
        if index == 1:
            raise RuntimeError("simulated crash between transactions")

    store = stores.history_store(max_batch_operations=10, batch_hook=crash_before_second)
    iid = "crash"
    base = await commit(stores, iid, EMPTY_SENTINEL, [OrchestratorStarted(), started(iid, "e1")])
    committed = await stores.history.load(iid)
    partial = [TaskCompleted(task_scheduled_id=i, result=f'"{i}"') for i in range(25)]
    with pytest.raises(RuntimeError, match="simulated crash"):
        await commit(stores, iid, base, partial, consumed=("x",), store=store)
    assert calls == [(0, 3), (1, 3)]
    after = await stores.history.load(iid)
    assert same_history(after, committed)
    assert after.sentinel.etag != base.etag  # the first transaction claimed the ETag chain
    with pytest.raises(ConcurrencyConflictError):
        await commit(stores, iid, base, partial)

    # the next commit from the re-read state overwrites the orphan rows
    retry = [TaskCompleted(task_scheduled_id=i, result=f'"retry{i}"') for i in range(3)]
    s = await commit(stores, iid, after.sentinel, retry)
    loaded = await stores.history.load(iid)
    assert loaded.events == committed.events + tuple(retry) and loaded.sentinel == s


async def test_a_first_commit_stopped_between_batches_leaves_no_history(stores: Stores) -> None:
    async def crash(index: int, count: int) -> None:
        if index == 1:
            raise RuntimeError("crash")

    store = stores.history_store(max_batch_operations=4, batch_hook=crash)
    events = [
        OrchestratorStarted(),
        started("new", "e1"),
        *(EventRaised(name=f"n{i}") for i in range(8)),
    ]
    with pytest.raises(RuntimeError):
        await commit(stores, "new", EMPTY_SENTINEL, events, store=store)
    loaded = await stores.history.load("new")
    assert loaded.events == () and loaded.sentinel.execution_id is None
    assert loaded.sentinel.etag is not None
    s = await commit(stores, "new", loaded.sentinel, events)
    assert (await stores.history.load("new")).events == tuple(events) and s.event_count == 10


async def test_continue_as_new_replaces_the_previous_generation(stores: Stores) -> None:
    iid = "can"
    gen1 = [
        OrchestratorStarted(),
        started(iid, "g1"),
        *(TaskScheduled(event_id=i, name="A") for i in range(10)),
    ]
    s1 = await commit(stores, iid, EMPTY_SENTINEL, gen1, execution_id="g1")
    gen2 = [OrchestratorStarted(), started(iid, "g2", input='"carried"'), EventRaised(name="kept")]
    s2 = await commit(stores, iid, s1, gen2, execution_id="g2", new_execution=True)
    assert (s2.execution_id, s2.event_count, s2.first_row) == ("g2", 3, 0)
    loaded = await stores.history.load(iid)
    assert loaded.events == tuple(gen2)  # no stale g1 rows read back
    more = [TaskScheduled(event_id=0, name="B")]
    s3 = await commit(stores, iid, s2, more, execution_id="g2")
    assert (await stores.history.load(iid)).events == (*gen2, *more) and s3.event_count == 4
    with pytest.raises(ValueError, match="new_execution"):
        await commit(stores, iid, s3, more, execution_id="g1")


async def test_multi_batch_continue_as_new_never_overwrites_live_rows(stores: Stores) -> None:
    stop = {"at": 1}

    async def crash(index: int, count: int) -> None:
        if index == stop["at"]:
            raise RuntimeError("crash")

    store = stores.history_store(max_batch_operations=5, batch_hook=crash)
    iid = "can2"
    gen1 = [started(iid, "g1"), *(EventRaised(name=f"a{i}") for i in range(5))]
    s1 = await commit(stores, iid, EMPTY_SENTINEL, gen1, execution_id="g1")
    committed = await stores.history.load(iid)
    gen2 = [started(iid, "g2"), *(EventRaised(name=f"b{i}") for i in range(9))]  # 3 batches
    with pytest.raises(RuntimeError):
        await commit(stores, iid, s1, gen2, execution_id="g2", new_execution=True, store=store)
    reread = await stores.history.load(iid)
    assert same_history(reread, committed)

    stop["at"] = -1
    s2 = await commit(
        stores, iid, reread.sentinel, gen2, execution_id="g2", new_execution=True, store=store
    )
    assert s2.first_row == 6  # written after the live generation
    assert (await stores.history.load(iid)).events == tuple(gen2)
    gen3 = [started(iid, "g3")]
    s3 = await commit(stores, iid, s2, gen3, execution_id="g3", new_execution=True, store=store)
    assert s3.first_row == 0 and (await stores.history.load(iid)).events == tuple(gen3)


async def test_large_properties_go_to_blobs_and_come_back(stores: Stores) -> None:
    iid = "big/1"
    big = '"' + "x" * (5 * 1024 * 1024) + '"'
    trace = "T" * (5 * 1024 * 1024)
    failure = FailureDetails(
        message="m" * 70_000, error_type="builtins.ValueError", stack_trace=trace
    )
    events = [
        OrchestratorStarted(),
        started(iid, "e1", input=big),
        TaskCompleted(task_scheduled_id=0, result=big),
        TaskFailed(task_scheduled_id=1, failure_details=failure),
        EventRaised(name="ev", input=big),
        ExecutionTerminated(input=big),
        GenericEvent(data=big),
        ExecutionCompleted(status=OrchestrationStatus.FAILED, failure_details=failure),
    ]
    await commit(stores, iid, EMPTY_SENTINEL, events)
    table = stores.clients.table(stores.names.history_table)
    row = await table.get_entity(escape_key(iid), row_key(1))
    assert row["Input"] == "" and row["InputBlobName"].startswith(
        "big^01/history-0000000000000001-ExecutionStarted-"
    )
    assert row["InputBlobName"].endswith("-Input.json.gz")
    blobs = await stores.blob_names("big^01/")
    assert len(blobs) == 7

    loaded = await stores.history.load(iid)
    assert loaded.events == tuple(events)

    assert await stores.history.delete(iid) == len(events) + 1
    assert await stores.blob_names() == []
    assert (await stores.history.load(iid)).sentinel == EMPTY_SENTINEL
    assert await stores.history.delete(iid) == 0


async def test_unstorable_event_fails_before_any_write(stores: Stores) -> None:
    base = await commit(stores, "v", EMPTY_SENTINEL, [started("v", "e1")])
    before = await stores.history.load("v")
    naive = TimerCreated(event_id=0, fire_at=datetime(2030, 1, 1))  # no time zone
    with pytest.raises(ValueError, match="naive"):
        await commit(stores, "v", base, [EventRaised(name="ok", input="x" * 100_000), naive])
    assert await stores.history.load("v") == before
    assert await stores.blob_names() == []


async def test_missing_row_is_reported_not_truncated(stores: Stores) -> None:
    await commit(stores, "hole", EMPTY_SENTINEL, [started("hole", "e1"), EventRaised(name="a")])
    table = stores.clients.table(stores.names.history_table)
    await table.delete_entity("hole", row_key(1))
    with pytest.raises(HistoryCorruptedError, match="row 0000000000000001 is missing"):
        await stores.history.load("hole")


async def test_delete_removes_every_row_in_batches(stores: Stores) -> None:
    base = await commit(stores, "d", EMPTY_SENTINEL, [started("d", "e1")])
    await commit(stores, "d", base, [EventRaised(name=str(i)) for i in range(250)])
    before = stores.clients.counter.snapshot()
    assert await stores.history.delete("d") == 252
    spent = (stores.clients.counter.snapshot() - before).counts
    assert spent[("table", "Batch")] == 3
    assert (await stores.history.load("d")).sentinel == EMPTY_SENTINEL


@pytest.mark.parametrize("existing", [False, True])
async def test_retry_after_a_lost_answer_recognises_its_own_commit(
    stores: Stores, azure_settings: AzureStorageSettings, existing: bool
) -> None:
    """Azurite applies the first transaction, the answer is lost (a connection dropped
    mid-response), the retry meets its own commit as a conflict and recognises it."""
    iid = f"lost-{existing}"
    base = EMPTY_SENTINEL
    if existing:
        base = await commit(stores, iid, EMPTY_SENTINEL, [started(iid, "e1")])
    async with fault_proxy(azure_settings.connection_string or "") as proxy:
        proxied = proxied_settings(azure_settings, proxy)
        async with StorageClients(proxied) as clients:
            store = HistoryStore(
                clients.table(stores.names.history_table),
                stores.payloads,
                retry=TransientRetry(attempts=3, initial_wait=0.01),
            )
            proxy.add(Fault(match=lambda r: r.path.endswith("/$batch"), after_upstream=True))
            events = [EventRaised(name="once")] if existing else [started(iid, "e1")]
            s = await commit(stores, iid, base, events, store=store)
            batches = [seen[2] for seen in proxy.seen if seen[1].endswith("/$batch")]
            assert batches[0] == 202  # applied, answer lost, then retried
            assert len(batches) == 2
            loaded = await stores.history.load(iid)
            assert loaded.sentinel == s  # the retry's 409/412 was our own first attempt
            assert loaded.events[-1] == events[-1]
            # a genuinely stale writer still conflicts
            with pytest.raises(ConcurrencyConflictError):
                await commit(stores, iid, base, [EventRaised(name="late")], store=store)


async def test_continue_as_new_deletes_the_replaced_generations_blobs(stores: Stores) -> None:
    iid = "eternal"
    big = '"' + "s" * 100_000 + '"'
    s1 = await commit(
        stores, iid, EMPTY_SENTINEL, [started(iid, "g1", input=big)], execution_id="g1"
    )
    s1 = await commit(stores, iid, s1, [EventRaised(name="e", input=big)], execution_id="g1")
    gen1_blobs = await stores.blob_names()
    assert len(gen1_blobs) == 2
    s2 = await commit(
        stores, iid, s1, [started(iid, "g2", input=big)], execution_id="g2", new_execution=True
    )
    gen2_blobs = await stores.blob_names()
    assert len(gen2_blobs) == 1 and not set(gen2_blobs) & set(gen1_blobs)
    assert (await stores.history.load(iid)).events == (started(iid, "g2", input=big),)

    # another process (no memory of the rows) learns the blobs by loading
    other = stores.history_store()
    loaded = await other.load(iid)
    await commit(
        stores,
        iid,
        loaded.sentinel,
        [started(iid, "g3", input=big)],
        execution_id="g3",
        new_execution=True,
        store=other,
    )
    gen3_blobs = await stores.blob_names()
    assert len(gen3_blobs) == 1 and gen3_blobs != gen2_blobs
    assert loaded.sentinel == s2


async def test_load_of_another_execution_returns_no_events(stores: Stores) -> None:
    s = await commit(stores, "x", EMPTY_SENTINEL, [started("x", "e1")])
    assert (await stores.history.load("x", execution_id="e1")).events == (started("x", "e1"),)
    other = await stores.history.load("x", execution_id="e2")
    assert other.events == () and other.sentinel == s


async def test_commit_after_purge_conflicts(stores: Stores) -> None:
    s = await commit(stores, "gone", EMPTY_SENTINEL, [started("gone", "e1")])
    assert await stores.history.delete("gone") == 2
    with pytest.raises(ConcurrencyConflictError, match="'gone'"):
        await commit(stores, "gone", s, [EventRaised(name="late")])
    assert (await stores.history.load("gone")).sentinel == EMPTY_SENTINEL


async def test_storage_requests_per_commit_and_load(stores: Stores) -> None:
    counter = stores.clients.counter
    base = await commit(stores, "cost", EMPTY_SENTINEL, [started("cost", "e1")])
    spent = []
    for n in (1, 10, 489):
        before = counter.snapshot()
        base = await commit(stores, "cost", base, [EventRaised(name=str(i)) for i in range(n)])
        spent.append((counter.snapshot() - before).counts)
    assert spent == [{("table", "Batch"): 1}, {("table", "Batch"): 1}, {("table", "Batch"): 5}]
    before = counter.snapshot()
    assert len((await stores.history.load("cost")).events) == 501
    assert (counter.snapshot() - before).counts == {("table", "QueryEntities"): 1}
