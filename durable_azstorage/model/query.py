"""Instance queries and their results."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Generic, TypeVar

from durable_azstorage.model.status import OrchestrationStatus

T = TypeVar("T")


@dataclass(frozen=True, slots=True, kw_only=True)
class OrchestrationQuery:
    """Filters combine with AND; several ``runtime_status`` values combine with OR."""

    created_time_from: datetime | None = None
    created_time_to: datetime | None = None
    runtime_status: tuple[OrchestrationStatus, ...] | None = None
    instance_id_prefix: str | None = None
    page_size: int = 100
    continuation_token: str | None = None
    fetch_inputs_and_outputs: bool = False

    def __post_init__(self) -> None:
        if not 1 <= self.page_size <= 1000:
            raise ValueError(f"page_size must be between 1 and 1000, got {self.page_size}")
        if self.runtime_status is not None:
            object.__setattr__(
                self,
                "runtime_status",
                tuple(OrchestrationStatus.parse(s) for s in self.runtime_status),
            )


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of results; ``continuation_token`` is None on the last page."""

    items: list[T] = field(default_factory=list)
    continuation_token: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class PurgeResult:
    deleted_instance_count: int
    is_complete: bool = True
