"""The seam between the conformance tests and a backend under test.

A ``BackendHarness`` wraps a freshly created, empty task hub plus the knobs a test needs to
drive time: ``advance(seconds)`` jumps a fake clock (in-memory) or really sleeps (Azure, whose
factory configures short lock and visibility timeouts so that sleeps stay short). Tests express
every duration through the harness (``lock_timeout``, ``delay``) so the same test is instant on
memory and takes seconds on Azurite.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from durable_azstorage.backend.protocol import ActivityWorkItem, Backend, OrchestrationWorkItem
from durable_azstorage.model.archive import DEFAULT_ARCHIVED_EXECUTIONS


@dataclass(kw_only=True)
class BackendHarness:
    """A backend on an empty task hub, and how to move its time.

    ``peer`` is a second backend on the same task hub (a competing worker); an implementation
    whose state lives in one process may pass the same object. ``lock_timeout`` is the lock
    (visibility) timeout the backend was built with. ``delay`` is a visibility delay long
    enough that ``empty_timeout`` passes well before it ends. ``receive_timeout`` is how long
    (real seconds) to wait for a work item that must come; ``empty_timeout`` how long to wait
    before concluding that none will.
    """

    name: str
    backend: Backend
    peer: Backend
    lock_timeout: timedelta
    delay: timedelta
    receive_timeout: float
    empty_timeout: float
    now: Callable[[], datetime]
    sleep: Callable[[float], Awaitable[None]] = field(default=asyncio.sleep)
    archived_executions: int = DEFAULT_ARCHIVED_EXECUTIONS
    """Earlier executions the backend keeps per instance (``ExecutionArchiveConformance``)."""

    async def advance(self, by: timedelta | float) -> None:
        """Let ``by`` pass on the backend's clock."""
        seconds = by.total_seconds() if isinstance(by, timedelta) else float(by)
        await self.sleep(seconds)

    async def expire_locks(self) -> None:
        """Let every lock taken so far expire."""
        await self.advance(self.lock_timeout + timedelta(seconds=1))

    async def lock_orchestration(self, backend: Backend | None = None) -> OrchestrationWorkItem:
        """The next orchestration work item, which must come within ``receive_timeout``."""
        item = await (backend or self.backend).lock_next_orchestration(self.receive_timeout)
        assert item is not None, f"[{self.name}] expected an orchestration work item, got none"
        return item

    async def lock_activity(self, backend: Backend | None = None) -> ActivityWorkItem:
        item = await (backend or self.backend).lock_next_activity(self.receive_timeout)
        assert item is not None, f"[{self.name}] expected an activity work item, got none"
        return item

    async def no_orchestration(self, backend: Backend | None = None) -> bool:
        """True if no orchestration work item is handed out within ``empty_timeout``."""
        item = await (backend or self.backend).lock_next_orchestration(self.empty_timeout)
        return item is None

    async def no_activity(self, backend: Backend | None = None) -> bool:
        item = await (backend or self.backend).lock_next_activity(self.empty_timeout)
        return item is None
