"""What Azurite 3.37.0 (and the Python SDK in front of it) actually do, pinned.

The Azure backend relies on these; if an Azurite or SDK upgrade changes one, this file says
which assumption broke. Waiting tests poll with a deadline; they assert outcomes, not durations.
"""

from __future__ import annotations

import http.client
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError, ResourceExistsError
from azure.data.tables import TableTransactionError
from azure.storage.queue import QueueMessage
from azure.storage.queue.aio import QueueClient

from durable_azstorage.azure.settings import AzureStorageSettings
from durable_azstorage.azure.storage.clients import StorageClients
from durable_azstorage.testing.eventually import eventually_async

SEVEN_DAYS = int(timedelta(days=7).total_seconds())


@pytest.fixture
async def clients(azure_settings: AzureStorageSettings) -> AsyncIterator[StorageClients]:
    async with StorageClients(azure_settings) as c:
        yield c


@pytest.fixture
async def queue(clients: StorageClients, hub_name: str) -> AsyncIterator[QueueClient]:
    q = clients.queue(f"{hub_name.lower()}-q")
    await q.create_queue()
    yield q
    await q.delete_queue()


async def _receive_one(queue: QueueClient, visibility_timeout: int) -> QueueMessage | None:
    page = queue.receive_messages(
        messages_per_page=32, max_messages=32, visibility_timeout=visibility_timeout
    ).by_page()
    try:
        messages = [m async for m in await page.__anext__()]
    except StopAsyncIteration:  # SDK pitfall: an empty receive ends the pager, no empty page
        return None
    assert len(messages) <= 1
    return messages[0] if messages else None


async def _wait_for_one(
    queue: QueueClient, visibility_timeout: int, deadline: float = 20.0
) -> QueueMessage:
    message: QueueMessage = await eventually_async(
        lambda: _receive_one(queue, visibility_timeout),
        timeout=deadline,
        interval=0.2,
        what="a message to become visible",
    )
    return message


async def test_initial_visibility_delay_is_honoured(queue: QueueClient) -> None:
    await queue.send_message("later", visibility_timeout=2)
    assert await _receive_one(queue, 30) is None
    message = await _wait_for_one(queue, 30)
    assert message.content == "later"
    assert message.dequeue_count == 1


async def test_message_reappears_after_visibility_timeout_with_dequeue_count_incremented(
    queue: QueueClient,
) -> None:
    await queue.send_message("work")
    first = await _wait_for_one(queue, visibility_timeout=1)
    assert first.dequeue_count == 1
    second = await _wait_for_one(queue, visibility_timeout=30)
    assert second.id == first.id
    assert second.dequeue_count == 2
    assert second.pop_receipt != first.pop_receipt
    with pytest.raises(HttpResponseError) as info:  # the old receipt no longer deletes it
        await queue.delete_message(first.id, first.pop_receipt)
    assert (info.value.status_code, info.value.error_code) == (400, "PopReceiptMismatch")
    await queue.delete_message(second)


async def test_update_message_issues_a_new_pop_receipt(queue: QueueClient) -> None:
    await queue.send_message("work")
    received = await _wait_for_one(queue, 30)
    updated = await queue.update_message(received, visibility_timeout=30)
    assert updated.pop_receipt != received.pop_receipt
    with pytest.raises(HttpResponseError) as info:
        await queue.delete_message(received)
    assert info.value.error_code == "PopReceiptMismatch"
    await queue.delete_message(updated)


async def test_receive_without_messages_per_page_fetches_one_message_per_request(
    clients: StorageClients, queue: QueueClient
) -> None:
    """SDK pitfall: max_messages alone makes one GetMessages per message; pass messages_per_page."""
    for i in range(3):
        await queue.send_message(str(i))
    before = clients.counter.snapshot()
    got = [m async for m in queue.receive_messages(max_messages=32, visibility_timeout=30)]
    delta = clients.counter.snapshot() - before
    assert len(got) == 3
    assert delta.counts[("queue", "GetMessages")] == 4  # 1 per message + 1 that came back empty


async def test_visibility_limits_and_message_ttl(queue: QueueClient) -> None:
    # 7 days is the maximum visibility timeout; beyond it the service answers 400.
    with pytest.raises(HttpResponseError) as info:
        await queue.send_message("x", visibility_timeout=SEVEN_DAYS + 1, time_to_live=-1)
    assert info.value.status_code == 400
    # A visibility timeout longer than the TTL is rejected ...
    with pytest.raises(HttpResponseError) as info:
        await queue.send_message("x", visibility_timeout=10, time_to_live=5)
    assert info.value.status_code == 400
    # ... but one EQUAL to the default TTL (7 days) is accepted: that message would expire the
    # moment it became visible. Delayed messages (timers) must be sent with time_to_live=-1.
    doomed = await queue.send_message("x", visibility_timeout=SEVEN_DAYS)
    assert doomed.expires_on is not None and doomed.inserted_on is not None
    assert doomed.expires_on - doomed.inserted_on == timedelta(days=7)
    forever = await queue.send_message("x", visibility_timeout=SEVEN_DAYS, time_to_live=-1)
    assert forever.expires_on is not None and forever.expires_on.year == 9999


async def test_etag_conditional_batch_on_a_stale_etag_fails_whole_with_412(
    clients: StorageClients, hub_name: str
) -> None:
    table = clients.table(f"{hub_name}Etag")
    await table.create_table()
    await table.create_entity({"PartitionKey": "p", "RowKey": "sentinel", "v": 1})
    stale = await table.get_entity("p", "sentinel")
    await table.upsert_entity({"PartitionKey": "p", "RowKey": "sentinel", "v": 2})
    with pytest.raises(TableTransactionError) as info:
        await table.submit_transaction(
            [
                (
                    "update",
                    {"PartitionKey": "p", "RowKey": "sentinel", "v": 3},
                    {
                        "mode": "replace",
                        "etag": stale.metadata["etag"],
                        "match_condition": MatchConditions.IfNotModified,
                    },
                ),
                ("create", {"PartitionKey": "p", "RowKey": "event-0001"}),
            ]
        )
    assert info.value.status_code == 412
    assert info.value.error_code == "UpdateConditionNotSatisfied"
    rows = sorted([e["RowKey"] async for e in table.query_entities("PartitionKey eq 'p'")])
    assert rows == ["sentinel"]  # atomic: the other operation was not applied
    await table.delete_table()


async def test_a_batch_of_101_operations_is_rejected_with_an_unhelpful_error(
    clients: StorageClients, hub_name: str
) -> None:
    """Azurite refuses it, but the SDK surfaces http.client.BadStatusLine, not a
    TableTransactionError: split batches at 100 yourself."""
    table = clients.table(f"{hub_name}Big")
    await table.create_table()
    ops = [("upsert", {"PartitionKey": "p", "RowKey": f"{i:04d}"}) for i in range(101)]
    with pytest.raises(http.client.BadStatusLine):
        await table.submit_transaction(ops)
    assert [e async for e in table.query_entities("PartitionKey eq 'p'")] == []
    await table.submit_transaction(ops[:100])
    assert len([e async for e in table.query_entities("PartitionKey eq 'p'")]) == 100
    await table.delete_table()


async def test_table_names_are_case_insensitive(clients: StorageClients, hub_name: str) -> None:
    """So hubs 'MyHub' and 'myhub' would share tables (and queues, which are lower-cased)."""
    await clients.table(f"{hub_name}Case").create_table()
    with pytest.raises(ResourceExistsError):
        await clients.table(f"{hub_name}Case".lower()).create_table()
    await clients.table(f"{hub_name}Case").delete_table()


async def test_empty_partition_key_is_a_valid_partition(
    clients: StorageClients, hub_name: str
) -> None:
    """Lease rows use PartitionKey "" (as DTFx does); the hub-info row uses "taskhub"."""
    table = clients.table(f"{hub_name}Leases")
    await table.create_table()
    await table.create_entity({"PartitionKey": "", "RowKey": "hub-control-00"})
    await table.create_entity({"PartitionKey": "taskhub", "RowKey": "info"})
    rows = [e["RowKey"] async for e in table.query_entities("PartitionKey eq ''")]
    assert rows == ["hub-control-00"]
    await table.delete_table()
