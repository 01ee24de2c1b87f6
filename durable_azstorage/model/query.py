"""Instance queries and their results (the portable SDK's names)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Generic, TypeVar

from durable_azstorage.model.status import OrchestrationStatus

T = TypeVar("T")


@dataclass(frozen=True, slots=True, kw_only=True)
class OrchestrationQuery:
    """Filters combine with AND; several ``runtime_status`` values combine with OR.

    Naive datetimes are taken as UTC. ``max_instance_count`` is the portable SDK's name for the page size: when given it sets
    ``page_size`` (capped at 1000; ``get_all_orchestration_states`` follows pages anyway).
    """

    created_time_from: datetime | None = None
    created_time_to: datetime | None = None
    runtime_status: tuple[OrchestrationStatus, ...] | None = None  # a list is accepted too
    instance_id_prefix: str | None = None
    page_size: int = 100
    continuation_token: str | None = None
    fetch_inputs_and_outputs: bool = False
    max_instance_count: int | None = None

    def __post_init__(self) -> None:
        for name in ("created_time_from", "created_time_to"):  # naive datetimes are UTC
            value = getattr(self, name)
            if value is not None and value.tzinfo is None:
                object.__setattr__(self, name, value.replace(tzinfo=timezone.utc))
        if self.max_instance_count is not None:
            if self.max_instance_count < 1:
                raise ValueError(
                    f"max_instance_count must be at least 1, got {self.max_instance_count}"
                )
            object.__setattr__(self, "page_size", min(self.max_instance_count, 1000))
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
class PurgeInstancesResult:
    """How many instances a purge deleted; ``is_complete`` is False when it ran out of time."""

    deleted_instance_count: int
    is_complete: bool | None = True


def __getattr__(name: str) -> Any:
    if name == "PurgeResult":  # the earlier name, kept one release
        warnings.warn(
            "PurgeResult is deprecated; use PurgeInstancesResult", DeprecationWarning, stacklevel=2
        )
        return PurgeInstancesResult
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
