"""Runtime status of an orchestration instance (names as the Durable Task Framework stores them)."""

from __future__ import annotations

import enum


class OrchestrationStatus(enum.Enum):
    """Values are the strings stored in the Instances table's RuntimeStatus column."""

    RUNNING = "Running"
    COMPLETED = "Completed"
    CONTINUED_AS_NEW = "ContinuedAsNew"
    FAILED = "Failed"
    TERMINATED = "Terminated"
    PENDING = "Pending"
    SUSPENDED = "Suspended"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATUSES

    @classmethod
    def parse(cls, value: str | OrchestrationStatus) -> OrchestrationStatus:
        """Accepts the stored value or the member name, case-insensitively."""
        if isinstance(value, OrchestrationStatus):
            return value
        key = value.strip().replace("_", "").lower()
        for member in cls:
            if key in (member.value.lower(), member.name.replace("_", "").lower()):
                return member
        allowed = ", ".join(m.value for m in cls)
        raise ValueError(f"unknown orchestration status {value!r}; expected one of: {allowed}")


TERMINAL_STATUSES = frozenset(
    {OrchestrationStatus.COMPLETED, OrchestrationStatus.FAILED, OrchestrationStatus.TERMINATED}
)
