"""``TableTransactions`` answers exactly like the SDK's ``submit_transaction`` on Azurite.

Every scenario runs twice on fresh partitions of one table: once through the SDK, once through
the lean envelope. The stored rows, the results and the errors (type, status, error code,
failing index) must be the same. The parser's tests cover what Azurite does not send.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timezone
from typing import Any

import pytest
from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError
from azure.data.tables import (
    EdmType,
    EntityProperty,
    TableTransactionError,
    UpdateMode,
)
from azure.data.tables.aio import TableClient

from durable_azstorage.azure.settings import AzureStorageSettings
from durable_azstorage.azure.storage.clients import StorageClients
from durable_azstorage.azure.storage.metrics import RequestCounter
from durable_azstorage.azure.storage.table_transactions import (
    TableTransactions,
    decode_batch,
)

Submit = Callable[[list[Any]], Awaitable[Any]]


@pytest.fixture
async def table(azure_settings: AzureStorageSettings) -> AsyncIterator[TableClient]:
    async with StorageClients(azure_settings) as clients:
        client = clients.table(f"tx{uuid.uuid4().hex[:12]}")
        await client.create_table()
        try:
            yield client
        finally:
            await client.delete_table()


def _rows(pk: str) -> list[dict[str, Any]]:
    return [
        {
            "PartitionKey": pk,
            "RowKey": "0001",
            "Text": "héllo ✓ \r\n --batch_x boundary-like text",
            "Number": 7,
            "Big": EntityProperty(2**40, EdmType.INT64),
            "Ratio": 0.25,
            "Flag": True,
            "When": datetime(2026, 12, 3, 7, 0, tzinfo=timezone.utc),
            "Blob": b"\x00\x01binary",
        },
        {"PartitionKey": pk, "RowKey": "0002", "Text": "x" * 30_000},
        {"PartitionKey": pk, "RowKey": "0003", "Number": 1},
    ]


async def _stored(table: TableClient, pk: str) -> list[dict[str, Any]]:
    pager = table.query_entities("PartitionKey eq @pk", parameters={"pk": pk})
    return [{k: v for k, v in e.items() if k != "PartitionKey"} async for e in pager]


async def _outcome(submit: Submit, operations: list[Any]) -> Any:
    try:
        return ("ok", len(await submit(operations)))
    except TableTransactionError as exc:
        return ("refused", type(exc).__name__, exc.status_code, exc.error_code, exc.index)
    except HttpResponseError as exc:
        return ("error", type(exc).__name__, exc.status_code, getattr(exc, "error_code", None))
    except ValueError as exc:
        return ("invalid", str(exc))


Scenario = Callable[[TableClient, Submit, str], Awaitable[list[Any]]]


async def _insert(table: TableClient, submit: Submit, pk: str) -> list[Any]:
    return [await _outcome(submit, [("create", r) for r in _rows(pk)])]


async def _update_modes(table: TableClient, submit: Submit, pk: str) -> list[Any]:
    await submit([("create", r) for r in _rows(pk)])
    current = await table.get_entity(pk, "0003")
    return [
        await _outcome(
            submit,
            [
                ("upsert", {"PartitionKey": pk, "RowKey": "0001", "New": 1}),  # merge
                (
                    "upsert",
                    {"PartitionKey": pk, "RowKey": "0002", "Only": "this"},
                    {"mode": UpdateMode.REPLACE},
                ),
                (
                    "update",
                    {"PartitionKey": pk, "RowKey": "0003", "Number": 2},
                    {
                        "mode": UpdateMode.MERGE,
                        "etag": current.metadata["etag"],
                        "match_condition": MatchConditions.IfNotModified,
                    },
                ),
                ("upsert", {"PartitionKey": pk, "RowKey": "0004", "Fresh": True}),
            ],
        )
    ]


async def _delete(table: TableClient, submit: Submit, pk: str) -> list[Any]:
    await submit([("create", r) for r in _rows(pk)])
    return [await _outcome(submit, [("delete", {"PartitionKey": pk, "RowKey": "0002"})])]


async def _conflict(table: TableClient, submit: Submit, pk: str) -> list[Any]:
    await submit([("create", r) for r in _rows(pk)])
    fresh = {"PartitionKey": pk, "RowKey": "0009"}
    return [await _outcome(submit, [("create", fresh), ("create", _rows(pk)[1])])]


async def _stale_etag(table: TableClient, submit: Submit, pk: str) -> list[Any]:
    await submit([("create", r) for r in _rows(pk)])
    stale = (await table.get_entity(pk, "0003")).metadata["etag"]
    await table.upsert_entity({"PartitionKey": pk, "RowKey": "0003", "Number": 5})
    guarded = {"etag": stale, "match_condition": MatchConditions.IfNotModified}
    return [
        await _outcome(
            submit,
            [
                ("upsert", {"PartitionKey": pk, "RowKey": "0001", "Lost": 1}),
                ("update", {"PartitionKey": pk, "RowKey": "0003", "Number": 6}, guarded),
            ],
        )
    ]


async def _missing(table: TableClient, submit: Submit, pk: str) -> list[Any]:
    return [await _outcome(submit, [("delete", {"PartitionKey": pk, "RowKey": "nope"})])]


async def _hundred(table: TableClient, submit: Submit, pk: str) -> list[Any]:
    rows = [("upsert", {"PartitionKey": pk, "RowKey": f"{i:04d}", "I": i}) for i in range(100)]
    return [await _outcome(submit, rows)]


async def _invalid(table: TableClient, submit: Submit, pk: str) -> list[Any]:
    mixed = [
        ("create", {"PartitionKey": pk, "RowKey": "a"}),
        ("create", {"PartitionKey": "other", "RowKey": "b"}),
    ]
    return [
        await _outcome(submit, mixed),
        await _outcome(submit, [("frobnicate", {"PartitionKey": pk, "RowKey": "a"})]),
    ]


@pytest.mark.parametrize(
    "scenario",
    [_insert, _update_modes, _delete, _conflict, _stale_etag, _missing, _hundred, _invalid],
    ids=lambda s: s.__name__.strip("_"),
)
async def test_answers_and_stores_like_the_sdk(table: TableClient, scenario: Scenario) -> None:
    lean = TableTransactions(table)
    sdk_pk, lean_pk = f"sdk{uuid.uuid4().hex}", f"lean{uuid.uuid4().hex}"
    sdk_outcome = await scenario(table, table.submit_transaction, sdk_pk)
    lean_outcome = await scenario(table, lean.submit, lean_pk)
    assert lean_outcome == sdk_outcome
    assert _without_timestamps(await _stored(table, lean_pk)) == _without_timestamps(
        await _stored(table, sdk_pk)
    )


def _without_timestamps(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.items() if k != "Timestamp"} for r in rows]


async def test_results_carry_the_stored_etags(table: TableClient) -> None:
    pk = uuid.uuid4().hex
    results = await TableTransactions(table).submit([("create", r) for r in _rows(pk)])
    stored = [(await table.get_entity(pk, r["RowKey"])).metadata["etag"] for r in _rows(pk)]
    assert [r["etag"] for r in results] == stored


async def test_a_refusal_names_the_operation_and_stores_nothing(table: TableClient) -> None:
    pk = uuid.uuid4().hex
    lean = TableTransactions(table)
    await lean.submit([("create", {"PartitionKey": pk, "RowKey": "b"})])
    with pytest.raises(TableTransactionError) as refused:
        await lean.submit(
            [
                ("create", {"PartitionKey": pk, "RowKey": "a"}),
                ("create", {"PartitionKey": pk, "RowKey": "b"}),
            ]
        )
    assert (refused.value.status_code, refused.value.index) == (409, 1)
    assert "already exists" in refused.value.message
    assert "ErrorCode:EntityAlreadyExists" in refused.value.message
    assert [e["RowKey"] for e in await _stored(table, pk)] == ["b"]


async def test_one_transaction_is_one_counted_batch_request(
    azure_settings: AzureStorageSettings,
) -> None:
    counter = RequestCounter()
    async with StorageClients(azure_settings, counter) as clients:
        table = clients.table(f"tx{uuid.uuid4().hex[:12]}")
        await table.create_table()
        before = counter.snapshot()
        await TableTransactions(table).submit(
            [("upsert", {"PartitionKey": "p", "RowKey": str(i)}) for i in range(5)]
        )
        assert (counter.snapshot() - before).counts == {("table", "Batch"): 1}
        # nothing to commit costs nothing (the SDK sends it: real Azure answers 400, Azurite 500)
        assert await TableTransactions(table).submit([]) == []
        assert (counter.snapshot() - before).counts == {("table", "Batch"): 1}
        await table.delete_table()


# ---------------------------------------------------------------------- the parser alone

_OK_PART = (
    "Content-Type: application/http\nContent-Transfer-Encoding: binary\n\n"
    'HTTP/1.1 204 No Content\nETag: W/"1"\nDataServiceVersion: 3.0;\n\n\n'
)


def test_parses_lf_only_and_quoted_boundaries() -> None:
    second = _OK_PART.replace('W/"1"', 'W/"2"')
    body = (
        '--b1\nContent-Type: multipart/mixed; boundary="c1"\n\n'
        f"--c1\n{_OK_PART}--c1\n{second}--c1--\n--b1--\n"
    ).encode()
    parts = decode_batch('multipart/mixed; boundary="b1"', body)
    assert [(p.status_code, p.reason, p.headers["etag"]) for p in parts] == [
        (204, "No Content", 'W/"1"'),
        (204, "No Content", 'W/"2"'),
    ]


def test_a_response_outside_a_changeset_is_still_read() -> None:
    body = (
        b"--b1\r\nContent-Type: application/http\r\n\r\n"
        b"HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\n\r\n"
        b'{"odata.error":{"code":"InvalidInput","message":{"value":"0:bad"}}}\r\n--b1--\r\n'
    )
    (part,) = decode_batch("multipart/mixed; boundary=b1", body)
    assert (part.status_code, part.body.endswith(b"}}}")) == (400, True)


@pytest.mark.parametrize(
    ("content_type", "body", "names"),
    [
        ("application/json", b"{}", "no multipart boundary"),
        ("multipart/mixed; boundary=b1", b"nothing here", "no part bounded by 'b1'"),
        ("multipart/mixed; boundary=b1", b"--b1\r\n\r\nGARBAGE\r\n--b1--", "not an HTTP response"),
    ],
)
def test_an_unreadable_response_says_what_is_wrong(
    content_type: str, body: bytes, names: str
) -> None:
    with pytest.raises(HttpResponseError, match=names):
        decode_batch(content_type, body)
