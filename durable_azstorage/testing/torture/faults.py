"""The faults the torture test injects, and the backend wrapper that injects storage errors.

``Crash`` stands for the worker process dying: it derives from ``BaseException`` so that no
``except Exception`` in the engine survives it, exactly as a SIGKILL would not be survived.
``TransientStorageError`` is an ordinary exception: the engine must back off and retry.
``FaultyBackend`` sits between one simulated worker's processors and the shared backend and
raises a transient error before or after a call when told to (after = the call happened, the
caller does not know: an ambiguous outcome, as a timed-out storage request has).
"""

from __future__ import annotations

import enum
from collections import Counter
from datetime import timedelta
from typing import TYPE_CHECKING, cast

from durable_azstorage.backend.protocol import (
    ActivityWorkItem,
    Backend,
    OrchestrationCommit,
    OrchestrationWorkItem,
)
from durable_azstorage.model.messages import TaskMessage
from durable_azstorage.model.state import InstanceState

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable


class Crash(BaseException):
    """The simulated worker process died at this point."""


class TransientStorageError(Exception):
    """A storage request failed in a way worth retrying (a 503, a reset connection)."""


class Fault(enum.Enum):
    """Every kind of fault, as counted in reports."""

    CRASH_AT_HISTORY = "crash after checkpoint step 'history'"
    CRASH_AT_MESSAGES = "crash after checkpoint step 'messages'"
    CRASH_AT_INSTANCE = "crash after checkpoint step 'instance'"
    TRANSIENT_AT_STEP = "storage error at a checkpoint step"
    CRASH_HOLDING_EPISODE = "crash while holding an orchestration work item"
    CRASH_BEFORE_ACTIVITY = "crash before running an activity"
    CRASH_AFTER_ACTIVITY = "crash after running an activity, before completing it"
    SLOW_EPISODE = "episode held while time passes (lock may expire mid-episode)"
    SLOW_ACTIVITY = "activity held while time passes (lock may expire)"
    ABANDON_DELAYED = "orchestration work item abandoned with a delay (reordering)"
    TRANSIENT_BEFORE = "storage error before a call"
    TRANSIENT_AFTER = "storage error after a call succeeded"
    DUPLICATE = "duplicate delivery of a message copy"
    LOCK_EXPIRY = "clock jump past the lock timeout"
    OUTLIVED_LOCK = "work item took over half its lock (real time on a slow machine, not injected)"
    CLOCK_BACK = "clock step backwards"


CRASH_STEPS = {
    "history": Fault.CRASH_AT_HISTORY,
    "messages": Fault.CRASH_AT_MESSAGES,
    "instance": Fault.CRASH_AT_INSTANCE,
}

FaultCounts = Counter[Fault]


class FaultyBackend:
    """One worker's view of the shared backend; ``arm(op, after)`` makes the next call of
    ``op`` fail with ``TransientStorageError`` once (before or after doing its work)."""

    def __init__(self, backend: Backend) -> None:
        self.inner = backend
        self._armed: dict[str, bool] = {}
        self.completing: tuple[OrchestrationWorkItem, OrchestrationCommit] | None = None
        self.observe_commit: Callable[[OrchestrationWorkItem, OrchestrationCommit], None] | None = (
            None
        )

    def arm(self, operation: str, *, after: bool) -> None:
        self._armed[operation] = after

    def disarm(self) -> None:
        self._armed.clear()

    def as_backend(self) -> Backend:
        """This wrapper typed as the protocol the processors take (it has what they call)."""
        return cast("Backend", self)

    async def _call(self, operation: str, call: Callable[[], Awaitable[None]]) -> None:
        after = self._armed.pop(operation, None)
        if after is False:
            raise TransientStorageError(f"injected: {operation} failed before it ran")
        await call()
        if after:
            raise TransientStorageError(f"injected: {operation} failed after it ran")

    async def lock_next_orchestration(self, timeout: float) -> OrchestrationWorkItem | None:
        return await self.inner.lock_next_orchestration(timeout)

    async def lock_next_activity(self, timeout: float) -> ActivityWorkItem | None:
        return await self.inner.lock_next_activity(timeout)

    async def get_instance(
        self, instance_id: str, *, fetch_payloads: bool = True
    ) -> InstanceState | None:
        return await self.inner.get_instance(instance_id, fetch_payloads=fetch_payloads)

    async def renew_orchestration(self, item: OrchestrationWorkItem) -> None:
        await self._call("renew_orchestration", lambda: self.inner.renew_orchestration(item))

    async def complete_orchestration(
        self, item: OrchestrationWorkItem, commit: OrchestrationCommit
    ) -> None:
        """Remembers what is being committed (the checkpoint hook reports step 1 of it) and
        reports a commit that returned (for backends without the hook)."""
        self.completing = (item, commit)
        try:
            await self._call("complete_orchestration", lambda: self._complete(item, commit))
        finally:
            self.completing = None

    async def _complete(self, item: OrchestrationWorkItem, commit: OrchestrationCommit) -> None:
        await self.inner.complete_orchestration(item, commit)
        if self.observe_commit is not None:
            self.observe_commit(item, commit)

    async def abandon_orchestration(
        self, item: OrchestrationWorkItem, *, delay: timedelta | None = None, deferred: bool = False
    ) -> None:
        await self._call(
            "abandon_orchestration",
            lambda: self.inner.abandon_orchestration(item, delay=delay, deferred=deferred),
        )

    async def renew_activity(self, item: ActivityWorkItem) -> None:
        await self._call("renew_activity", lambda: self.inner.renew_activity(item))

    async def complete_activity(self, item: ActivityWorkItem, result: TaskMessage) -> None:
        await self._call("complete_activity", lambda: self.inner.complete_activity(item, result))

    async def abandon_activity(
        self, item: ActivityWorkItem, *, delay: timedelta | None = None, deferred: bool = False
    ) -> None:
        await self._call(
            "abandon_activity",
            lambda: self.inner.abandon_activity(item, delay=delay, deferred=deferred),
        )
