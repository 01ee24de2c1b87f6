"""A task hub's storage resources: create (idempotent, race-safe), delete, exists, info, list.

The hub's identity is one *hub-info row* in its ``{hub}Partitions`` table (PartitionKey
``"taskhub"``, RowKey ``"info"``; lease rows use PartitionKey ``""``, so a lease scan never
sees it). It stores the partition count fixed at creation, the creation time and creator.
Keeping it in the lease table means no extra table, and the row that decides how instances map
to control queues lives next to the leases of those queues.

Creation order makes concurrent creators agree: (1) create the Partitions table (an
"already exists" is success), (2) *insert* the info row — exactly one creator wins, every other
one reads the winner's row and adopts (or, with a different count, rejects) it, (3) create the
remaining queues/tables/container, each idempotently. A creator that crashed after (2) leaves a
hub that ``create_if_not_exists`` completes on its next run. Deletion removes the Partitions
table last, so a half-deleted hub still "exists" and can be deleted again.

On real Azure a deleted queue/table/container name is blocked for a while (409
``*BeingDeleted``); creation waits that out (up to ``BEING_DELETED_WAIT``). That is a targeted
wait on a known condition, not a blind retry of a 409.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta, timezone
from typing import Any

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError

from durable_azstorage.azure.storage.clients import StorageClients
from durable_azstorage.azure.storage.naming import TaskHubNames, validate_task_hub_name
from durable_azstorage.model.errors import (
    PartitionCountMismatchError,
    TaskHubNameConflictError,
    TaskHubNotFoundError,
)
from durable_azstorage.model.taskhub import TaskHubInfo

INFO_PARTITION_KEY = "taskhub"
INFO_ROW_KEY = "info"
FORMAT_VERSION = 1
BEING_DELETED_WAIT = timedelta(seconds=90)
_BEING_DELETED = frozenset({"QueueBeingDeleted", "TableBeingDeleted", "ContainerBeingDeleted"})
_PARTITIONS_SUFFIX = "Partitions"


class TaskHubResources:
    """The resources of one task hub, managed through shared ``StorageClients``.

    ``partition_count`` is the count this process is configured with (default: from
    ``clients.settings``); it is used when creating and checked against the stored one.
    """

    def __init__(
        self,
        clients: StorageClients,
        task_hub: str | None = None,
        partition_count: int | None = None,
    ) -> None:
        settings = clients.settings
        self._clients = clients
        self.names = TaskHubNames(
            validate_task_hub_name(task_hub or settings.task_hub),
            partition_count if partition_count is not None else settings.partition_count,
        )

    @property
    def task_hub(self) -> str:
        return self.names.task_hub

    async def create_if_not_exists(self) -> TaskHubInfo:
        """Create whatever is missing; return the hub's info.

        Raises ``PartitionCountMismatchError`` if the hub exists with another partition count.
        """
        names = self.names
        await self._create(lambda: self._clients.table(names.partitions_table).create_table())
        try:
            row = await self._insert_or_read_info()
        except ResourceNotFoundError:
            # Azurite: "create" found the table under another spelling, entity calls do not.
            await self._raise_if_spelled_otherwise()
            raise
        self._check_spelling(row)
        stored = int(row["PartitionCount"])
        if stored != names.partition_count:
            raise PartitionCountMismatchError(names.task_hub, stored, names.partition_count)
        creations: list[Callable[[], Awaitable[Any]]] = [
            *(self._clients.queue(q).create_queue for q in names.queues),
            *(
                self._clients.table(t).create_table
                for t in names.tables
                if t != names.partitions_table
            ),
            *(self._clients.container(c).create_container for c in names.containers),
        ]
        await asyncio.gather(*(self._create(op) for op in creations))
        return _info_from_row(row, missing=())

    async def exists(self) -> bool:
        """True if the hub-info row exists (one table read)."""
        return await self._read_info() is not None

    async def verify(self) -> TaskHubInfo:
        """The stored info, checked against this process's partition count.

        Raises ``TaskHubNotFoundError`` or ``PartitionCountMismatchError``. Workers and clients
        call this on start instead of silently re-mapping instances to other queues.
        """
        row = await self._read_info()
        if row is None:
            await self._raise_if_spelled_otherwise()
            raise TaskHubNotFoundError(self.task_hub)
        self._check_spelling(row)
        info = _info_from_row(row)
        if info.partition_count != self.names.partition_count:
            raise PartitionCountMismatchError(
                self.task_hub, info.partition_count, self.names.partition_count
            )
        return info

    async def info(self) -> TaskHubInfo:
        """The stored info plus which of the hub's resources are missing (≈ 4 requests).

        Uses the *stored* partition count for the resource list; raises
        ``TaskHubNotFoundError`` if there is no hub.
        """
        row = await self._read_info()
        if row is None:
            raise TaskHubNotFoundError(self.task_hub)
        names = TaskHubNames(self.task_hub, int(row["PartitionCount"]))
        retry = self._clients.retry
        prefix = names.task_hub.lower() + "-"

        async def queues() -> set[str]:
            return {
                q.name
                async for q in self._clients.queue_service.list_queues(name_starts_with=prefix)
            }

        async def tables() -> set[str]:
            query = " or ".join(f"TableName eq '{t}'" for t in names.tables)
            return {t.name async for t in self._clients.table_service.query_tables(query)}

        async def containers() -> set[str]:
            return {
                c.name
                async for c in self._clients.blob_service.list_containers(name_starts_with=prefix)
            }

        found_q, found_t, found_c = await asyncio.gather(
            retry.call(queues), retry.call(tables), retry.call(containers)
        )
        found = found_q | found_t | found_c
        missing = tuple(r for r in _all_resources(names) if r not in found)
        return _info_from_row(row, missing=missing)

    async def delete(self) -> bool:
        """Delete every resource of the hub; True if the hub existed. Idempotent."""
        row = await self._read_info()
        names = TaskHubNames(self.task_hub, int(row["PartitionCount"])) if row else self.names
        deletions: list[Callable[[], Awaitable[Any]]] = [
            *(self._clients.queue(q).delete_queue for q in names.queues),
            *(
                self._clients.table(t).delete_table
                for t in names.tables
                if t != names.partitions_table
            ),
            *(self._clients.container(c).delete_container for c in names.containers),
        ]
        await asyncio.gather(*(self._delete(op) for op in deletions))
        await self._delete(self._clients.table(names.partitions_table).delete_table)
        return row is not None

    # ------------------------------------------------------------------ internals

    def _check_spelling(self, row: dict[str, Any]) -> None:
        """Azure Storage: both spellings reach the same row, which names the first one."""
        stored = str(row.get("TaskHub") or self.task_hub)
        if stored != self.task_hub:
            raise TaskHubNameConflictError(self.task_hub, stored)

    async def _raise_if_spelled_otherwise(self) -> None:
        """Azurite: a case variant is another table to entity calls; find it by listing."""
        wanted = self.names.partitions_table

        async def variants() -> list[str]:
            return [
                t.name
                async for t in self._clients.table_service.list_tables()
                if t.name.lower() == wanted.lower() and t.name != wanted
            ]

        found = await self._clients.retry.call(variants)
        if found:
            raise TaskHubNameConflictError(self.task_hub, found[0][: -len(_PARTITIONS_SUFFIX)])

    async def _read_info(self) -> dict[str, Any] | None:
        table = self._clients.table(self.names.partitions_table)
        try:
            entity = await self._clients.retry.call(
                lambda: table.get_entity(INFO_PARTITION_KEY, INFO_ROW_KEY)
            )
        except ResourceNotFoundError:
            return None
        return dict(entity)

    async def _insert_or_read_info(self) -> dict[str, Any]:
        row = {
            "PartitionKey": INFO_PARTITION_KEY,
            "RowKey": INFO_ROW_KEY,
            "TaskHub": self.task_hub,
            "PartitionCount": self.names.partition_count,
            "CreatedTime": datetime.now(timezone.utc),
            "CreatedBy": self._clients.settings.worker_id,
            "FormatVersion": FORMAT_VERSION,
        }
        table = self._clients.table(self.names.partitions_table)
        try:
            await self._clients.retry.call(lambda: table.create_entity(row))
            return row
        except ResourceExistsError:
            pass  # another creator won (or our own first attempt did): adopt the stored row
        stored = await self._read_info()
        if stored is None:  # deleted between our insert and read: a concurrent delete won
            raise TaskHubNotFoundError(self.task_hub)
        return stored

    async def _create(self, op: Callable[[], Awaitable[Any]]) -> None:
        deadline = asyncio.get_running_loop().time() + BEING_DELETED_WAIT.total_seconds()
        while True:
            try:
                await self._clients.retry.call(op)
                return
            except ResourceExistsError as exc:
                if getattr(exc, "error_code", None) not in _BEING_DELETED:
                    return  # already exists: that is what we wanted
                if asyncio.get_running_loop().time() > deadline:
                    raise
            await asyncio.sleep(2.0)

    async def _delete(self, op: Callable[[], Awaitable[Any]]) -> None:
        try:
            await self._clients.retry.call(op)
        except ResourceNotFoundError:
            pass


async def list_task_hubs(clients: StorageClients) -> list[TaskHubInfo]:
    """Every task hub in the account: tables named ``*Partitions`` holding a hub-info row.

    Costs one table listing plus one read per candidate table.
    """

    async def partition_tables() -> list[str]:
        return [t.name async for t in clients.table_service.list_tables()]

    candidates = [
        name
        for name in await clients.retry.call(partition_tables)
        if name.endswith(_PARTITIONS_SUFFIX) and len(name) > len(_PARTITIONS_SUFFIX)
    ]
    hubs: list[TaskHubInfo] = []
    for name in sorted(candidates):
        hub = name[: -len(_PARTITIONS_SUFFIX)]
        try:
            resources = TaskHubResources(clients, hub, 1)
        except ValueError:
            continue  # not a name this package would create
        row = await resources._read_info()
        if row is not None:
            hubs.append(_info_from_row(row))
    return hubs


def _all_resources(names: TaskHubNames) -> tuple[str, ...]:
    return (*names.queues, *names.tables, *names.containers)


def _info_from_row(row: dict[str, Any], missing: tuple[str, ...] | None = None) -> TaskHubInfo:
    names = TaskHubNames(str(row["TaskHub"]), int(row["PartitionCount"]))
    created = row["CreatedTime"]
    created = datetime.fromtimestamp(created.timestamp(), tz=timezone.utc)
    return TaskHubInfo(
        task_hub=names.task_hub,
        partition_count=names.partition_count,
        created_time=created,
        created_by=str(row.get("CreatedBy", "")),
        resources=_all_resources(names),
        missing=missing,
    )
