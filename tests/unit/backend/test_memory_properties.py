"""Property: whatever workers do (lock, complete, abandon, renew, let locks expire), every
message sent is consumed by exactly one successful completion, and an instance is never
locked twice at once."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import datetime, timedelta, timezone

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from durable_azstorage.backend.clock import FakeClock
from durable_azstorage.backend.memory import InMemoryBackend
from durable_azstorage.backend.protocol import OrchestrationCommit, OrchestrationWorkItem
from durable_azstorage.model import history as h
from durable_azstorage.model.errors import LockLostError
from durable_azstorage.model.messages import TaskMessage
from durable_azstorage.model.state import InstanceState
from durable_azstorage.model.status import OrchestrationStatus

INSTANCES = ("a", "b")
LOCK = timedelta(seconds=10)

operations = st.lists(
    st.one_of(
        st.tuples(st.just("send"), st.sampled_from(INSTANCES)),
        st.tuples(st.just("lock"), st.none()),
        st.tuples(st.just("complete"), st.integers(0, 2)),
        st.tuples(st.just("abandon"), st.integers(0, 2)),
        st.tuples(st.just("renew"), st.integers(0, 2)),
        st.tuples(st.just("advance"), st.sampled_from([4, 11])),
    ),
    max_size=40,
)


def _key(message: TaskMessage) -> str:
    event = message.event
    if isinstance(event, h.EventRaised):
        return event.name
    return f"start-{message.instance.instance_id}"


def _state(instance_id: str, now: datetime) -> InstanceState:
    return InstanceState(
        instance_id=instance_id,
        name="Orch",
        runtime_status=OrchestrationStatus.RUNNING,
        created_at=now,
        last_updated_at=now,
    )


class _Run:
    def __init__(self) -> None:
        self.clock = FakeClock(datetime(2026, 1, 1, tzinfo=timezone.utc))
        self.backend = InMemoryBackend(clock=self.clock, lock_timeout=LOCK)
        self.held: list[tuple[OrchestrationWorkItem, datetime]] = []
        self.sent: Counter[str] = Counter()
        self.consumed: Counter[str] = Counter()
        self.counter = 0

    async def start(self) -> None:
        for instance_id in INSTANCES:
            target = h.OrchestrationInstance(instance_id=instance_id, execution_id="e")
            start = TaskMessage(
                instance=target, event=h.ExecutionStarted(name="Orch", instance=target)
            )
            await self.backend.create_instance(start)
            self.sent[_key(start)] += 1

    async def step(self, op: str, arg: object) -> None:
        if op == "send":
            self.counter += 1
            message = TaskMessage(
                instance=h.OrchestrationInstance(instance_id=str(arg)),
                event=h.EventRaised(name=f"ev{self.counter}"),
            )
            await self.backend.send_message(message)
            self.sent[_key(message)] += 1
        elif op == "lock":
            item = await self.backend.lock_next_orchestration(0)
            if item is not None:
                self._check_exclusive(item)
                self.held.append((item, self.clock.now() + LOCK))
        elif op == "advance":
            self.clock.advance(float(arg))  # type: ignore[arg-type]
        elif self.held:
            index = int(arg) % len(self.held)  # type: ignore[call-overload]
            item, _ = self.held[index]
            await getattr(self, op)(item, index)

    async def complete(self, item: OrchestrationWorkItem, index: int) -> None:
        commit = OrchestrationCommit(
            new_events=tuple(m.event for m in item.messages),
            state=_state(item.instance_id, self.clock.now()),
        )
        try:
            await self.backend.complete_orchestration(item, commit)
        except LockLostError:
            pass
        else:
            self.consumed.update(_key(m) for m in item.messages)
        del self.held[index]

    async def abandon(self, item: OrchestrationWorkItem, index: int) -> None:
        try:
            await self.backend.abandon_orchestration(item, delay=timedelta(seconds=2))
        except LockLostError:
            pass
        del self.held[index]

    async def renew(self, item: OrchestrationWorkItem, index: int) -> None:
        try:
            await self.backend.renew_orchestration(item)
        except LockLostError:
            return
        self.held[index] = (item, self.clock.now() + LOCK)

    def _check_exclusive(self, item: OrchestrationWorkItem) -> None:
        now = self.clock.now()
        for other, expires_at in self.held:
            if other.instance_id == item.instance_id:
                assert expires_at <= now, f"{item.instance_id} handed out while still locked"

    async def drain(self) -> None:
        self.held.clear()
        self.clock.advance(LOCK * 2)
        while (item := await self.backend.lock_next_orchestration(0)) is not None:
            self.held.append((item, self.clock.now() + LOCK))
            await self.complete(item, 0)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=operations)
@example(  # a stale holder completes after another worker re-locked with a newer message
    ops=[
        ("lock", None),
        ("send", "a"),
        ("advance", 11),
        ("lock", None),
        ("lock", None),
        ("complete", 0),
        ("complete", 0),
    ]
)
@example(  # abandon by a stale holder must not release the current holder's lock
    ops=[
        ("lock", None),
        ("advance", 11),
        ("lock", None),
        ("lock", None),
        ("abandon", 0),
        ("lock", None),
        ("complete", 0),
        ("complete", 0),
    ]
)
def test_every_message_is_consumed_exactly_once(ops: list[tuple[str, object]]) -> None:
    async def scenario() -> None:
        run = _Run()
        await run.start()
        for op, arg in ops:
            await run.step(op, arg)
        await run.drain()
        assert run.consumed == run.sent

    asyncio.run(scenario())
