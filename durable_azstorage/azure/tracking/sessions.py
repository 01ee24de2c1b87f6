"""Extended sessions: a bounded LRU of committed orchestration states kept between episodes.

A History read is a table query (a full scan on Azurite) and replaying from scratch costs CPU;
an instance whose committed history this process wrote last needs neither. An entry is valid
while its sentinel ETag is current: every commit is ETag-guarded, so a stale entry (another
writer committed) fails its commit with a conflict and is dropped (``discard``). Entries are
also dropped when idle for ``idle_timeout`` and when their partition is lost or (re)gained.

The entry also remembers the Instances row last written, so an episode that changes nothing
a query can see skips that write.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from durable_azstorage.azure.tracking.history_store import Sentinel
from durable_azstorage.model.history import HistoryEvent
from durable_azstorage.model.state import InstanceState


@dataclass(frozen=True, slots=True, kw_only=True)
class Session:
    events: tuple[HistoryEvent, ...]
    sentinel: Sentinel
    state: InstanceState | None
    touched: float
    row_etag: str | None = None  # of the Instances row this process wrote last


class SessionCache:
    """LRU of ``Session`` by instance id; ``capacity`` 0 disables caching."""

    def __init__(self, capacity: int, idle_timeout: float) -> None:
        self.capacity = capacity
        self.idle_timeout = idle_timeout
        self._entries: OrderedDict[str, Session] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(self, instance_id: str) -> Session | None:
        entry = self._entries.get(instance_id)
        if entry is None or time.monotonic() - entry.touched > self.idle_timeout:
            self._entries.pop(instance_id, None)
            self.misses += 1
            return None
        self._entries.move_to_end(instance_id)
        self.hits += 1
        return entry

    def put(
        self,
        instance_id: str,
        events: tuple[HistoryEvent, ...],
        sentinel: Sentinel,
        state: InstanceState | None,
        row_etag: str | None = None,
    ) -> None:
        if self.capacity <= 0:
            return
        self._entries[instance_id] = Session(
            events=events,
            sentinel=sentinel,
            state=state,
            touched=time.monotonic(),
            row_etag=row_etag,
        )
        self._entries.move_to_end(instance_id)
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)

    def peek(self, instance_id: str) -> Session | None:
        """The entry, if any, without touching it or counting a hit or miss."""
        return self._entries.get(instance_id)

    def discard(self, instance_id: str) -> None:
        self._entries.pop(instance_id, None)

    def clear(self) -> None:
        self._entries.clear()

    def discard_if(self, predicate: Callable[[str], bool]) -> int:
        """Drop the entries whose instance id matches (e.g. those of a lost partition)."""
        doomed = [i for i in self._entries if predicate(i)]
        for instance_id in doomed:
            del self._entries[instance_id]
        return len(doomed)

    def __len__(self) -> int:
        return len(self._entries)
