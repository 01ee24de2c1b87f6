"""``DurableRuntime``: a worker and a client on one ``InMemoryBackend`` with a fake clock.

For users' own tests of their orchestrations (the ``durable_runtime`` pytest fixture builds
one). Nothing touches storage or the network, and durable time only moves when the test
says so: ``skip_timer(instance_id)`` jumps straight to the instance's next timer, so a
3-day reminder completes in milliseconds. Orchestrator code sees the fake time through
``ctx.current_utc_datetime``; the clock starts at the real "now".

Move the clock while the instance waits on its timer: work items locked at that moment
(an activity still running) see their lock expire and are delivered again, as they would
after a real three-day stall.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from types import TracebackType
from typing import Any

from durable_azstorage.backend.clock import FakeClock
from durable_azstorage.backend.memory import InMemoryBackend
from durable_azstorage.client.client import TaskHubClient
from durable_azstorage.model.history import HistoryEvent, TimerCreated, TimerFired
from durable_azstorage.testing.eventually import eventually
from durable_azstorage.worker.worker import TaskHubWorker


class DurableRuntime:
    """``worker``, ``client``, ``backend`` and ``clock`` wired together; a context manager."""

    def __init__(self, *, start: datetime | None = None) -> None:
        self.clock = FakeClock(start or datetime.now(timezone.utc))
        self.backend = InMemoryBackend(clock=self.clock)
        self.worker = TaskHubWorker(backend=self.backend, lock_renew_interval=timedelta(seconds=1))
        self.client = TaskHubClient(backend=self.backend)

    def add_orchestrator(self, fn: Callable[..., Any], name: str | None = None) -> str:
        return self.worker.add_orchestrator(fn, name)

    def add_activity(self, fn: Callable[..., Any], name: str | None = None) -> str:
        return self.worker.add_activity(fn, name)

    def start(self) -> DurableRuntime:
        """Start the worker (register functions first)."""
        self.worker.start()
        return self

    def close(self) -> None:
        """Stop the worker and close the client."""
        self.worker.stop(grace=timedelta(seconds=5))
        self.client.close()

    def advance(self, delta: timedelta | float) -> datetime:
        """Move durable time forward by ``delta`` (seconds or a timedelta); the new time."""
        return self.clock.advance(delta)

    def skip_timer(self, instance_id: str, *, timeout: float = 10.0) -> datetime:
        """Wait until ``instance_id`` waits on a durable timer, then jump to its fire time.

        ``EventuallyTimeout`` (an ``AssertionError``) when no pending timer appears within
        ``timeout`` real seconds.
        """
        due = eventually(
            lambda: _next_timer(self.client.get_orchestration_history(instance_id)),
            timeout=timeout,
            interval=0.005,
            what=f"orchestration {instance_id!r} to wait on a durable timer",
        )
        assert due is not None  # eventually returns only a truthy value
        ahead = due - self.clock.now()
        return self.clock.advance(ahead) if ahead > timedelta(0) else self.clock.now()

    def __enter__(self) -> DurableRuntime:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _next_timer(history: list[HistoryEvent]) -> datetime | None:
    fired = {e.timer_id for e in history if isinstance(e, TimerFired)}
    pending = [
        e.fire_at for e in history if isinstance(e, TimerCreated) and e.event_id not in fired
    ]
    return min(pending, default=None)
