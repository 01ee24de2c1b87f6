"""``SidecarServer``: a gRPC server speaking ``TaskHubSidecarService`` for one task hub.

It owns one ``AsyncTaskHubClient`` and one ``WorkItemService`` on the given backend, so every
SDK client and worker connected to this process shares one set of partition leases.

Start order: bind the port first (a port in use fails before any lease is taken), start the
work-item service (this starts the backend: partition leases, receive loops), then serve.
Stop order is the reverse *with one twist*: the work-item service stops first, while the
server still accepts calls, so SDK workers can report the work items they are finishing
(``CompleteOrchestratorTask`` is an RPC like any other; a stopped server would refuse it and
the work would only come back after its lock expired). Then the server stops, cancelling
what is left (blocked Wait RPCs), and the partitions are already released.

Owned partitions are read through ``PartitionedBackend``, a structural protocol that
``AzureStorageBackend`` satisfies (``settings`` and ``ownership``); other backends have no
partitions and the startup line says so.
"""

from __future__ import annotations

import asyncio
import logging
from types import TracebackType
from typing import Protocol, runtime_checkable

import grpc
import grpc.aio
from durabletask.internal import orchestrator_service_pb2_grpc as pb_grpc

from durable_azstorage.backend.protocol import Backend
from durable_azstorage.client.async_client import AsyncTaskHubClient
from durable_azstorage.sidecar.passthrough import PassThroughConverter
from durable_azstorage.sidecar.service import SidecarService
from durable_azstorage.sidecar.work_items import WorkItemService

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 4001
MAX_MESSAGE_BYTES = 32 * 1024 * 1024
"""gRPC message limit both ways: a work item carries the full history inline."""

log = logging.getLogger("durable_azstorage.sidecar")


class ListenError(OSError):
    """The server could not bind its address (port in use, or not an address of this host)."""


class _HubSettings(Protocol):
    @property
    def task_hub(self) -> str: ...

    @property
    def partition_count(self) -> int: ...


class _Ownership(Protocol):
    def owned(self) -> frozenset[int]: ...


@runtime_checkable
class PartitionedBackend(Protocol):
    """A backend whose control queues are partitioned and leased (``AzureStorageBackend``)."""

    @property
    def settings(self) -> _HubSettings: ...

    @property
    def ownership(self) -> _Ownership: ...


class SidecarServer:
    """Serve ``backend`` to the portable Durable Task SDKs on ``host:port`` (0: any free port).

    ``allow_hub_management``: serve ``DeleteTaskHub`` and ``CreateTaskHub(recreateIfExists)``
    (off by default: they wipe the hub under every running engine, and any local process
    can call an unauthenticated sidecar).
    """

    def __init__(
        self,
        backend: Backend,
        *,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        ownership_wait: float = 5.0,
        logger: logging.Logger | None = None,
        allow_hub_management: bool = False,
    ) -> None:
        if not 0 <= port <= 65535:
            raise ValueError(f"port must be between 0 and 65535, got {port}")
        self.backend = backend
        self.host = host
        self._requested_port = port
        self._ownership_wait = ownership_wait
        self._log = logger or log
        self._allow_hub_management = allow_hub_management
        self.client = AsyncTaskHubClient(backend=backend, converter=PassThroughConverter())
        self.work_items = WorkItemService(backend, logger=self._log)
        self._server: grpc.aio.Server | None = None
        self._port: int | None = None

    # --- what it serves ----------------------------------------------------------------------
    @property
    def port(self) -> int:
        """The bound port (the free one picked for port 0); ``RuntimeError`` before ``start``."""
        if self._port is None:
            raise RuntimeError("the sidecar is not started")
        return self._port

    @property
    def address(self) -> str:
        """``host:port`` as an SDK's ``host_address`` expects it."""
        return _join(self.host, self.port)

    @property
    def task_hub(self) -> str | None:
        return (
            self.backend.settings.task_hub if isinstance(self.backend, PartitionedBackend) else None
        )

    def owned_partitions(self) -> frozenset[int] | None:
        """Partitions this sidecar holds leases on now; None for an unpartitioned backend."""
        if isinstance(self.backend, PartitionedBackend):
            return self.backend.ownership.owned()
        return None

    def describe(self) -> str:
        """The startup line: address, task hub and partitions owned."""
        backend = self.backend
        if not isinstance(backend, PartitionedBackend):
            where, parts = f"an {type(backend).__name__}", "no partitions (unpartitioned backend)"
        else:
            owned = backend.ownership.owned()
            listed = ", ".join(str(p) for p in sorted(owned)) if owned else "none yet"
            where = f"task hub {backend.settings.task_hub!r}"
            parts = f"partitions owned: {listed} (of {backend.settings.partition_count})"
        return f"durable-azstorage sidecar listening on {self.address} for {where}; {parts}"

    # --- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        """Bind, start the work-item service (partition leases), then accept calls."""
        if self._server is not None:
            raise RuntimeError("the sidecar is already started")
        server = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ]
        )
        pb_grpc.add_TaskHubSidecarServiceServicer_to_server(  # type: ignore[no-untyped-call]
            SidecarService(
                self.client, self.work_items, allow_hub_management=self._allow_hub_management
            ),
            server,
        )
        target = _join(self.host, self._requested_port)
        try:
            bound = server.add_insecure_port(target)
        except RuntimeError:
            bound = 0
        if bound == 0:
            raise ListenError(
                f"cannot listen on {target}: the port is in use or the address is not one of "
                "this machine's"
            )
        self._server, self._port = server, bound
        try:
            await self.work_items.start()
            await server.start()
        except BaseException:
            self._server = None
            await server.stop(None)
            await self.work_items.stop(grace=0)
            raise
        await self._await_first_partitions()
        self._log.debug("%s", self.describe())

    async def _await_first_partitions(self) -> None:
        """Give the partition manager a moment for its first claim, so the startup line says
        what this sidecar owns (it keeps balancing afterwards, and logs each change)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._ownership_wait
        while self.owned_partitions() == frozenset() and loop.time() < deadline:
            await asyncio.sleep(0.1)

    async def stop(self, grace: float = 30.0) -> None:
        """Drain the work items (SDK workers may still complete theirs), release the
        partitions, then stop serving (remaining calls get up to 5 s, at most ``grace``)."""
        server, self._server = self._server, None
        if server is None:
            return
        try:
            await self.work_items.stop(grace=grace)
        finally:
            await server.stop(min(grace, 5.0))
            await self.client.close()

    async def wait_for_termination(self) -> None:
        """Return when the server has stopped."""
        if self._server is not None:
            await self._server.wait_for_termination()

    async def __aenter__(self) -> SidecarServer:
        await self.start()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()


def _join(host: str, port: int) -> str:
    """``host:port``, with an IPv6 host in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
