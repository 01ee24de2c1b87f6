"""Running an episode's activities in the process that committed it (local dispatch).

A sequence of activities through the queues costs, per activity, a work-item send, receive
and delete (and, before results were handed over in process, the same again for the
result). When the committing worker has room (``LocalActivityQueue``), it keeps those
requests in process instead. Their durable record is:

* the committed ``TaskScheduled`` events (step 1), and
* one queue message the episode consumed, the instance's **carrier**, which is not deleted
  in step 4 but kept hidden here (renewed before its lock ends) while any activity
  dispatched under it has no committed result. Step 1 lists those tasks in the sentinel
  (``tracking.local_tasks``).

A local activity's result goes into the message buffer as an in-process item riding on the
carrier (``carrier`` set, no queue message of its own); the episode that applies it commits
it, and the carrier's task is settled after step 1. The next episode's activities attach to
the same carrier, so a sequence keeps one message hidden from its start to its end. When
no task is left, the carrier is deleted.

If the process dies, the carrier reappears; triage finds its id in the sentinel (or the
episode log: every episode that consumed an item riding on it records the carrier's id) and
recovery re-sends, through the queue, a request for every listed task without a result,
plus the messages of the last episode that consumed the carrier. A give-back of an item
riding on a carrier (an abandoned work item, a lost partition, a failed preparation)
releases the carrier the same way: made visible, it is recovered like after a crash. The
price is the same as for results carried by requests: at-least-once, so a crash re-runs
the activities that were in process.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from durable_azstorage.azure.hub import HubLifecycle
from durable_azstorage.azure.messaging.deliveries import SelfCausedDeliveries
from durable_azstorage.azure.messaging.local_activities import LocalActivityQueue, local_item
from durable_azstorage.azure.messaging.queues import ReceivedMessage
from durable_azstorage.azure.settings import AzureStorageSettings
from durable_azstorage.model.history import TaskCompleted, TaskFailed, TaskScheduled
from durable_azstorage.model.messages import TaskMessage

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Carrier:
    message: ReceivedMessage  # the current pop receipt and lock end
    execution_id: str
    tasks: set[int] = field(default_factory=set)
    busy: asyncio.Lock = field(default_factory=asyncio.Lock)  # a renewal, delete or release


@dataclass(frozen=True, slots=True)
class LocalPlan:
    """What an episode dispatches in process: ``requests`` under ``carrier``."""

    carrier: ReceivedMessage
    requests: tuple[TaskMessage, ...]
    execution_id: str

    @property
    def task_ids(self) -> tuple[int, ...]:
        return tuple(_task_id(m) for m in self.requests)


class LocalCarriers:
    """The carriers this process holds, by instance, and the dispatch of local activities."""

    def __init__(
        self,
        settings: AzureStorageSettings,
        queue: LocalActivityQueue,
        deliveries: SelfCausedDeliveries,
        *,
        hub: HubLifecycle,
        enabled: bool,
    ) -> None:
        self._settings = settings
        self.queue = queue
        self._deliveries = deliveries
        self._hub = hub
        self._enabled = enabled and queue.limit > 0
        self._held: dict[str, _Carrier] = {}  # by instance id
        self._instances: dict[str, str] = {}  # instance id by carrier id
        self._renewal: asyncio.Task[None] | None = None

    # --- planning and dispatch (checkpoint steps 1 and 2) --------------------------------
    def plan(
        self,
        instance_id: str,
        requests: Sequence[TaskMessage],
        consumed: Sequence[ReceivedMessage],
        *,
        execution_id: str,
    ) -> LocalPlan | None:
        """The requests to run here and their carrier, or None (all go through the queue)."""
        if not (self._enabled and requests and self._hub.running) or self._hub.closing:
            return None
        room = self.queue.room()
        if room <= 0:
            return None
        held = self._held.get(instance_id)
        if held is not None:
            if held.execution_id != execution_id:
                return None
            carrier = held.message
        else:
            candidates = [m for m in consumed if m.carrier is None and m.message is not None]
            if not candidates:
                return None
            # A control-queue message is recovered by the partition's owner directly.
            candidates.sort(key=lambda m: m.carried_for is not None)
            carrier = candidates[0]
        immediate = [m for m in requests if m.visible_at() is None]
        if not immediate:
            return None
        return LocalPlan(carrier, tuple(immediate[:room]), execution_id)

    def dispatch(self, instance_id: str, plan: LocalPlan) -> list[TaskMessage]:
        """After step 1: hand the planned requests to the local queue; returns those that
        must be sent through the queue after all (the carrier was lost meanwhile)."""
        held = self._held.get(instance_id)
        if held is None:
            held = _Carrier(plan.carrier, plan.execution_id)
            self._held[instance_id] = held
            self._instances[plan.carrier.message_id] = instance_id
        elif held.message.message_id != plan.carrier.message_id:
            return list(plan.requests)
        for request in plan.requests:
            task = _task_id(request)
            held.tasks.add(task)
            carrier_id = held.message.message_id
            self.queue.offer(local_item(held.message.queue_name, carrier_id, request, task))
        return []

    def holds(self, message_id: str) -> bool:
        return message_id in self._instances

    def _drop(self, instance_id: str) -> _Carrier | None:
        held = self._held.pop(instance_id, None)
        if held is not None:
            self._instances.pop(held.message.message_id, None)
        return held

    def deletable(self, consumed: Sequence[ReceivedMessage]) -> list[ReceivedMessage]:
        """Step 4: the consumed queue messages to delete (not local items, not carriers)."""
        return [m for m in consumed if m.carrier is None and not self.holds(m.message_id)]

    # --- settling -------------------------------------------------------------------------
    async def settle(
        self,
        instance_id: str,
        consumed: Sequence[ReceivedMessage],
        *,
        execution_id: str | None = None,
        ended: bool = False,
    ) -> None:
        """After step 1: the tasks whose results ``consumed`` carried are committed (all of
        them when their execution ``ended`` or is not ``execution_id`` any more: a restart);
        a carrier left without tasks is deleted."""
        held = self._held.get(instance_id)
        if held is None:
            return
        if ended or (execution_id is not None and held.execution_id != execution_id):
            held.tasks.clear()
        for item in consumed:
            if item.carrier == held.message.message_id and item.message is not None:
                held.tasks.discard(_task_id(item.message))
        await self._delete_if_done(instance_id, held)

    async def resolve(self, instance_id: str, carrier_id: str, task_id: int) -> None:
        """The task's result (or its request) went through a queue: the carrier no longer
        stands for it."""
        held = self._held.get(instance_id)
        if held is None or held.message.message_id != carrier_id:
            return
        held.tasks.discard(task_id)
        await self._delete_if_done(instance_id, held)

    async def _delete_if_done(self, instance_id: str, held: _Carrier) -> None:
        if held.tasks or self._held.get(instance_id) is not held:
            return
        self._drop(instance_id)
        async with held.busy:  # after a renewal in flight: its receipt is the valid one
            await self._consume(held.message)

    async def _consume(self, message: ReceivedMessage) -> None:
        try:
            if await self._hub.queue(message.queue_name).consume(message):
                self._deliveries.forget(message.message_id)
        except Exception as exc:  # it reappears; its recovery finds nothing left to do
            log.info("carrier %s: could not delete it: %r", message.message_id, exc)

    async def release(self, carrier_id: str, delay: timedelta) -> None:
        """Give a carrier back (an item riding on it was given back): visible after
        ``delay``, it is recovered like after a crash; its tasks re-run."""
        instance_id = self._instances.get(carrier_id)
        held = self._drop(instance_id) if instance_id is not None else None
        if held is not None:
            self._deliveries.caused(carrier_id)
            log.info(
                "instance %r: carrier %s given back with %d task(s) in process",
                instance_id,
                carrier_id,
                len(held.tasks),
            )
            try:
                async with held.busy:
                    await self._hub.queue(held.message.queue_name).set_visibility(
                        held.message, delay
                    )
            except Exception as exc:  # a stale receipt: it is visible again anyway
                log.info("carrier %s: could not release it: %r", carrier_id, exc)

    def forget(self, carrier_id: str) -> None:
        """The carrier came back (its lock was lost): recovery takes it from here."""
        instance_id = self._instances.get(carrier_id)
        if instance_id is not None:
            self._drop(instance_id)

    # --- keeping carriers hidden ----------------------------------------------------------
    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._renewal is None or self._renewal.done():
            self._renewal = loop.create_task(self._keep_hidden())

    def _timeout(self, message: ReceivedMessage) -> timedelta:
        if message.queue_name == self._settings.names.work_item_queue:
            return self._settings.work_item_visibility_timeout
        return self._settings.control_queue_visibility_timeout

    async def _keep_hidden(self) -> None:
        """Renew each carrier before its lock ends: visible, it would be recovered (and its
        tasks run again) while they still run here. Checked every sixth of the timeout and
        renewed in its last third: one renewal per ≈ 2/3 of the timeout a sequence waits."""
        shortest = min(
            self._settings.control_queue_visibility_timeout,
            self._settings.work_item_visibility_timeout,
        )
        while True:
            await asyncio.sleep(shortest.total_seconds() / 6)
            now = datetime.now(timezone.utc)
            for instance_id, held in list(self._held.items()):
                timeout = self._timeout(held.message)
                visible = held.message.next_visible_on
                if visible is not None and visible - now > timeout / 3:
                    continue
                try:
                    async with held.busy:
                        renewed = await self._hub.queue(held.message.queue_name).set_visibility(
                            held.message, timeout
                        )
                        held.message = renewed
                except Exception as exc:  # lost: it comes back and is recovered
                    log.info("carrier %s: renewal failed: %r", held.message.message_id, exc)
                    if self._held.get(instance_id) is held:
                        self._drop(instance_id)

    async def stop(self) -> None:
        """Stop renewing; carriers still holding tasks become visible now (the next owner
        recovers them instead of waiting out their lock)."""
        if self._renewal is not None:
            self._renewal.cancel()
            self._renewal = None
        for held in list(self._held.values()):
            await self.release(held.message.message_id, timedelta(0))

    def __len__(self) -> int:
        return len(self._held)


def item_task_id(item: ReceivedMessage) -> int:
    """The task id of a local item (a request or its result)."""
    if item.message is None:
        raise ValueError(f"local item {item.message_id} has no message")
    return _task_id(item.message)


def _task_id(message: TaskMessage) -> int:
    event = message.event
    if isinstance(event, TaskScheduled):
        return event.event_id
    if isinstance(event, TaskCompleted | TaskFailed):
        return event.task_scheduled_id
    raise ValueError(f"not an activity request or result: {type(event).__name__}")


__all__ = ["LocalCarriers", "LocalPlan", "item_task_id"]
