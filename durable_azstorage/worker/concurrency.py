"""``ConcurrencyOptions``: the portable SDK's way to bound a worker's parallel work.

``TaskHubWorker(concurrency_options=ConcurrencyOptions(...))`` is the same setting as the
worker's own ``max_concurrent_orchestrations`` / ``max_concurrent_activities`` keywords,
under the SDK's names, so SDK code ports unchanged. Unset values keep this package's
defaults (100 orchestration work items, 10 activities), not the SDK's ``100 * cpu_count``:
activities run in a thread pool here, and a thousand threads on a small VM is no default.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_ORCHESTRATIONS = 100
DEFAULT_ACTIVITIES = 10


@dataclass(frozen=True, slots=True)
class ConcurrencyOptions:
    """Limits per worker; ``None`` keeps the default.

    ``maximum_thread_pool_workers`` sizes the pool that runs plain (non-async) activities;
    by default it equals the activity limit. ``maximum_concurrent_entity_work_items`` is
    accepted for SDK compatibility and has no effect until entities are supported.
    """

    maximum_concurrent_activity_work_items: int | None = None
    maximum_concurrent_orchestration_work_items: int | None = None
    maximum_concurrent_entity_work_items: int | None = None
    maximum_thread_pool_workers: int | None = None

    def __post_init__(self) -> None:
        for name in (
            "maximum_concurrent_activity_work_items",
            "maximum_concurrent_orchestration_work_items",
            "maximum_concurrent_entity_work_items",
            "maximum_thread_pool_workers",
        ):
            value = getattr(self, name)
            if value is not None and (
                not isinstance(value, int) or isinstance(value, bool) or value < 1
            ):
                raise ValueError(
                    f"ConcurrencyOptions.{name} must be a positive integer, got {value!r}"
                )

    @property
    def orchestrations(self) -> int:
        return self.maximum_concurrent_orchestration_work_items or DEFAULT_ORCHESTRATIONS

    @property
    def activities(self) -> int:
        return self.maximum_concurrent_activity_work_items or DEFAULT_ACTIVITIES

    @property
    def activity_threads(self) -> int:
        return self.maximum_thread_pool_workers or self.activities
