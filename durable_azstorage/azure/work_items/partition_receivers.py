"""The receive loops of the partitions this worker owns, started and stopped with ownership.

One ``ControlQueueReceiver`` per owned partition feeds the shared ``MessageBuffer``. When a
partition is lost its loop is stopped at once, its buffered messages are made visible again
(the next owner need not wait out their visibility timeout) and its sessions are dropped;
``drain`` (the provider's ``PartitionDrainer``) returns once none of its work items is in
flight, so the partition manager can hand it over safely.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import datetime, timedelta, timezone

from durable_azstorage.azure.hub import HubLifecycle
from durable_azstorage.azure.messaging.control_receiver import ControlQueueReceiver, MessageBuffer
from durable_azstorage.azure.messaging.deliveries import SelfCausedDeliveries
from durable_azstorage.azure.messaging.queues import ReceivedMessage
from durable_azstorage.azure.settings import AzureStorageSettings
from durable_azstorage.azure.storage.naming import partition_of
from durable_azstorage.azure.tracking.sessions import SessionCache
from durable_azstorage.azure.work_items.local_carriers import LocalCarriers
from durable_azstorage.azure.work_items.orchestration_locks import hide

log = logging.getLogger(__name__)

DRAIN_POLL = 0.05  # seconds between checks for a draining partition's in-flight work
DRAIN_WARN_AFTER = 5.0  # seconds: log which work items a drain still waits for


class PartitionReceivers:
    """Receive loops by partition; ``apply(owned)`` makes them match the owned set."""

    def __init__(
        self,
        settings: AzureStorageSettings,
        buffer: MessageBuffer,
        sessions: SessionCache,
        deliveries: SelfCausedDeliveries,
        *,
        hub: HubLifecycle,
        handle: Callable[[list[ReceivedMessage]], Awaitable[None]],
        carriers: LocalCarriers,
    ) -> None:
        self.settings = settings
        self.names = settings.names
        self._buffer = buffer
        self._sessions = sessions
        self._deliveries = deliveries
        self._hub = hub
        self._handle = handle
        self._carriers = carriers
        self._receivers: dict[int, ControlQueueReceiver] = {}
        self._letting_go: dict[int, asyncio.Future[None]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._carried_renewal: asyncio.Task[None] | None = None

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """The loop that ``changed`` hands ownership changes to (the backend's); starts
        keeping the requests of buffered results hidden."""
        self._loop = loop
        if self._carried_renewal is None or self._carried_renewal.done():
            self._carried_renewal = loop.create_task(self._keep_carried_hidden())

    async def _keep_carried_hidden(self) -> None:
        """Renew the request of each result waiting in the buffer before its lock ends: made
        visible, it would run the activity again (and void the waiting result)."""
        timeout = self.settings.work_item_visibility_timeout
        while True:
            await asyncio.sleep(timeout.total_seconds() / 3)
            if not self._hub.running:
                continue
            due = self._buffer.take_carried(datetime.now(timezone.utc) + timeout * 2 / 3)
            for instance_id, waiting in due:
                try:
                    renewed = await self._hub.queue(waiting.queue_name).set_visibility(
                        waiting, timeout
                    )
                except Exception as exc:  # received again: the activity runs again
                    log.info("result carried by %s dropped: %r", waiting.message_id, exc)
                    continue
                if not self.deliver(instance_id, renewed):  # the partition went meanwhile
                    await hide(self._hub.queue, [renewed], timedelta(0), carriers=self._carriers)

    def changed(self, owned: frozenset[int]) -> None:
        """Ownership callback; may be called from any thread."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self.apply, owned)

    def apply(self, owned: frozenset[int]) -> None:
        if not self._hub.running:
            return
        gained = owned - set(self._receivers)
        if gained:  # sessions from an earlier tenure may be stale
            self._discard_sessions(gained)
        for partition in sorted(gained):
            name = self.names.control_queues[partition]
            receiver = ControlQueueReceiver(
                self._hub.queue(name),
                self._buffer,
                batch_size=self.settings.control_queue_batch_size,
                visibility_timeout=self.settings.control_queue_visibility_timeout,
                max_poll_interval=self.settings.max_poll_interval,
                handle=self._handle,
            )
            self._receivers[partition] = receiver
            receiver.start()
        for partition in sorted(set(self._receivers) - owned):
            receiver = self._receivers.pop(partition)
            # Drop synchronously: nothing buffered for it may be handed out from now on.
            dropped = self._buffer.drop_queue(receiver.queue.name)
            self._discard_sessions(frozenset({partition}))
            self._letting_go[partition] = asyncio.ensure_future(
                self._let_go(partition, receiver, dropped)
            )

    def wake(self, instance_id: str) -> bool:
        """Poll the instance's control queue now (this process just enqueued to it); False
        when this process does not receive that partition."""
        receiver = self._receivers.get(partition_of(instance_id, self.settings.partition_count))
        if receiver is not None:
            receiver.wake()
        return receiver is not None

    def deliver(self, instance_id: str, received: ReceivedMessage) -> bool:
        """Buffer a message produced in this process for an instance of a partition received
        here, as if its control queue had delivered it (an activity result: no control-queue
        send, receive and delete). False when the partition is not received here (not owned,
        or being let go), nobody here asks for orchestration work items, or the buffer holds
        four times its capacity: the caller sends it through the queue."""
        if not self._hub.running or not self._buffer.serves_work_items:
            return False
        receiver = self._receivers.get(partition_of(instance_id, self.settings.partition_count))
        if receiver is None or not self._buffer.takes_results:
            return False
        self._buffer.add(instance_id, replace(received, carried_for=receiver.queue.name))
        return True

    def wake_all(self) -> None:
        """Poll every owned control queue now (another process signalled new work)."""
        for receiver in self._receivers.values():
            receiver.wake()

    def slowest_poll(self) -> float:
        """The longest idle back-off among the owned queues' receivers (0 without any)."""
        return max((r.poll_interval for r in self._receivers.values()), default=0.0)

    def idle_for(self) -> float:
        """Seconds since one of the owned queues' receivers last found work (inf without any)."""
        return min((r.backoff.idle_for() for r in self._receivers.values()), default=math.inf)

    def _discard_sessions(self, partitions: frozenset[int]) -> None:
        count = self.settings.partition_count
        self._sessions.discard_if(lambda i: partition_of(i, count) in partitions)

    async def _let_go(
        self, partition: int, receiver: ControlQueueReceiver, dropped: list[ReceivedMessage]
    ) -> None:
        """Stop a lost partition's receive loop and make its buffered messages visible now."""
        try:
            await receiver.stop()
            dropped += self._buffer.drop_queue(receiver.queue.name)  # added while stopping
            for message in dropped:  # if this process owns the partition again, not a failure
                self._deliveries.caused(message.message_id)
            if dropped:
                log.info(
                    "partition %d lost: %d buffered message(s) made visible again",
                    partition,
                    len(dropped),
                )
                await hide(self._hub.queue, dropped, timedelta(0), carriers=self._carriers)
        finally:
            if self._letting_go.get(partition) is asyncio.current_task():
                del self._letting_go[partition]

    async def drain(self, partition: int, owned: frozenset[int]) -> None:
        """Return when ``partition`` (not in ``owned`` any more) has its receiver stopped, its
        buffered messages visible again and none of its work items in flight (not waited for
        once the backend is closing: nobody completes them)."""
        if partition in self._receivers and partition not in owned:
            self.apply(owned)
        letting_go = self._letting_go.get(partition)
        if letting_go is not None:
            await asyncio.shield(letting_go)
        count = self.settings.partition_count
        loop = asyncio.get_running_loop()
        warn_at = loop.time() + DRAIN_WARN_AFTER
        try:
            while not self._hub.closing:
                busy = [
                    i
                    for i in self._buffer.locked_instances()
                    if partition_of(i, count) == partition
                ]
                if not busy:
                    break
                if loop.time() >= warn_at:
                    warn_at = loop.time() + DRAIN_WARN_AFTER
                    log.warning(
                        "draining partition %d: still waiting for %d work item(s) in flight: %s",
                        partition,
                        len(busy),
                        ", ".join(sorted(busy)[:5]),
                    )
                await asyncio.sleep(DRAIN_POLL)
        finally:  # also when the drain timed out (cancelled): episodes in flight re-cached
            self._discard_sessions(frozenset({partition}))

    async def stop_all(self) -> None:
        if self._carried_renewal is not None:
            self._carried_renewal.cancel()
            self._carried_renewal = None
        receivers = list(self._receivers.values())
        self._receivers.clear()
        await asyncio.gather(*(r.stop() for r in receivers))


__all__ = ["DRAIN_POLL", "DRAIN_WARN_AFTER", "PartitionReceivers"]
