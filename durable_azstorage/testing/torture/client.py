"""The simulated client: creates the instances, raises their events, suspends, resumes,
terminates and purges them, through the engine's own ``AsyncTaskHubClient``.

It acts like a careful user: it resumes only what it saw suspended, purges only top-level
instances it saw end (and none a stale start copy could bring back), and skips purged ones.
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Callable

from durable_azstorage.backend.protocol import Backend
from durable_azstorage.client.async_client import AsyncTaskHubClient
from durable_azstorage.model.history import ExecutionStarted, OrchestrationInstance
from durable_azstorage.model.messages import TaskMessage
from durable_azstorage.model.status import OrchestrationStatus
from durable_azstorage.testing.torture import programs
from durable_azstorage.testing.torture.invariants import Invariants

TERMINATED_OUTPUT = "terminated by the torture client"


class TortureClient:
    """What the client still has to do for the run's top-level ``instances``."""

    def __init__(
        self,
        backend: Backend,
        instances: list[programs.Instance],
        *,
        rng: random.Random,
        invariants: Invariants,
        trace: Callable[[str], None],
    ) -> None:
        self._backend = backend
        self._client = AsyncTaskHubClient(backend=backend)
        self._instances = instances
        self._rng = rng
        self._inv = invariants
        self._trace = trace
        self.pending_events = [(i.instance_id, n) for i in instances for n in i.client_events]
        self.to_suspend = [i.instance_id for i in instances if i.suspend]
        self.to_terminate = [i.instance_id for i in instances if i.terminate]
        self.restartable: set[str] = set()

    async def create_all(self) -> list[TaskMessage]:
        """Create every instance (some events are raised before any of them ran); returns
        the start messages."""
        starts = []
        for top in self._instances:
            execution = uuid.UUID(int=self._rng.getrandbits(128)).hex
            instance = OrchestrationInstance(instance_id=top.instance_id, execution_id=execution)
            state = json.dumps({"steps": top.steps, "acc": [], "gen": 0}, separators=(",", ":"))
            message = TaskMessage(
                instance=instance,
                event=ExecutionStarted(name=programs.ORCHESTRATOR, instance=instance, input=state),
            )
            await self._backend.create_instance(message)
            starts.append(message)
            self._trace(f"client create {top.instance_id} {top.steps}")
        for target, name in list(self.pending_events):
            if self._rng.random() < 0.3:
                await self.raise_event(target, name)
        return starts

    async def raise_event(self, target: str, name: str) -> None:
        self.pending_events.remove((target, name))
        if target in self._inv.purged:
            return  # a terminated instance's events may outlive it
        await self._client.raise_orchestration_event(
            target, name, data=programs.event_payload(target, name)
        )
        self._trace(f"client raises {name} on {target}")

    async def act(self) -> None:
        """One random thing the client still has to do, if any."""
        choices: list[tuple[str, int]] = []
        if self.pending_events:
            choices.append(("raise", 4))
        if self.to_suspend:
            choices.append(("suspend", 1))
        if self.suspended():
            choices.append(("resume", 2))
        if self.to_terminate:
            choices.append(("terminate", 1))
        if self._purgeable():
            choices.append(("purge", 1))
        if not choices:
            return
        action = self._rng.choices([c for c, _ in choices], weights=[w for _, w in choices])[0]
        if action == "raise":
            await self.raise_event(*self._rng.choice(self.pending_events))
        elif action == "suspend":
            target = self.to_suspend.pop(self._rng.randrange(len(self.to_suspend)))
            if target not in self._inv.purged:
                await self._client.suspend_orchestration(target, reason="torture")
                self._trace(f"client suspends {target}")
        elif action == "resume":
            await self.resume(self._rng.choice(self.suspended()))
        elif action == "terminate":
            await self.terminate(self.to_terminate.pop(self._rng.randrange(len(self.to_terminate))))
        else:
            target = self._rng.choice(self._purgeable())
            self._inv.purged.add(target)
            await self._backend.purge_instance(target)
            self._trace(f"client purges {target}")

    async def finish(self, resumed: set[str]) -> bool:
        """Do what is left at once (drain); resume each suspended instance once per call
        set. True if something was sent that needs a worker."""
        busy = bool(self.pending_events or self.to_terminate)
        for target, name in list(self.pending_events):
            await self.raise_event(target, name)
        while self.to_terminate:
            await self.terminate(self.to_terminate.pop())
        for target in self.suspended():
            if target not in resumed:
                resumed.add(target)
                await self.resume(target)
        return busy

    async def terminate(self, target: str) -> None:
        await self._client.terminate_orchestration(target, output=TERMINATED_OUTPUT)
        self._trace(f"client terminates {target}")

    async def resume(self, target: str) -> None:
        await self._client.resume_orchestration(target, reason="torture")
        self._trace(f"client resumes {target}")

    def suspended(self) -> list[str]:
        return [
            i
            for i, s in self._inv.seen.items()
            if s.runtime_status is OrchestrationStatus.SUSPENDED and i not in self._inv.purged
        ]

    def _purgeable(self) -> list[str]:
        return [
            i.instance_id
            for i in self._instances
            if i.instance_id in self._inv.final
            and i.instance_id not in self._inv.purged | self.restartable
            and not programs.children(i.instance_id, i.steps)
        ]
