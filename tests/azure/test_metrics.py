"""The request counter counts what Azurite actually served, by service and REST operation."""

from __future__ import annotations

import pytest
from azure.core import MatchConditions
from azure.data.tables import UpdateMode
from fault_proxy import Fault, fault_proxy, proxied_settings

from durable_azstorage.azure.settings import AzureStorageSettings
from durable_azstorage.azure.storage.clients import StorageClients
from durable_azstorage.azure.storage.metrics import RequestCounter, operation_name


async def test_counts_match_what_the_server_answered(azure_settings: AzureStorageSettings) -> None:
    hub = azure_settings.task_hub
    async with fault_proxy(azure_settings.connection_string or "") as proxy:
        settings = proxied_settings(azure_settings, proxy)
        counter = RequestCounter()
        async with StorageClients(settings, counter) as clients:
            queue = clients.queue(f"{hub.lower()}-count")
            await clients.queue_service.create_queue(queue.queue_name)
            await queue.send_message("a")
            await queue.send_message("b")
            page = (
                await queue.receive_messages(messages_per_page=32, max_messages=32)
                .by_page()
                .__anext__()
            )
            for message in [m async for m in page]:
                updated = await queue.update_message(message, visibility_timeout=60)
                await queue.delete_message(updated)  # the update issued a new pop receipt
            await queue.peek_messages()

            await clients.table_service.create_table(f"{hub}Count")  # via get_table_client
            table = clients.table(f"{hub}Count")
            await table.create_entity({"PartitionKey": "p", "RowKey": "1"})
            entity = await table.get_entity("p", "1")
            await table.upsert_entity({"PartitionKey": "p", "RowKey": "2"})
            await table.upsert_entity({"PartitionKey": "p", "RowKey": "2"}, mode=UpdateMode.REPLACE)
            await table.update_entity(
                entity,
                mode=UpdateMode.MERGE,
                etag=entity.metadata["etag"],
                match_condition=MatchConditions.IfNotModified,
            )
            await table.submit_transaction(
                [("upsert", {"PartitionKey": "p", "RowKey": str(i)}) for i in range(10, 15)]
            )
            rows = [e async for e in table.query_entities("PartitionKey eq 'p'")]
            await table.delete_entity("p", "1")

            container = clients.container(f"{hub.lower()}-count")
            await container.create_container()
            await container.upload_blob("b", b"x")
            await (await container.download_blob("b")).readall()
            await container.delete_blob("b")

            await clients.queue_service.delete_queue(queue.queue_name)
            await clients.table_service.delete_table(f"{hub}Count")
            await container.delete_container()

        snapshot = counter.snapshot()
        assert len(rows) == 7
        assert snapshot.counts == {
            ("queue", "CreateQueue"): 1,
            ("queue", "PutMessage"): 2,
            ("queue", "GetMessages"): 1,
            ("queue", "UpdateMessage"): 2,
            ("queue", "DeleteMessage"): 2,
            ("queue", "PeekMessages"): 1,
            ("queue", "DeleteQueue"): 1,
            ("table", "CreateTable"): 1,
            ("table", "InsertEntity"): 1,
            ("table", "GetEntity"): 1,
            ("table", "InsertOrMergeEntity"): 1,
            ("table", "InsertOrReplaceEntity"): 1,
            ("table", "MergeEntity"): 1,
            ("table", "Batch"): 1,
            ("table", "QueryEntities"): 1,
            ("table", "DeleteEntity"): 1,
            ("table", "DeleteTable"): 1,
            ("blob", "CreateContainer"): 1,
            ("blob", "PutBlob"): 1,
            ("blob", "GetBlob"): 1,
            ("blob", "DeleteBlob"): 1,
            ("blob", "DeleteContainer"): 1,
        }
        # Every request the proxy forwarded to Azurite was counted, and nothing else.
        assert snapshot.total == counter.total == len(proxy.forwarded())
        assert snapshot.by_service() == {"queue": 10, "table": 10, "blob": 5}


async def test_failed_requests_are_counted_apart_and_reset_clears(
    azure_settings: AzureStorageSettings,
) -> None:
    async with fault_proxy(azure_settings.connection_string or "") as proxy:
        settings = proxied_settings(azure_settings, proxy)
        counter = RequestCounter()
        async with StorageClients(settings, counter) as clients:
            queue = clients.queue(f"{azure_settings.task_hub.lower()}-fail")
            await queue.create_queue()
            before = counter.snapshot()
            proxy.add(Fault(match=lambda r: r.method == "POST", status=None))
            proxy.add(Fault(match=lambda r: r.method == "POST", status=503))
            await clients.retry.call(lambda: queue.send_message("x"))
            delta = counter.snapshot() - before
            assert delta.failed == {("queue", "PutMessage"): 1}
            assert delta.counts == {("queue", "PutMessage"): 2}  # the 503 and the 201
            await queue.delete_queue()
        counter.reset()
        assert counter.total == 0 and counter.snapshot().failed == {}


@pytest.mark.parametrize(
    ("service", "method", "url", "headers", "expected"),
    [
        ("queue", "GET", "https://a.queue.core.windows.net/?comp=list", {}, "ListQueues"),
        (
            "queue",
            "GET",
            "https://a.queue.core.windows.net/q/messages?numofmessages=32",
            {},
            "GetMessages",
        ),
        (
            "queue",
            "GET",
            "http://127.0.0.1:1/devstoreaccount1/q/messages?peekonly=true",
            {},
            "PeekMessages",
        ),
        ("queue", "DELETE", "http://127.0.0.1:1/devstoreaccount1/q/messages", {}, "ClearMessages"),
        (
            "queue",
            "PUT",
            "https://a.queue.core.windows.net/q?comp=metadata",
            {},
            "SetQueueMetadata",
        ),
        ("table", "GET", "https://a.table.core.windows.net/Tables", {}, "QueryTables"),
        ("table", "DELETE", "https://a.table.core.windows.net/Tables('T')", {}, "DeleteTable"),
        (
            "table",
            "PUT",
            "https://a.table.core.windows.net/T(PartitionKey='a',RowKey='b')",
            {"If-Match": "*"},
            "UpdateEntity",
        ),
        ("table", "POST", "http://localhost:1/devstoreaccount1/$batch", {}, "Batch"),
        (
            "blob",
            "GET",
            "https://a.blob.core.windows.net/c?restype=container&comp=list",
            {},
            "ListBlobs",
        ),
        ("blob", "HEAD", "https://a.blob.core.windows.net/c/b", {}, "GetBlobProperties"),
        ("blob", "PUT", "https://a.blob.core.windows.net/c/b?comp=block&blockid=x", {}, "PutBlock"),
        ("blob", "OPTIONS", "https://a.blob.core.windows.net/c/b", {}, "UnknownOPTIONS"),
    ],
)
def test_operation_names(
    service: str, method: str, url: str, headers: dict[str, str], expected: str
) -> None:
    assert operation_name(service, method, url, headers) == expected
