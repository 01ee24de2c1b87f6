"""What the dashboard may use of a backend beyond the ``Backend`` protocol, found by shape.

Poison quarantine, partition leases and request counting are operational features of one
backend (Azure), not part of the storage seam. The dashboard declares the shapes it needs
here and checks for them at run time (as the client does with ``backend.protocol.IndexRepair``),
so it never imports the Azure provider: a backend that has the methods lights up the matching
panel; one that has not (the in-memory backend) shows "not available".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Protocol, runtime_checkable


class PoisonMessage(Protocol):
    """One quarantined message (``azure.messaging.poison_store.PoisonRecord`` has this shape)."""

    @property
    def key(self) -> str: ...
    @property
    def queue_name(self) -> str: ...
    @property
    def message_id(self) -> str: ...
    @property
    def dequeue_count(self) -> int: ...
    @property
    def reason(self) -> str: ...
    @property
    def body(self) -> str: ...
    @property
    def instance_id(self) -> str | None: ...
    @property
    def quarantined_at(self) -> datetime: ...


@runtime_checkable
class PoisonQuarantine(Protocol):
    """A backend that sets poison messages aside (``AzureStorageBackend``)."""

    async def list_poison(self) -> Sequence[PoisonMessage]: ...

    async def get_poison(self, key: str) -> PoisonMessage | None: ...

    async def replay_poison(self, key: str) -> bool: ...

    async def delete_poison(self, key: str) -> bool: ...


class PartitionLease(Protocol):
    """One control-queue partition
    (``azure.partitioning.lease_table.PartitionInfo`` has this shape)."""

    @property
    def partition(self) -> int: ...
    @property
    def queue(self) -> str: ...
    @property
    def owner(self) -> str | None: ...
    @property
    def next_owner(self) -> str | None: ...
    @property
    def expires_at(self) -> datetime | None: ...
    @property
    def is_draining(self) -> bool: ...
    @property
    def approximate_messages(self) -> int: ...
    @property
    def oldest_message_age(self) -> timedelta | None: ...


@runtime_checkable
class HubMonitor(Protocol):
    """Queue-level facts about a hub: partition leases and backlogs, work-item backlog."""

    async def describe_partitions(self) -> Sequence[PartitionLease]: ...

    async def work_item_backlog(self) -> int: ...


class RequestSnapshot(Protocol):
    @property
    def counts(self) -> Mapping[tuple[str, str], int]: ...


class RequestTally(Protocol):
    def snapshot(self) -> RequestSnapshot: ...


@runtime_checkable
class CountsRequests(Protocol):
    """A backend that counts its storage requests by (service, operation)."""

    @property
    def request_counter(self) -> RequestTally: ...
