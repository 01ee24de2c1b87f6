"""The transient-retry policy against real Azurite behind a fault-injecting proxy."""

from __future__ import annotations

import pytest
from azure.core import MatchConditions
from azure.core.exceptions import (
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ServiceRequestError,
)
from azure.data.tables import UpdateMode
from fault_proxy import Fault, fault_proxy, proxied_settings

from durable_azstorage.azure.settings import AzureStorageSettings
from durable_azstorage.azure.storage.clients import StorageClients
from durable_azstorage.azure.storage.retry import TRANSIENT_STATUS, TransientRetry, is_transient

FAST = TransientRetry(attempts=4, initial_wait=0.01, max_wait=0.05)


def _put_message(request: object) -> bool:
    return getattr(request, "method", "") == "POST" and "/messages" in getattr(request, "path", "")


async def test_503_is_retried_once_and_the_message_is_enqueued_once(
    azure_settings: AzureStorageSettings,
) -> None:
    async with fault_proxy(azure_settings.connection_string or "") as proxy:
        settings = proxied_settings(azure_settings, proxy)
        async with StorageClients(settings) as clients:
            queue = clients.queue(f"{azure_settings.task_hub.lower()}-retry")
            await queue.create_queue()
            proxy.add(Fault(match=_put_message, status=503, times=1))

            await FAST.call(lambda: queue.send_message("hello"))

            puts = [s for s in proxy.seen if s[0] == "POST"]
            assert [s[2] for s in puts] == [503, 201]
            props = await queue.get_queue_properties()
            assert props.approximate_message_count == 1
            await queue.delete_queue()


async def test_sdk_itself_does_not_retry_so_there_is_no_double_retry(
    azure_settings: AzureStorageSettings,
) -> None:
    async with fault_proxy(azure_settings.connection_string or "") as proxy:
        settings = proxied_settings(azure_settings, proxy)
        async with StorageClients(settings) as clients:
            queue = clients.queue(f"{azure_settings.task_hub.lower()}-noretry")
            await queue.create_queue()
            proxy.add(Fault(match=_put_message, status=503, times=1))
            with pytest.raises(HttpResponseError) as info:
                await queue.send_message("hello")  # no tenacity around it
            assert info.value.status_code == 503
            assert [s[2] for s in proxy.seen if s[0] == "POST"] == [503]
            await queue.delete_queue()


async def test_gives_up_after_the_configured_attempts(azure_settings: AzureStorageSettings) -> None:
    async with fault_proxy(azure_settings.connection_string or "") as proxy:
        settings = proxied_settings(azure_settings, proxy)
        async with StorageClients(settings) as clients:
            queue = clients.queue(f"{azure_settings.task_hub.lower()}-giveup")
            await queue.create_queue()
            proxy.add(Fault(match=_put_message, status=500, times=100))
            with pytest.raises(HttpResponseError) as info:
                await FAST.call(lambda: queue.send_message("hello"))
            assert info.value.status_code == 500
            assert len([s for s in proxy.seen if s[0] == "POST"]) == FAST.attempts
            await queue.delete_queue()


async def test_dropped_connection_is_retried(azure_settings: AzureStorageSettings) -> None:
    async with fault_proxy(azure_settings.connection_string or "") as proxy:
        settings = proxied_settings(azure_settings, proxy)
        async with StorageClients(settings) as clients:
            queue = clients.queue(f"{azure_settings.task_hub.lower()}-drop")
            await queue.create_queue()
            proxy.add(Fault(match=_put_message, status=None, times=1))
            await FAST.call(lambda: queue.send_message("hello"))
            assert [s[2] for s in proxy.seen if s[0] == "POST"] == ["dropped", 201]
            await queue.delete_queue()


async def test_412_on_a_stale_etag_is_not_retried(azure_settings: AzureStorageSettings) -> None:
    async with fault_proxy(azure_settings.connection_string or "") as proxy:
        settings = proxied_settings(azure_settings, proxy)
        async with StorageClients(settings) as clients:
            table = clients.table(f"{azure_settings.task_hub}Retry")
            await table.create_table()
            await table.create_entity({"PartitionKey": "p", "RowKey": "r", "v": 1})
            stale = await table.get_entity("p", "r")
            await table.update_entity({"PartitionKey": "p", "RowKey": "r", "v": 2})
            before = len(proxy.seen)
            with pytest.raises(ResourceModifiedError) as info:
                await FAST.call(
                    lambda: table.update_entity(
                        {"PartitionKey": "p", "RowKey": "r", "v": 3},
                        mode=UpdateMode.REPLACE,
                        etag=stale.metadata["etag"],
                        match_condition=MatchConditions.IfNotModified,
                    )
                )
            assert info.value.status_code == 412
            assert [s[2] for s in proxy.seen[before:]] == [412]
            await table.delete_table()


async def test_409_conflict_is_not_retried(azure_settings: AzureStorageSettings) -> None:
    async with fault_proxy(azure_settings.connection_string or "") as proxy:
        settings = proxied_settings(azure_settings, proxy)
        async with StorageClients(settings) as clients:
            table = clients.table(f"{azure_settings.task_hub}Conflict")
            await table.create_table()
            await table.create_entity({"PartitionKey": "p", "RowKey": "r"})
            before = len(proxy.seen)
            with pytest.raises(ResourceExistsError):
                await FAST.call(lambda: table.create_entity({"PartitionKey": "p", "RowKey": "r"}))
            assert [s[2] for s in proxy.seen[before:]] == [409]
            await table.delete_table()


@pytest.mark.parametrize("status", sorted(TRANSIENT_STATUS))
def test_transient_statuses_are_classified_transient(status: int) -> None:
    error = HttpResponseError(message="x")
    error.status_code = status
    assert is_transient(error)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 412, 413, 416])
def test_other_client_errors_are_not_transient(status: int) -> None:
    error = HttpResponseError(message="x")
    error.status_code = status
    assert not is_transient(error)


def test_connection_errors_are_transient() -> None:
    assert is_transient(ServiceRequestError("refused"))
    assert is_transient(ConnectionResetError())
    assert not is_transient(ValueError("bug"))


def test_policy_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="attempts"):
        TransientRetry(attempts=0)
