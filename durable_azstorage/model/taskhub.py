"""What is known about a task hub: its stored partition count, creation, resources."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class TaskHubInfo:
    """The hub-info record, plus (from an ``info`` call) which resources are missing.

    ``missing`` is ``None`` when resources were not checked (listing all hubs).
    """

    task_hub: str
    partition_count: int
    created_time: datetime
    created_by: str
    resources: tuple[str, ...]
    missing: tuple[str, ...] | None = None
