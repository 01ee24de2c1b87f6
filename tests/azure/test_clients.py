"""StorageClients: one shared session, lifecycle, endpoints and credentials from settings."""

from __future__ import annotations

import pytest
from azure.core.credentials import AzureNamedKeyCredential, AzureSasCredential

from durable_azstorage.azure.settings import AzureStorageSettings
from durable_azstorage.azure.storage.clients import StorageClients, _credential, endpoint_for


async def test_clients_share_one_session_and_close_cleanly(
    azure_settings: AzureStorageSettings,
) -> None:
    clients = StorageClients(azure_settings)
    with pytest.raises(RuntimeError, match="not open"):
        _ = clients.queue_service
    async with clients:
        session = clients._session
        assert session is not None
        for client in (
            clients.queue_service,
            clients.table_service,
            clients.blob_service,
            clients.table("Anytable"),
            clients.queue("anyqueue"),
            clients.container("anyc"),
        ):
            transport = (
                client._client._client._pipeline._transport
                if hasattr(client._client, "_client")
                else client._client._pipeline._transport
            )
            while hasattr(transport, "_transport"):  # AsyncTransportWrapper of derived clients
                transport = transport._transport
            assert transport.session is session
        assert clients.table("Anytable") is clients.table("Anytable")  # cached, built once
        assert isinstance([q async for q in clients.queue_service.list_queues()], list)
    assert session.closed
    await clients.close()  # twice is fine


async def test_use_development_storage_is_expanded() -> None:
    settings = AzureStorageSettings(connection_string="UseDevelopmentStorage=true")
    async with StorageClients(settings) as clients:
        assert clients.queue_service.url.startswith("http://127.0.0.1:10001/devstoreaccount1")
        assert clients.table("Xyz").url.startswith("http://127.0.0.1:10002")


def test_endpoints_are_derived_from_any_service_url() -> None:
    s = AzureStorageSettings(account_url="https://acct.queue.core.windows.net/", credential="a2V5")
    assert endpoint_for(s, "blob") == "https://acct.blob.core.windows.net"
    assert endpoint_for(s, "table") == "https://acct.table.core.windows.net"
    assert endpoint_for(s, "queue") == "https://acct.queue.core.windows.net"


def test_string_credentials_become_key_or_sas_credentials() -> None:
    key = AzureStorageSettings(account_url="https://acct.blob.core.windows.net", credential="a2V5")
    named = _credential(key)
    assert isinstance(named, AzureNamedKeyCredential)
    assert named.named_key == ("acct", "a2V5")
    sas = AzureStorageSettings(
        account_url="https://acct.blob.core.windows.net", credential="?sv=1&sig=abc"
    )
    token = _credential(sas)
    assert isinstance(token, AzureSasCredential)
    assert token.signature == "sv=1&sig=abc"
