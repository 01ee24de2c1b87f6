"""``StaleInstance``: an Instances-index row that disagrees with the authoritative history.

Backends whose instance index is written apart from the history (Azure: the Instances table
after the History sentinel) can be left inconsistent by a crash between the two writes; see
``azure.tracking.history_admin`` for how they are found and repaired.
"""

from __future__ import annotations

from dataclasses import dataclass

from durable_azstorage.model.status import OrchestrationStatus

REPAIRABLE = frozenset({"status", "execution", "missing-row"})
"""Problems the history can fix; ``missing-history`` (a row without history) it cannot."""


@dataclass(frozen=True, slots=True, kw_only=True)
class StaleInstance:
    """One disagreement. ``problem``: ``status``, ``execution``, ``missing-row`` or
    ``missing-history`` (described in ``azure.tracking.history_admin``)."""

    instance_id: str
    problem: str
    row_status: OrchestrationStatus | None
    history_status: OrchestrationStatus | None
    row_execution_id: str | None
    history_execution_id: str | None

    @property
    def repairable(self) -> bool:
        return self.problem in REPAIRABLE
