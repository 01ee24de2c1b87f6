"""Receiving control-queue messages: one loop per owned queue feeding a per-instance buffer.

``MessageBuffer`` holds received messages grouped by instance (the same queue message received
again replaces its older copy, keeping the fresh pop receipt, and that delivery is recorded as
self-caused: its visibility ran out while it waited here) and hands out at most one batch per
instance at a time. Buffered messages of an exclusively owned partition go back to the queue
only at a hand-over (``drop_queue``). ``ControlQueueReceiver`` polls one control queue in
batches of up to 32, backing off from 50 ms after work to ``max_poll_interval`` when idle
(``queue_backoff``), polling at once when this process enqueued to that queue or the wake-up
signal changed (``wake()``; the back-off restarts only if that poll finds work), and pausing
while the buffer is full (back-pressure: a bounded number of buffered messages per worker).
Receiving is driven by demand: a loop polls only while some caller waits in
``lock_next_orchestration``, so a process that takes no work (a client, a worker at its
concurrency limit) pulls no messages away from the workers that would process them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from durable_azstorage.azure.messaging.deliveries import SelfCausedDeliveries
from durable_azstorage.azure.messaging.queues import MessageQueue, ReceivedMessage
from durable_azstorage.azure.messaging.wakeup import (
    QUEUE_POLL_FASTEST,
    queue_backoff,
    sleep_or_wake,
)
from durable_azstorage.telemetry.logs import set_log_field

log = logging.getLogger(__name__)


class MessageBuffer:
    """Received control messages waiting for a work item, one in-flight batch per instance."""

    def __init__(self, capacity: int, deliveries: SelfCausedDeliveries) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self._deliveries = deliveries
        self._messages: dict[str, dict[str, ReceivedMessage]] = {}
        self._locked: set[str] = set()
        self._ready: OrderedDict[str, None] = OrderedDict()
        self._changed = asyncio.Event()
        self._count = 0
        self._waiters = 0
        self._reserved = 0  # slots promised to receives in flight
        self.demand = asyncio.Event()  # set while someone waits for a work item
        self.serves_work_items = False
        """Someone in this process has asked for orchestration work items (a worker, not
        a client or an activity-only process): only then is a result worth buffering here."""

    @property
    def count(self) -> int:
        """Buffered messages not yet handed out."""
        return self._count

    @property
    def takes_results(self) -> bool:
        """Results produced in process may be buffered beyond ``capacity`` (they need no
        receive; holding them pauses receiving instead), up to four times it."""
        return self._count < 4 * self.capacity

    @property
    def room(self) -> int:
        return max(0, self.capacity - self._count - self._reserved)

    def reserve(self, wanted: int) -> int:
        """Claim up to ``wanted`` slots for a receive (so concurrent receivers cannot
        overfill the buffer); give them back with ``unreserve`` once the batch is added."""
        granted = min(wanted, self.room)
        self._reserved += granted
        return granted

    def unreserve(self, count: int) -> None:
        self._reserved = max(0, self._reserved - count)

    def add(self, instance_id: str, message: ReceivedMessage) -> None:
        batch = self._messages.setdefault(instance_id, {})
        if message.message_id in batch:
            log.debug("%s for %r reappeared while buffered", message.message_id, instance_id)
            self._deliveries.caused(message.message_id)
        else:
            self._count += 1
        batch[message.message_id] = message
        if instance_id not in self._locked:
            self._mark_ready(instance_id)
        self._changed.set()

    def _mark_ready(self, instance_id: str) -> None:
        """Queue the instance for a work item: at the front when an activity result waits
        for it (depth first: an orchestration under way finishes before new ones are taken,
        and its result's request is not renewed while it waits), else at the back."""
        self._ready[instance_id] = None
        if any(m.carried_for is not None for m in self._messages[instance_id].values()):
            self._ready.move_to_end(instance_id, last=False)

    def take_ready(self) -> tuple[str, list[ReceivedMessage]] | None:
        """The oldest ready instance and all its buffered messages; it is locked until
        ``release``."""
        while self._ready:
            instance_id, _ = self._ready.popitem(last=False)
            batch = self._messages.pop(instance_id, None)
            if not batch:
                continue
            self._count -= len(batch)
            self._locked.add(instance_id)
            return instance_id, list(batch.values())
        return None

    def take_carried(self, renew_before: datetime) -> list[tuple[str, ReceivedMessage]]:
        """Remove and return the waiting results carried by a request whose lock ends before
        ``renew_before``: the caller renews the request and buffers them again."""
        taken: list[tuple[str, ReceivedMessage]] = []
        for instance_id, batch in self._messages.items():
            for message_id, message in list(batch.items()):
                visible = message.next_visible_on
                if (
                    message.carried_for is not None
                    and visible is not None
                    and visible < renew_before
                ):
                    taken.append((instance_id, batch.pop(message_id)))
                    self._count -= 1
        for instance_id in [i for i, batch in self._messages.items() if not batch]:
            del self._messages[instance_id]
        return taken

    def release(self, instance_id: str) -> None:
        self._locked.discard(instance_id)
        if self._messages.get(instance_id):
            self._mark_ready(instance_id)
            self._changed.set()

    def take_unlocked(self) -> list[ReceivedMessage]:
        """Remove and return every buffered message of an instance not locked now."""
        out: list[ReceivedMessage] = []
        while self._ready:
            instance_id, _ = self._ready.popitem(last=False)
            batch = self._messages.pop(instance_id, None)
            if batch:
                self._count -= len(batch)
                out.extend(batch.values())
        return out

    @property
    def has_demand(self) -> bool:
        return self._waiters > 0

    def drop_queue(self, queue_name: str) -> list[ReceivedMessage]:
        """Remove and return the buffered messages of ``queue_name`` (its partition was lost:
        the caller makes them visible again for the next owner)."""
        dropped: list[ReceivedMessage] = []
        for instance_id in list(self._messages):
            batch = self._messages[instance_id]
            for message_id in [k for k, m in batch.items() if m.home == queue_name]:
                dropped.append(batch.pop(message_id))
                self._count -= 1
            if not batch:
                del self._messages[instance_id]
                self._ready.pop(instance_id, None)
        return dropped

    def locked_instances(self) -> frozenset[str]:
        """Instances whose messages are handed out now (a work item is being prepared or
        is in flight)."""
        return frozenset(self._locked)

    def add_waiter(self) -> bool:
        """Someone waits for work: receivers poll. True if demand just started."""
        self._waiters += 1
        self.serves_work_items = True
        started = not self.demand.is_set()
        self.demand.set()
        return started

    def remove_waiter(self) -> None:
        self._waiters -= 1
        if self._waiters <= 0:
            self._waiters = 0
            self.demand.clear()

    async def wait(self, timeout: float) -> None:
        """Sleep until something becomes ready (or ``timeout`` seconds)."""
        self._changed.clear()
        try:
            await asyncio.wait_for(self._changed.wait(), timeout)
        except asyncio.TimeoutError:
            pass

    def notify(self) -> None:
        self._changed.set()


class ControlQueueReceiver:
    """The receive loop of one control queue."""

    def __init__(
        self,
        queue: MessageQueue,
        buffer: MessageBuffer,
        *,
        batch_size: int,
        visibility_timeout: timedelta,
        max_poll_interval: timedelta,
        handle: Callable[[list[ReceivedMessage]], Awaitable[None]],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``clock`` drives the idle back-off (a fake one in tests)."""
        self.queue = queue
        self._buffer = buffer
        self._batch_size = batch_size
        self._visibility = visibility_timeout
        self.backoff = queue_backoff(max_poll_interval, clock)
        self._handle = handle
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._receiving = False  # a receive (and the handling of its batch) is in flight

    def start(self) -> None:
        if self._task is None:
            self._stopping = False
            self._task = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        """Stop the loop and return once it has ended (no receive can add messages after).

        A receive in flight is finished, not cancelled: the service has already hidden the
        messages it returns, and a cancelled request would strand them for the whole
        visibility timeout; finished, they reach the buffer, where the caller takes them back.
        Waits are cancelled repeatedly: on Python < 3.12 ``asyncio.wait_for`` can swallow a
        cancellation that coincides with its inner wait finishing (a ``wake()`` at that
        instant), and the flag ends the loop at its next turn in any case.
        """
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping = True
        while not task.done():
            if not self._receiving:
                task.cancel()
            self._wake.set()
            await asyncio.wait({task}, timeout=0.5)
        if not task.cancelled() and task.exception() is not None:
            log.warning(
                "control queue %s: receive loop ended with %r", self.queue.name, task.exception()
            )

    def wake(self) -> None:
        """Poll now: this process just enqueued to the queue, or another process signalled."""
        self._wake.set()

    @property
    def poll_interval(self) -> float:
        """Seconds until the next poll of an empty queue (the idle back-off reached so far);
        0 while the buffer has no room or nobody asks for work: the receiver is paused, not
        idle, and a wake-up could not make it poll (so the wake-up watch need not read)."""
        if self._buffer.room <= 0 or not self._buffer.demand.is_set():
            return 0.0
        return self.backoff.interval()

    async def _run(self) -> None:
        set_log_field("partition", self.queue.name)  # this task's records name its queue
        self.backoff.active()
        while not self._stopping:
            if not self._buffer.demand.is_set():
                idle_since = time.monotonic()
                await self._buffer.demand.wait()
                if time.monotonic() - idle_since > self.backoff.interval():
                    self.backoff.active()  # demand was away long enough: work may wait
            room = self._buffer.reserve(self._batch_size)
            if room <= 0:
                await sleep_or_wake(self._wake, QUEUE_POLL_FASTEST * 4)
                continue
            self._receiving = True
            try:
                received = await self.queue.receive(room, self._visibility)
                if received:
                    self.backoff.active()
                    await self._handle(received)
            except asyncio.CancelledError:
                raise
            except Exception:
                self._receiving = False
                log.exception("control queue %s: receive failed; retrying", self.queue.name)
                await sleep_or_wake(self._wake, min(self.backoff.slowest, 1.0))
                continue
            finally:
                self._receiving = False
                self._buffer.unreserve(room)
            if received and len(received) >= room:
                continue  # probably more waiting
            await sleep_or_wake(self._wake, self.backoff.interval())
