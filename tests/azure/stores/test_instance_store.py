"""InstanceStore against real Azurite: DTFx columns, large payloads, conflicts, filtered paging."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import datetime, timedelta, timezone

import pytest
from stores_support import Stores

from durable_azstorage.azure.storage.naming import escape_key
from durable_azstorage.azure.tracking.instance_store import InstanceStore
from durable_azstorage.model.errors import (
    ConcurrencyConflictError,
    OrchestrationAlreadyExistsError,
)
from durable_azstorage.model.failure import FailureDetails
from durable_azstorage.model.query import OrchestrationQuery
from durable_azstorage.model.state import InstanceState
from durable_azstorage.model.status import OrchestrationStatus

T0 = datetime(2026, 5, 6, 7, 8, 9, 654321, tzinfo=timezone.utc)
S = OrchestrationStatus


def state(instance_id: str, **changes: object) -> InstanceState:
    base = InstanceState(
        instance_id=instance_id,
        name="Orch",
        runtime_status=S.RUNNING,
        created_at=T0,
        last_updated_at=T0 + timedelta(seconds=1),
        execution_id="e1",
        input='"in"',
        output='"out"',
        custom_status='{"step":1}',
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


async def test_full_state_round_trips_with_dtfx_column_names(stores: Stores) -> None:
    full = state(
        "a/b#c",
        runtime_status=S.FAILED,
        completed_at=T0 + timedelta(minutes=1),
        failure_details=FailureDetails(
            message="x",
            error_type="builtins.ValueError",
            inner_failure=FailureDetails(message="y", error_type="builtins.KeyError"),
        ),
        version="1.2",
        tags={"team": "ops"},
        parent_instance_id="parent",
        scheduled_start_time=T0 - timedelta(hours=1),
        generation=4,
    )
    await stores.instances.upsert(full)
    found = await stores.instances.get("a/b#c")
    assert found is not None and found[0] == full and found[1]

    table = stores.clients.table(stores.names.instances_table)
    row = await table.get_entity(escape_key("a/b#c"), "")
    assert {
        k: row[k]
        for k in (
            "Name",
            "Version",
            "RuntimeStatus",
            "Input",
            "Output",
            "ExecutionId",
            "Generation",
            "ParentInstanceId",
            "CustomStatus",
        )
    } == {
        "Name": "Orch",
        "Version": "1.2",
        "RuntimeStatus": "Failed",
        "Input": '"in"',
        "Output": '"out"',
        "ExecutionId": "e1",
        "Generation": 4,
        "ParentInstanceId": "parent",
        "CustomStatus": '{"step":1}',
    }
    assert row["CreatedTime"] == T0 and row["CompletedTime"] == T0 + timedelta(minutes=1)
    assert row["ScheduledStartTime"] == T0 - timedelta(hours=1)
    assert row["Tags"] == '{"team":"ops"}' and '"inner_failure"' in row["FailureDetails"]

    lean = await stores.instances.get("a/b#c", fetch_payloads=False)
    assert lean is not None
    assert lean[0] == dataclasses.replace(full, input=None, output=None)

    # upsert replaces every column: values set to None disappear
    await stores.instances.upsert(state("a/b#c", output=None, custom_status=None))
    again = await stores.instances.get("a/b#c")
    assert again is not None and again[0] == state("a/b#c", output=None, custom_status=None)


async def test_5_mib_payloads_round_trip_through_blobs(stores: Stores) -> None:
    big = '"' + "é" * (5 * 1024 * 1024) + '"'
    failure = FailureDetails(
        message="boom", error_type="builtins.ValueError", stack_trace="S" * 5_000_000
    )
    huge = state(
        "big",
        input=big,
        output=big[:-1] + 'o"',
        custom_status=big[:-1] + 'c"',
        failure_details=failure,
        tags={"t": "v" * 40_000},
    )
    await stores.instances.upsert(huge)
    row = await stores.clients.table(stores.names.instances_table).get_entity("big", "")
    assert row["Input"] == "" and row["InputBlobName"].startswith("big/instance-")
    assert {c for c in row if c.endswith("BlobName")} == {
        "InputBlobName",
        "OutputBlobName",
        "CustomStatusBlobName",
        "FailureDetailsBlobName",
        "TagsBlobName",
    }
    found = await stores.instances.get("big")
    assert found is not None and found[0] == huge

    lean = await stores.instances.get("big", fetch_payloads=False)
    assert lean is not None and lean[0] == dataclasses.replace(huge, input=None, output=None)

    page = await stores.instances.query(OrchestrationQuery(fetch_inputs_and_outputs=True))
    assert page.items == [huge]
    page = await stores.instances.query(OrchestrationQuery())
    assert page.items == [dataclasses.replace(huge, input=None, output=None)]

    assert await stores.instances.delete("big")
    assert await stores.blob_names() == []
    assert await stores.instances.get("big") is None
    assert not await stores.instances.delete("big")


async def test_insert_pending_refuses_duplicates_and_stale_replacements(stores: Stores) -> None:
    pending = state("p", runtime_status=S.PENDING, execution_id="e1", output=None)
    await stores.instances.insert_pending(pending, replace_etag=None)
    await stores.instances.insert_pending(pending, replace_etag=None)  # same execution: ours
    with pytest.raises(OrchestrationAlreadyExistsError, match="'p'.*Pending"):
        await stores.instances.insert_pending(
            dataclasses.replace(pending, execution_id="e2"), replace_etag=None
        )
    found = await stores.instances.get("p", fetch_payloads=False)
    assert found is not None
    _, etag = found
    replacement = dataclasses.replace(pending, execution_id="e3", generation=1)
    await stores.instances.insert_pending(replacement, replace_etag=etag)
    with pytest.raises(ConcurrencyConflictError, match="'p'"):
        await stores.instances.insert_pending(
            dataclasses.replace(pending, execution_id="e4"), replace_etag=etag
        )
    now = await stores.instances.get("p")
    assert now is not None and now[0] == replacement


async def test_paging_250_instances_visits_each_once(stores: Stores) -> None:
    ids = [f"inst-{i:03d}" for i in range(250)]
    for i in range(0, 250, 25):
        await _upsert_all(stores, [state(x) for x in ids[i : i + 25]])
    seen: list[str] = []
    token: str | None = None
    pages = 0
    while True:
        page = await stores.instances.query(
            OrchestrationQuery(page_size=100, continuation_token=token)
        )
        pages += 1
        assert len(page.items) == (100 if page.continuation_token else 50)
        assert all(s.input is None and s.output is None for s in page.items)
        seen += [s.instance_id for s in page.items]
        token = page.continuation_token
        if token is None:
            break
    assert pages == 3 and sorted(seen) == ids and len(set(seen)) == 250


async def test_filters_combine(stores: Stores) -> None:
    rows = [
        state("job/1", runtime_status=S.COMPLETED, created_at=T0),
        state("job/2", runtime_status=S.FAILED, created_at=T0 + timedelta(hours=1)),
        state("job/3", runtime_status=S.RUNNING, created_at=T0 + timedelta(hours=2)),
        state("job#4", runtime_status=S.COMPLETED, created_at=T0 + timedelta(hours=3)),
        state("jobs", runtime_status=S.PENDING, created_at=T0 + timedelta(hours=4)),
        state("other", runtime_status=S.COMPLETED, created_at=T0 + timedelta(hours=5)),
    ]
    await _upsert_all(stores, rows)

    async def ids(**filters: object) -> list[str]:
        page = await stores.instances.query(OrchestrationQuery(**filters))  # type: ignore[arg-type]
        assert page.continuation_token is None
        return sorted(s.instance_id for s in page.items)

    assert await ids(runtime_status=(S.COMPLETED,)) == ["job#4", "job/1", "other"]
    assert await ids(runtime_status=(S.COMPLETED, S.FAILED)) == ["job#4", "job/1", "job/2", "other"]
    assert await ids(instance_id_prefix="job/") == ["job/1", "job/2", "job/3"]
    assert await ids(instance_id_prefix="job") == ["job#4", "job/1", "job/2", "job/3", "jobs"]
    assert await ids(
        created_time_from=T0 + timedelta(hours=1), created_time_to=T0 + timedelta(hours=3)
    ) == [
        "job#4",
        "job/2",
        "job/3",
    ]
    assert await ids(created_time_from=T0 + timedelta(microseconds=1)) == [
        "job#4",
        "job/2",
        "job/3",
        "jobs",
        "other",
    ]
    assert await ids(
        instance_id_prefix="job",
        runtime_status=(S.COMPLETED, S.PENDING),
        created_time_to=T0 + timedelta(hours=3),
    ) == ["job#4", "job/1"]
    assert await ids(instance_id_prefix="zzz") == []
    assert await ids(runtime_status=(S.COMPLETED,), instance_id_prefix="x' or 'a' eq 'a") == []


async def test_filtered_paging_fills_pages(stores: Stores) -> None:
    await _upsert_all(
        stores,
        [
            state(f"f{i:02d}", runtime_status=S.COMPLETED if i % 3 == 0 else S.RUNNING)
            for i in range(30)
        ],
    )
    seen: list[str] = []
    token: str | None = None
    while True:
        page = await stores.instances.query(
            OrchestrationQuery(runtime_status=(S.COMPLETED,), page_size=4, continuation_token=token)
        )
        seen += [s.instance_id for s in page.items]
        token = page.continuation_token
        if token is None:
            break
        assert len(page.items) == 4
    assert seen == [f"f{i:02d}" for i in range(0, 30, 3)]


async def test_malformed_continuation_token_is_refused(stores: Stores) -> None:
    for bad in ("not base64!", "eyJ2IjoyfQ==", "eyJ2IjoxfQ=="):
        with pytest.raises(ValueError, match="continuation token"):
            await stores.instances.query(OrchestrationQuery(continuation_token=bad))


async def _upsert_all(stores: Stores, states: list[InstanceState]) -> None:
    await asyncio.gather(*(stores.instances.upsert(s) for s in states))


async def test_rewriting_a_row_deletes_blobs_only_the_old_version_used(stores: Stores) -> None:
    big_input = '"' + "i" * 100_000 + '"'
    v1 = state("cs", input=big_input, custom_status='"' + "1" * 100_000 + '"')
    await stores.instances.upsert(v1)
    first = await stores.blob_names()
    assert len(first) == 2
    v2 = dataclasses.replace(v1, custom_status='"small"')
    await stores.instances.upsert(v2)
    second = await stores.blob_names()
    assert len(second) == 1  # the old custom status blob is gone, the input re-uploaded
    found = await stores.instances.get("cs")
    assert found is not None and found[0] == v2

    # a store that only read the row (e.g. another process) also cleans up after itself
    other = InstanceStore(
        stores.clients.table(stores.names.instances_table),
        stores.payloads,
        retry=stores.clients.retry,
    )
    assert await other.get("cs", fetch_payloads=False) is not None
    v3 = dataclasses.replace(v2, input='"small"', runtime_status=S.COMPLETED)
    await other.upsert(v3)
    assert await stores.blob_names() == []
    found = await stores.instances.get("cs")
    assert found is not None and found[0] == v3
