"""Work-item filters: which work items an SDK worker's ``GetWorkItems`` stream accepts.

A worker that sends ``workItemFilters`` (the SDK's ``use_work_item_filters``) gets only the
orchestrations, activities and entities its filters name, and, where a filter lists versions, only
those versions. A worker without filters gets everything. An item that no connected stream
accepts is never sent: the engine defers it (``ExecutionAbandoned(deferred=True)``), it
keeps its status (a new instance stays Pending) and the deferrals never count toward poison.
"""

from __future__ import annotations

from dataclasses import dataclass

from durabletask.internal import orchestrator_service_pb2 as pb


@dataclass(frozen=True, slots=True)
class WorkItemFilter:
    """One stream's filters: per kind, name -> accepted versions (empty: any version)."""

    orchestrations: dict[str, frozenset[str]]
    activities: dict[str, frozenset[str]]
    entities: frozenset[str] = frozenset()

    @classmethod
    def from_request(cls, request: pb.GetWorkItemsRequest) -> WorkItemFilter | None:
        """The stream's filters, or None when it sent none (it accepts every item)."""
        if not request.HasField("workItemFilters"):
            return None
        filters = request.workItemFilters
        return cls(
            orchestrations={f.name: frozenset(f.versions) for f in filters.orchestrations},
            activities={f.name: frozenset(f.versions) for f in filters.activities},
            entities=frozenset(f.name.lower() for f in filters.entities),
        )

    def accepts(self, kind: str, name: str, version: str | None) -> bool:
        """True if the stream takes a ``kind`` item named ``name`` of ``version``."""
        if kind == "entity":  # entity names are case-insensitive and unversioned
            return name.lower() in self.entities
        if kind == "orchestration":
            table = self.orchestrations
        elif kind == "activity":
            table = self.activities
        else:
            return True  # other kinds are not filtered here
        versions = table.get(name)
        if versions is None:
            return False
        return not versions or (version or "") in versions


__all__ = ["WorkItemFilter"]
