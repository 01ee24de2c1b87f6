"""A scripted stand-in for the work-item half of a ``Backend``, for dispatcher unit tests.

Work items are handed out in the order they were ``offer``-ed; every renewal, completion
and abandon is recorded, so a test can say exactly what the worker did with an item.
``lose_lock`` makes the next renewals of an item raise ``LockLostError``, ``fail_renewals``
makes them raise a transient error. The client half of the protocol is not used by the
worker loop and is not here (the tests pass this object where a ``Backend`` is expected).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from durable_azstorage.backend.protocol import (
    ActivityWorkItem,
    OrchestrationCommit,
    OrchestrationWorkItem,
)
from durable_azstorage.model.errors import LockLostError
from durable_azstorage.model.messages import TaskMessage
from durable_azstorage.model.state import InstanceState

WorkItem = OrchestrationWorkItem | ActivityWorkItem


@dataclass
class FakeBackend:
    """Hands out offered work items and records what the worker does with them."""

    orchestrations: asyncio.Queue[OrchestrationWorkItem] = field(default_factory=asyncio.Queue)
    activities: asyncio.Queue[ActivityWorkItem] = field(default_factory=asyncio.Queue)
    instances: dict[str, InstanceState] = field(default_factory=dict)
    renewed: list[WorkItem] = field(default_factory=list)
    completed: list[tuple[WorkItem, OrchestrationCommit | TaskMessage]] = field(
        default_factory=list
    )
    abandoned: list[tuple[WorkItem, timedelta | None]] = field(default_factory=list)
    renew_attempts: int = 0
    fetches: int = 0
    cancelled_fetches: int = 0
    fetch_error: Exception | None = None
    _lost: set[int] = field(default_factory=set)
    _failing_renewals: dict[int, int] = field(default_factory=dict)

    def offer(self, item: WorkItem) -> None:
        if isinstance(item, OrchestrationWorkItem):
            self.orchestrations.put_nowait(item)
        else:
            self.activities.put_nowait(item)

    def lose_lock(self, item: WorkItem) -> None:
        """Every later renewal of ``item`` raises ``LockLostError``."""
        self._lost.add(id(item))

    def fail_renewals(self, item: WorkItem, times: int) -> None:
        """The next ``times`` renewals of ``item`` raise a transient error."""
        self._failing_renewals[id(item)] = times

    # --- the work-item half of Backend ------------------------------------------------------
    async def lock_next_orchestration(self, timeout: float) -> OrchestrationWorkItem | None:
        return await self._next(self.orchestrations, timeout)

    async def lock_next_activity(self, timeout: float) -> ActivityWorkItem | None:
        return await self._next(self.activities, timeout)

    async def renew_orchestration(self, item: OrchestrationWorkItem) -> None:
        self._renew(item)

    async def renew_activity(self, item: ActivityWorkItem) -> None:
        self._renew(item)

    async def complete_orchestration(
        self, item: OrchestrationWorkItem, commit: OrchestrationCommit
    ) -> None:
        self.completed.append((item, commit))

    async def complete_activity(self, item: ActivityWorkItem, result: TaskMessage) -> None:
        self.completed.append((item, result))

    async def abandon_orchestration(
        self, item: OrchestrationWorkItem, *, delay: timedelta | None = None, deferred: bool = False
    ) -> None:
        self.abandoned.append((item, delay))

    async def abandon_activity(
        self, item: ActivityWorkItem, *, delay: timedelta | None = None, deferred: bool = False
    ) -> None:
        self.abandoned.append((item, delay))

    async def get_instance(
        self, instance_id: str, *, fetch_payloads: bool = True
    ) -> InstanceState | None:
        return self.instances.get(instance_id)

    async def _next(self, queue: asyncio.Queue[Any], timeout: float) -> Any:
        self.fetches += 1
        if self.fetch_error is not None:
            raise self.fetch_error
        try:
            return await asyncio.wait_for(queue.get(), timeout)
        except asyncio.TimeoutError:
            return None
        except asyncio.CancelledError:
            self.cancelled_fetches += 1
            raise

    def _renew(self, item: WorkItem) -> None:
        self.renew_attempts += 1
        if id(item) in self._lost:
            raise LockLostError(f"lock of {item!r} expired")
        left = self._failing_renewals.get(id(item), 0)
        if left:
            self._failing_renewals[id(item)] = left - 1
            raise ConnectionError("storage hiccup")
        self.renewed.append(item)
