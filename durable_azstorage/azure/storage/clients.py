"""The one place that builds the Azure Storage ``.aio`` clients.

``StorageClients`` owns one ``aiohttp.ClientSession`` shared by the queue, table and blob
clients (one connection pool, built once: client construction and TLS handshakes are the
expensive part of a storage request in Python). Every client it builds

* uses ``AioHttpTransport(session=<shared>, session_owner=False)``,
* has the SDK's own retries switched off (``retry_total=0``) — ``retry.TransientRetry`` is the
  single retry loop, at the operation level (see ``retry.py`` for why),
* carries a ``RequestCountingPolicy`` feeding one ``RequestCounter``.

Get per-resource clients through ``queue()``, ``table()`` and ``container()``: they are cached
and carry the counting policy. (``TableServiceClient.get_table_client`` would drop it: the
tables SDK rebuilds the pipeline from its default policy list.)
"""

from __future__ import annotations

from datetime import timedelta
from types import TracebackType
from typing import Any, TypeVar

import aiohttp
from azure.core.credentials import AzureNamedKeyCredential, AzureSasCredential
from azure.core.pipeline.transport import AioHttpTransport
from azure.data.tables.aio import TableClient, TableServiceClient
from azure.storage.blob.aio import BlobServiceClient, ContainerClient
from azure.storage.queue.aio import QueueClient, QueueServiceClient

from durable_azstorage.azure.settings import (
    DEV_ACCOUNT_KEY,
    DEV_ACCOUNT_NAME,
    AzureStorageSettings,
    parse_connection_string,
)
from durable_azstorage.azure.storage.metrics import RequestCounter, RequestCountingPolicy
from durable_azstorage.azure.storage.proxies import proxies_for
from durable_azstorage.azure.storage.retry import TransientRetry
from durable_azstorage.azure.storage.sync_credential import AsyncFromSyncCredential

CONNECTION_TIMEOUT = timedelta(seconds=10)  # TCP connect; a longer wait is an outage, retry it
READ_TIMEOUT = timedelta(seconds=60)  # per response read; big history pages stay well below


class StorageClients:
    """Queue, table and blob clients of one account sharing one HTTP session.

    Use ``async with StorageClients(settings) as clients:`` (or ``await open()`` / ``close()``).
    The session must be created inside the running event loop, hence the explicit open.
    """

    def __init__(
        self, settings: AzureStorageSettings, counter: RequestCounter | None = None
    ) -> None:
        self.settings = settings
        self.counter = counter if counter is not None else RequestCounter()
        self.retry = TransientRetry(attempts=settings.retry_attempts)
        self._session: aiohttp.ClientSession | None = None
        self._queue_service: QueueServiceClient | None = None
        self._table_service: TableServiceClient | None = None
        self._blob_service: BlobServiceClient | None = None
        self._tables: dict[str, TableClient] = {}
        self._queues: dict[str, QueueClient] = {}
        self._containers: dict[str, ContainerClient] = {}

    # ------------------------------------------------------------------ lifecycle

    async def open(self) -> StorageClients:
        if self._session is not None:
            return self
        self._session = aiohttp.ClientSession(
            cookie_jar=aiohttp.DummyCookieJar(), auto_decompress=False, trust_env=False
        )
        self._queue_service = self._build(QueueServiceClient, "queue")
        self._table_service = self._build(TableServiceClient, "table")
        _count_derived_table_clients(self._table_service, self.counter)
        self._blob_service = self._build(BlobServiceClient, "blob")
        return self

    async def close(self) -> None:
        """Close every client, then the shared session. Safe to call twice."""
        clients: list[Any] = [
            *self._queues.values(),
            *self._tables.values(),
            *self._containers.values(),
            self._queue_service,
            self._table_service,
            self._blob_service,
        ]
        self._queues.clear()
        self._tables.clear()
        self._containers.clear()
        self._queue_service = self._table_service = self._blob_service = None
        for client in clients:
            if client is not None:
                await client.close()
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    async def __aenter__(self) -> StorageClients:
        return await self.open()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # ------------------------------------------------------------------ clients

    @property
    def queue_service(self) -> QueueServiceClient:
        return _opened(self._queue_service)

    @property
    def table_service(self) -> TableServiceClient:
        return _opened(self._table_service)

    @property
    def blob_service(self) -> BlobServiceClient:
        return _opened(self._blob_service)

    def queue(self, name: str) -> QueueClient:
        client = self._queues.get(name)
        if client is None:
            client = self._queues[name] = self.queue_service.get_queue_client(name)
        return client

    def container(self, name: str) -> ContainerClient:
        client = self._containers.get(name)
        if client is None:
            client = self._containers[name] = self.blob_service.get_container_client(name)
        return client

    def table(self, name: str) -> TableClient:
        client = self._tables.get(name)
        if client is None:
            _opened(self._table_service)
            client = self._tables[name] = self._build(TableClient, "table", table_name=name)
        return client

    # ------------------------------------------------------------------ construction

    def _build(self, cls: Any, service: str, **extra: Any) -> Any:
        assert self._session is not None
        policy = RequestCountingPolicy(self.counter, service)
        kwargs: dict[str, Any] = {
            "transport": AioHttpTransport(
                session=self._session,
                session_owner=False,
                connection_timeout=CONNECTION_TIMEOUT.total_seconds(),
                read_timeout=READ_TIMEOUT.total_seconds(),
            ),
            "retry_total": 0,
            **extra,
        }
        if service == "table":
            kwargs["per_retry_policies"] = [policy]
        else:
            # The storage SDKs ignore per_retry_policies; this hook is how they add policies.
            kwargs["_additional_pipeline_policies"] = [policy]
        client = self._construct(cls, service, kwargs)
        proxies = proxies_for(str(client.url))  # resolved once: the session does not (trust_env)
        if proxies is None:
            return client
        return self._construct(cls, service, {**kwargs, "proxies": proxies})

    def _construct(self, cls: Any, service: str, kwargs: dict[str, Any]) -> Any:
        conn = _connection_string(self.settings)
        if conn is not None:
            if service == "table":
                return cls.from_connection_string(conn_str=conn, **kwargs)
            return cls.from_connection_string(conn, **kwargs)
        return cls(
            endpoint_for(self.settings, service), credential=_credential(self.settings), **kwargs
        )


def _count_derived_table_clients(service: TableServiceClient, counter: RequestCounter) -> None:
    """Make ``get_table_client`` (used by ``create_table``/``delete_table`` too) keep counting.

    The tables SDK builds derived clients from ``service._policies``, its default list without
    ``per_retry_policies``; add the counting policy there, right after the retry policy.
    ``tests/azure/test_metrics.py`` fails if an SDK upgrade changes this.
    """
    policies = getattr(service, "_policies", None)
    if not isinstance(policies, list):
        return
    index = next(
        (i for i, p in enumerate(policies) if type(p).__name__ == "AsyncTablesRetryPolicy"),
        len(policies) - 1,
    )
    policies.insert(index + 1, RequestCountingPolicy(counter, "table"))


_C = TypeVar("_C")


def _opened(client: _C | None) -> _C:
    if client is None:
        raise RuntimeError("StorageClients is not open: use `async with StorageClients(...)`")
    return client


def _connection_string(settings: AzureStorageSettings) -> str | None:
    """The connection string to use, with ``UseDevelopmentStorage=true`` expanded."""
    conn = settings.connection_string
    if conn is None:
        return None
    parts = parse_connection_string(conn)
    if parts.get("UseDevelopmentStorage", "").lower() != "true":
        return conn
    host = "http://127.0.0.1"
    return (
        f"DefaultEndpointsProtocol=http;AccountName={DEV_ACCOUNT_NAME};AccountKey={DEV_ACCOUNT_KEY};"
        f"BlobEndpoint={host}:10000/{DEV_ACCOUNT_NAME};QueueEndpoint={host}:10001/{DEV_ACCOUNT_NAME};"
        f"TableEndpoint={host}:10002/{DEV_ACCOUNT_NAME};"
    )


def endpoint_for(settings: AzureStorageSettings, service: str) -> str:
    """The ``service`` endpoint derived from ``account_url`` by swapping the service label."""
    assert settings.account_url is not None
    url = settings.account_url.rstrip("/")
    for label in ("blob", "queue", "table"):
        marker = f".{label}."
        if marker in url:
            return url.replace(marker, f".{service}.", 1)
    return url  # a custom domain serving all services (or an emulator) is used as given


def _credential(settings: AzureStorageSettings) -> Any:
    credential = settings.credential
    if isinstance(credential, str):
        if credential.startswith("?") or "sig=" in credential:
            return AzureSasCredential(credential.lstrip("?"))
        return AzureNamedKeyCredential(settings.account_name, credential)
    if AsyncFromSyncCredential.wraps(credential):
        return AsyncFromSyncCredential(credential)
    return credential
