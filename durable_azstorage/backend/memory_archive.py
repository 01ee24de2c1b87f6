"""The in-memory backend's archive of earlier executions' histories (``model.archive``).

The same semantics as the Azure backend's archive blobs: an ended execution is stored before
the commit that replaces it (a re-run episode stores it again under the same id), the newest
``limit`` per instance are kept, and purge drops them. Callers hold the backend's mutex.
"""

from __future__ import annotations

from collections.abc import Sequence

from durable_azstorage.model.archive import EndedExecution, retained
from durable_azstorage.model.history import HistoryEvent
from durable_azstorage.serialization.codec import decode_event, encode_event


class ArchivedExecutions:
    """Per instance: archived execution ids newest first, and their histories."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._order: dict[str, tuple[str, ...]] = {}
        self._histories: dict[tuple[str, str], tuple[HistoryEvent, ...]] = {}

    def archive(self, instance_id: str, ended: Sequence[EndedExecution]) -> None:
        kept, dropped = retained(
            self._order.get(instance_id, ()), [e.execution_id for e in ended], self.limit
        )
        # through the codec, as every stored event (Azure's blob holds them encoded), all
        # before the first change: an event that cannot be stored changes nothing
        stored = {
            e.execution_id: tuple(decode_event(encode_event(x)) for x in e.events)
            for e in ended
            if e.execution_id in kept
        }
        for execution_id, events in stored.items():
            self._histories[(instance_id, execution_id)] = events
        for execution_id in dropped:
            self._histories.pop((instance_id, execution_id), None)
        self._order[instance_id] = kept

    def get(self, instance_id: str, execution_id: str) -> list[HistoryEvent] | None:
        events = self._histories.get((instance_id, execution_id))
        return list(events) if events is not None else None

    def oldest_first(self, instance_id: str) -> list[str]:
        return list(reversed(self._order.get(instance_id, ())))

    def drop(self, instance_id: str) -> None:
        for execution_id in self._order.pop(instance_id, ()):
            self._histories.pop((instance_id, execution_id), None)
