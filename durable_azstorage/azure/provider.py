"""``AzureStorageBackend``: the Backend protocol on Azure Storage (queues, tables, blobs).

Checkpoint protocol (ARCHITECTURE.md §5), in ``complete_orchestration``:

1. commit the new events to History with the sentinel's ETag (``HistoryStore.commit``), which
   records the ids of the queue messages the episode consumed;
2. send the episode's outbound messages;
3. upsert the Instances row (skipped when nothing a query can see changed);
4. delete the consumed messages.

A crash after step 1 leaves the consumed messages in their queue. When they come back, their
ids are found in the sentinel: they are not applied again; instead the episode's outbound
messages are re-derived from its committed events and re-sent (``outbound.derive_outbound``),
the Instances row is repaired and the messages deleted. A commit that loses the ETag race
raises ``ConcurrencyConflictError`` before anything was sent.

Orchestration messages arrive through one ``ControlQueueReceiver`` per owned partition
(``ownership``) into a shared, bounded ``MessageBuffer``; ``lock_next_orchestration`` turns
the next ready instance's messages into a work item: redelivered consumed messages trigger
recovery, ``message_filter`` drops zombies and duplicates and defers events for Pending
instances, over-delivered messages are copied to the ``PoisonStore``. Histories come from the
extended-session cache (``sessions``) when this process committed the instance last. Timers
and scheduled starts are delayed messages; one further out than ``max_timer_delay`` arrives
early and is re-sent for the rest of the wait (chaining). Activities: ``activity_items``.

Partitions: unless ``ownership=`` is given (e.g. ``OwnAllPartitions`` in tests), ``start()``
builds a lease-based ``PartitionManager`` with this backend as its drainer. Only workers call
``start()``; a client-only backend (``TaskHubClient``) never starts it and so takes no leases.
When a partition is lost the backend stops its receive loop at once, makes its buffered
messages visible again (the next owner need not wait out their visibility timeout), drops
that partition's sessions, and ``drain`` returns once none of its work items is in flight.
``stop()`` releases every partition first (the worker has already stopped fetching and let
its in-flight work finish), so other workers take them within one acquire interval.

``checkpoint_hook`` (tests) is awaited after each checkpoint step; ``request_counter`` counts
every storage request of this backend.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from durable_azstorage.azure import management
from durable_azstorage.azure.activity_items import ActivityWorkItems
from durable_azstorage.azure.activity_receiver import ActivityReceiver
from durable_azstorage.azure.clients import StorageClients
from durable_azstorage.azure.control_receiver import ControlQueueReceiver, MessageBuffer
from durable_azstorage.azure.history_store import HistoryStore, LoadedHistory
from durable_azstorage.azure.instance_store import InstanceStore
from durable_azstorage.azure.message_filter import filter_messages, kind_of
from durable_azstorage.azure.metrics import RequestCounter
from durable_azstorage.azure.naming import escape_key, partition_of
from durable_azstorage.azure.outbound import (
    derive_outbound,
    started_event,
    state_from_history,
    visible_fields,
)
from durable_azstorage.azure.ownership import OwnAllPartitions, PartitionOwnership
from durable_azstorage.azure.partitions import PartitionManager
from durable_azstorage.azure.payloads import PayloadStore
from durable_azstorage.azure.poison import PoisonRecord, PoisonStore
from durable_azstorage.azure.queues import MessageQueue, ReceivedMessage
from durable_azstorage.azure.sessions import SessionCache
from durable_azstorage.azure.settings import AzureStorageSettings
from durable_azstorage.azure.taskhub import TaskHubResources, list_task_hubs
from durable_azstorage.backend.protocol import (
    ActivityWorkItem,
    OrchestrationCommit,
    OrchestrationWorkItem,
)
from durable_azstorage.backend.reuse import may_replace, pending_state
from durable_azstorage.model.errors import ConcurrencyConflictError, LockLostError
from durable_azstorage.model.history import HistoryEvent
from durable_azstorage.model.messages import TaskMessage
from durable_azstorage.model.query import OrchestrationQuery, Page
from durable_azstorage.model.stale import StaleInstance
from durable_azstorage.model.state import InstanceState, OrchestrationIdReusePolicy
from durable_azstorage.model.status import OrchestrationStatus
from durable_azstorage.model.taskhub import TaskHubInfo

log = logging.getLogger(__name__)

EPISODE_MARK = "~episode:"  # a pseudo message id in the sentinel: where the last episode began
MAX_REMEMBERED_IDS = 64  # consumed ids carried over from earlier episodes (late redeliveries)
IDLE_RELEASE_AFTER = 0.5  # seconds without a lock_next_orchestration caller
PREMATURE_SLACK = timedelta(0)  # a timer is never delivered before its fire_at
DRAIN_POLL = 0.05  # seconds between checks for a draining partition's in-flight work
DRAIN_WARN_AFTER = 5.0  # seconds: log which work items a drain still waits for

CheckpointHook = Callable[[str, str], Awaitable[None]]
"""``hook(step, instance_id)`` after each checkpoint step: ``history``, ``messages``,
``instance``. Tests raise from it to simulate a crash between steps."""


@dataclass(eq=False, slots=True)
class _OrchLock:
    instance_id: str
    messages: list[ReceivedMessage]
    loaded: LoadedHistory
    fresh: bool  # an ExecutionStarted replaces the stored execution: rows restart at 0
    known_state: InstanceState | None
    released: bool = False

    def expires_at(self) -> datetime | None:
        times = [m.next_visible_on for m in self.messages if m.next_visible_on is not None]
        return min(times) if times else None


class AzureStorageBackend:
    """The Backend protocol on Azure Storage; see the module docstring for the protocol."""

    def __init__(
        self,
        settings: AzureStorageSettings,
        *,
        ownership: PartitionOwnership | None = None,
        max_buffered_messages: int = 256,
        session_capacity: int = 1000,
        session_idle_timeout: timedelta = timedelta(minutes=5),
        activity_prefetch: int = 1,
        checkpoint_hook: CheckpointHook | None = None,
        counter: RequestCounter | None = None,
    ) -> None:
        self.settings = settings
        self.names = settings.names
        self._manage_partitions = ownership is None
        self.ownership: PartitionOwnership = ownership or OwnAllPartitions(settings.partition_count)
        self.partition_manager: PartitionManager | None = None  # built by start() if managed
        self._letting_go: dict[int, asyncio.Future[None]] = {}
        self._closing = False
        self.checkpoint_hook = checkpoint_hook
        self._clients = StorageClients(settings, counter)
        self._opened = False
        self._buffer = MessageBuffer(max_buffered_messages)
        self._sessions = SessionCache(
            session_capacity if settings.extended_sessions else 0,
            session_idle_timeout.total_seconds(),
        )
        self._activity_prefetch = activity_prefetch
        self._receivers: dict[int, ControlQueueReceiver] = {}
        self._orch_locks: dict[str, _OrchLock] = {}
        self._activities: ActivityWorkItems | None = None
        self._sequence = itertools.count(1)
        self._running = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._idle_release: asyncio.Future[None] | None = None

    # --- wiring ---------------------------------------------------------------------------
    @property
    def request_counter(self) -> RequestCounter:
        """Every storage request of this backend, by service and operation."""
        return self._clients.counter

    @property
    def lock_timeout(self) -> timedelta:
        """How long a work item stays locked unless renewed (the shorter visibility timeout);
        the worker renews at a third of it."""
        return min(
            self.settings.control_queue_visibility_timeout,
            self.settings.work_item_visibility_timeout,
        )

    @property
    def session_cache(self) -> SessionCache:
        return self._sessions

    @property
    def buffered_messages(self) -> int:
        """Control messages received but not yet handed out (bounded: back-pressure)."""
        return self._buffer.count

    async def _open(self) -> None:
        if self._opened:
            return
        await self._clients.open()
        retry = self._clients.retry
        self._payloads = PayloadStore(
            self._clients.container(self.names.large_messages_container), retry=retry
        )
        self._history = HistoryStore(
            self._clients.table(self.names.history_table), self._payloads, retry=retry
        )
        self._instances = InstanceStore(
            self._clients.table(self.names.instances_table), self._payloads, retry=retry
        )
        self.poison = PoisonStore(self._clients.container(self.names.large_messages_container), retry)
        self._queues: dict[str, MessageQueue] = {
            name: MessageQueue(
                self._clients.queue(name), self._payloads, retry,
                max_delay=self.settings.max_timer_delay,
            )
            for name in self.names.queues
        }
        self._opened = True

    def _queue(self, name: str) -> MessageQueue:
        return self._queues[name]

    async def queue(self, name: str) -> MessageQueue:
        """One of the hub's queues (diagnostics and tests: peek, count)."""
        await self._open()
        return self._queues[name]

    # --- task hub -------------------------------------------------------------------------
    async def create_task_hub(self) -> None:
        await self._open()
        await TaskHubResources(self._clients).create_if_not_exists()

    async def delete_task_hub(self) -> None:
        await self._open()
        if self.partition_manager is not None:
            await self.partition_manager.stop(graceful=False)
        await self._stop_receivers()
        await TaskHubResources(self._clients).delete()

    async def get_task_hub_info(self) -> TaskHubInfo:
        await self._open()
        return await TaskHubResources(self._clients).info()

    async def list_task_hubs(self) -> list[TaskHubInfo]:
        await self._open()
        return await list_task_hubs(self._clients)

    async def start(self) -> None:
        await self._open()
        await TaskHubResources(self._clients).verify()
        self._running = True
        self._loop = asyncio.get_running_loop()
        receiver = ActivityReceiver(
            self._queue(self.names.work_item_queue),
            prefetch=self._activity_prefetch,
            visibility_timeout=self.settings.work_item_visibility_timeout,
            max_poll_interval=self.settings.max_poll_interval,
            on_undecodable=lambda m: self._quarantine(m, f"cannot decode: {m.error}", delete=True),
        )
        self._activities = ActivityWorkItems(
            receiver,
            send=self._send,
            quarantine=lambda m, reason: self._quarantine(m, reason, delete=False),
            max_dequeue_count=self.settings.max_dequeue_count,
            visibility_timeout=self.settings.work_item_visibility_timeout,
        )
        self._closing = False
        if self._manage_partitions:  # a fresh one per start: stop() closed the old clients
            self.partition_manager = PartitionManager(self.settings, self._clients, self)
            self.ownership = self.partition_manager
        self._apply_ownership(self.ownership.owned())
        self.ownership.subscribe(self._ownership_changed)
        if self.partition_manager is not None:
            await self.partition_manager.start()

    async def stop(self) -> None:
        """Release the partitions (graceful hand-over), then stop receiving and close."""
        self._closing = True  # drains no longer wait for in-flight work: nobody completes it
        if self.partition_manager is not None and self._running:
            await self.partition_manager.stop(graceful=True)
        self._running = False
        if self._idle_release is not None:
            self._idle_release.cancel()
        if self._activities is not None:
            self._activities.receiver.stopped = True
        await self._stop_receivers()
        self._buffer.notify()
        if self._opened:
            self._opened = False
            await self._clients.close()

    def _ownership_changed(self, owned: frozenset[int]) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._apply_ownership, owned)

    def _apply_ownership(self, owned: frozenset[int]) -> None:
        if not self._running:
            return
        for partition in sorted(owned - set(self._receivers)):
            name = self.names.control_queues[partition]
            receiver = ControlQueueReceiver(
                self._queue(name),
                self._buffer,
                batch_size=self.settings.control_queue_batch_size,
                visibility_timeout=self.settings.control_queue_visibility_timeout,
                max_poll_interval=self.settings.max_poll_interval,
                handle=self._on_received,
            )
            self._receivers[partition] = receiver
            receiver.start()
        gained = owned - set(self._receivers)
        if gained:  # sessions from an earlier tenure may be stale
            self._discard_sessions(gained)
        for partition in sorted(set(self._receivers) - owned):
            receiver = self._receivers.pop(partition)
            # Drop synchronously: nothing buffered for it may be handed out from now on.
            dropped = self._buffer.drop_queue(receiver.queue.name)
            self._discard_sessions(frozenset({partition}))
            self._letting_go[partition] = asyncio.ensure_future(
                self._let_go(partition, receiver, dropped)
            )

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
            if dropped:
                log.info(
                    "partition %d lost: %d buffered message(s) made visible again",
                    partition, len(dropped),
                )
                await self._hide(dropped, timedelta(0))
        finally:
            if self._letting_go.get(partition) is asyncio.current_task():
                del self._letting_go[partition]

    async def drain(self, partition: int) -> None:
        """``PartitionDrainer``: called after ``partition`` left ``owned()``; returns when its
        receiver is stopped, its buffered messages are visible again and none of its work
        items is in flight (not waited for once ``stop()`` began: nobody completes them)."""
        if partition in self._receivers and partition not in self.ownership.owned():
            self._apply_ownership(self.ownership.owned())
        letting_go = self._letting_go.get(partition)
        if letting_go is not None:
            await asyncio.shield(letting_go)
        count = self.settings.partition_count
        loop = asyncio.get_running_loop()
        warn_at = loop.time() + DRAIN_WARN_AFTER
        while not self._closing:
            busy = [
                i for i in self._buffer.locked_instances() if partition_of(i, count) == partition
            ]
            if not busy:
                break
            if loop.time() >= warn_at:
                warn_at = loop.time() + DRAIN_WARN_AFTER
                log.warning(
                    "draining partition %d: still waiting for %d work item(s) in flight: %s",
                    partition, len(busy), ", ".join(sorted(busy)[:5]),
                )
            await asyncio.sleep(DRAIN_POLL)
        self._discard_sessions(frozenset({partition}))

    async def _stop_receivers(self) -> None:
        receivers = list(self._receivers.values())
        self._receivers.clear()
        await asyncio.gather(*(r.stop() for r in receivers))

    # --- sending --------------------------------------------------------------------------
    async def _send(self, message: TaskMessage) -> None:
        """Route ``message`` to its queue, delayed until ``visible_at()``; wake local pollers."""
        if message.is_activity_request:
            name = self.names.work_item_queue
        else:
            name = self.names.control_queue_for(message.instance.instance_id)
        visible_at = message.visible_at()
        delay = None
        if visible_at is not None:
            delay = visible_at - datetime.now(timezone.utc)
        await self._queue(name).send(message, delay=delay, sequence_number=next(self._sequence))
        if delay is None or delay <= timedelta(0):
            self._wake(name, message.instance.instance_id)

    def _wake(self, queue_name: str, instance_id: str) -> None:
        if queue_name == self.names.work_item_queue:
            if self._activities is not None:
                self._activities.receiver.wake()
            return
        receiver = self._receivers.get(partition_of(instance_id, self.settings.partition_count))
        if receiver is not None:
            receiver.wake()

    async def _send_all(self, messages: Sequence[TaskMessage]) -> None:
        await asyncio.gather(*(self._send(m) for m in messages))

    # --- client side ----------------------------------------------------------------------
    async def create_instance(
        self, start: TaskMessage, *, reuse_policy: OrchestrationIdReusePolicy | None = None
    ) -> bool:
        await self._open()
        state = pending_state(start, datetime.now(timezone.utc))
        existing = await self._instances.get(state.instance_id, fetch_payloads=False)
        replace_etag: str | None = None
        if existing is not None:
            if not may_replace(existing[0], reuse_policy):
                return False
            replace_etag = existing[1]
        # The row first: a start message for an instance with history is accepted only when
        # the row names its execution (otherwise it is a duplicate).
        await self._instances.insert_pending(state, replace_etag=replace_etag)
        await self._send(start)
        return True

    async def send_message(self, message: TaskMessage) -> None:
        await self._open()
        await self._send(message)

    async def get_instance(
        self, instance_id: str, *, fetch_payloads: bool = True
    ) -> InstanceState | None:
        await self._open()
        found = await self._instances.get(instance_id, fetch_payloads=fetch_payloads)
        return found[0] if found is not None else None

    async def get_history(self, instance_id: str) -> list[HistoryEvent]:
        """The current execution's events; empty while a replacing execution is Pending
        (its ExecutionStarted is queued, the previous execution's rows are still stored)."""
        await self._open()
        loaded = await self._history.load(instance_id)
        if loaded.events:
            row = await self._instances.get(instance_id, fetch_payloads=False)
            if (
                row is not None
                and row[0].runtime_status is OrchestrationStatus.PENDING
                and row[0].execution_id != loaded.sentinel.execution_id
            ):
                return []
        return list(loaded.events)

    async def query_instances(self, query: OrchestrationQuery) -> Page[InstanceState]:
        await self._open()
        return await self._instances.query(query)

    async def purge_instance(self, instance_id: str) -> bool:
        await self._open()
        self._sessions.discard(instance_id)
        rows = await self._history.delete(instance_id)
        existed = await self._instances.delete(instance_id)
        await self._payloads.delete_prefix(escape_key(instance_id) + "/")
        return existed or rows > 0

    # --- receiving control messages -------------------------------------------------------
    async def _on_received(self, batch: list[ReceivedMessage]) -> None:
        """Buffer a received batch; quarantine undecodable messages, re-delay early timers."""
        now = datetime.now(timezone.utc)
        for received in sorted(batch, key=lambda m: m.sort_key):
            message = received.message
            if message is None:
                await self._quarantine(received, f"cannot decode: {received.error}", delete=True)
                continue
            visible_at = message.visible_at()
            if visible_at is not None and visible_at - now > PREMATURE_SLACK:
                # A chained long timer (or scheduled start): hide it for the next leg.
                await self._queue(received.queue_name).send_text(
                    received.raw, delay=visible_at - now
                )
                await self._queue(received.queue_name).delete(received)
                continue
            self._buffer.add(message.instance.instance_id, received)

    async def replay_poison(self, key: str) -> bool:
        """Put a quarantined message back on its queue (after fixing its cause) and remove
        it from the poison store; False if ``key`` is not in the store."""
        await self._open()
        record = await self.poison.get(key)
        if record is None:
            return False
        queue = self._queues.get(record.queue_name)
        if queue is None:
            raise ValueError(f"poison record {key!r} names unknown queue {record.queue_name!r}")
        await queue.send_text(record.body)
        await self.poison.delete(key)
        self._wake(record.queue_name, record.instance_id or "")
        return True

    async def _quarantine(self, received: ReceivedMessage, reason: str, *, delete: bool) -> None:
        record = await self.poison.put(received, reason)
        log.error(
            "poison message %s from %s moved to %s: %s",
            received.message_id, received.queue_name, record.key, reason,
        )
        if delete:
            await self._queue(received.queue_name).delete(received)

    # --- orchestration work items --------------------------------------------------------
    async def lock_next_orchestration(self, timeout: float) -> OrchestrationWorkItem | None:
        if not self._running:
            await asyncio.sleep(min(timeout, 0.05))
            return None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(0.0, timeout)
        # Demand resumes the receivers but does not reset their idle back-off: the worker's
        # dispatcher asks again every second, and waking here made an idle worker poll every
        # control queue several times a second (bench cost: 1,366 requests/min idle).
        self._buffer.add_waiter()
        try:
            return await self._next_orchestration(loop, deadline)
        finally:
            self._buffer.remove_waiter()
            if not self._buffer.has_demand and self._idle_release is None:
                self._idle_release = asyncio.ensure_future(self._release_when_idle())

    async def _release_when_idle(self) -> None:
        """Give buffered messages back to the queue when nobody here wants work any more
        (a worker at its concurrency limit, or one that stopped asking): other workers polling
        the same partition get them now instead of after their visibility timeout."""
        try:
            await asyncio.sleep(IDLE_RELEASE_AFTER)
            if self._buffer.has_demand or not self._running:
                return
            released = self._buffer.take_unlocked()
            if released:
                log.debug("releasing %d buffered message(s): no demand", len(released))
                await self._hide(released, timedelta(0))
        finally:
            self._idle_release = None

    async def _next_orchestration(
        self, loop: asyncio.AbstractEventLoop, deadline: float
    ) -> OrchestrationWorkItem | None:
        while self._running:
            ready = self._buffer.take_ready()
            if ready is not None:
                instance_id, messages = ready
                try:
                    item = await self._prepare(instance_id, messages)
                except Exception:
                    log.exception("orchestration %r: preparing a work item failed", instance_id)
                    await self._hide(messages, timedelta(seconds=1))
                    self._buffer.release(instance_id)
                    item = None
                if item is not None:
                    return item
                continue
            remaining = deadline - loop.time()
            if remaining <= 0:
                return None
            await self._buffer.wait(remaining)
        return None

    async def _load(self, instance_id: str) -> tuple[LoadedHistory, InstanceState | None]:
        session = self._sessions.get(instance_id)
        status = session.sentinel.runtime_status if session is not None else None
        if session is not None and not (status is not None and status.is_terminal):
            # an ended instance may have been rewound by a client: read the authority
            return LoadedHistory(events=session.events, sentinel=session.sentinel), session.state
        return await self._history.load(instance_id), None

    async def _prepare(
        self, instance_id: str, messages: list[ReceivedMessage]
    ) -> OrchestrationWorkItem | None:
        messages.sort(key=lambda m: m.sort_key)
        loaded, known_state = await self._load(instance_id)
        sentinel = loaded.sentinel
        recovered = [m for m in messages if m.message_id in sentinel.consumed_message_ids]
        if recovered:
            await self._recover(instance_id, loaded, recovered)
            messages = [m for m in messages if m not in recovered]
            known_state = None
        row: list[InstanceState | None] = []

        async def instance_row() -> InstanceState | None:
            if not row:
                found = await self._instances.get(instance_id, fetch_payloads=False)
                row.append(found[0] if found is not None else None)
            return row[0]

        filtered = await filter_messages(
            sentinel, messages, instance_row=instance_row,
            max_delay=self.settings.max_timer_delay,
        )
        fresh, start = filtered.fresh, filtered.start
        for received, reason in filtered.discard:
            log.warning(
                "discarding %s message %s for instance %r: %s",
                kind_of(received), received.message_id, instance_id, reason,
            )
        await asyncio.gather(*(self._queue(m.queue_name).delete(m) for m, _ in filtered.discard))
        if filtered.defer:
            await self._hide(filtered.defer, filtered.defer_delay)
        if not filtered.keep:
            self._buffer.release(instance_id)
            return None
        keep = filtered.keep
        if start is not None:
            keep = [start, *(m for m in keep if m is not start)]
        limit = self.settings.max_dequeue_count
        for received in keep:
            if received.dequeue_count > limit:
                await self._quarantine(
                    received,
                    f"delivered {received.dequeue_count} times (max_dequeue_count={limit})",
                    delete=False,
                )
        lock = _OrchLock(
            instance_id=instance_id,
            messages=keep,
            loaded=loaded,
            fresh=fresh,
            known_state=None if fresh else known_state,
        )
        await self._refresh_visibility(lock)
        self._orch_locks[instance_id] = lock
        decoded = tuple(m.message for m in keep if m.message is not None)
        return OrchestrationWorkItem(
            instance_id=instance_id,
            history=() if fresh else loaded.events,
            messages=decoded,
            lock_token=lock,
            dequeue_count=max(m.dequeue_count for m in keep),
        )

    async def _recover(
        self, instance_id: str, loaded: LoadedHistory, redelivered: list[ReceivedMessage]
    ) -> None:
        """Finish a committed episode whose messages came back (crash after step 1)."""
        sentinel = loaded.sentinel
        first, continued = _episode_mark(sentinel.consumed_message_ids)
        outbound = derive_outbound(loaded.events, first, continued_as_new=continued)
        log.warning(
            "orchestration %r: %d consumed message(s) redelivered after a committed episode; "
            "re-sending its %d outbound message(s) and repairing the Instances row",
            instance_id, len(redelivered), len(outbound.all),
        )
        await self._send_all(outbound.all)
        found = await self._instances.get(instance_id, fetch_payloads=True)
        previous = found[0] if found is not None else None
        status = sentinel.runtime_status or OrchestrationStatus.RUNNING
        repaired = state_from_history(
            instance_id, loaded.events, status=status, completed_at=sentinel.completed_at,
            previous=previous,
        )
        if repaired is not None and (
            previous is None
            or previous.runtime_status is not repaired.runtime_status
            or previous.execution_id != repaired.execution_id
        ):
            await self._instances.upsert(repaired)
        await asyncio.gather(*(self._queue(m.queue_name).delete(m) for m in redelivered))

    async def _refresh_visibility(self, lock: _OrchLock) -> None:
        """Messages that waited long in the buffer get a full visibility timeout again."""
        timeout = self.settings.control_queue_visibility_timeout
        now = datetime.now(timezone.utc)
        stale = [
            i for i, m in enumerate(lock.messages)
            if m.next_visible_on is not None and m.next_visible_on - now < timeout / 2
        ]
        for i in stale:
            received = lock.messages[i]
            lock.messages[i] = await self._queue(received.queue_name).set_visibility(
                received, timeout
            )

    def _own_orch(self, item: OrchestrationWorkItem) -> _OrchLock:
        lock = item.lock_token
        if not isinstance(lock, _OrchLock) or self._orch_locks.get(item.instance_id) is not lock:
            raise LockLostError(
                f"the lock on instance {item.instance_id!r} is not held by this backend "
                "(released, expired or foreign); its messages will be delivered again"
            )
        return lock

    def _expired(self, lock: _OrchLock) -> datetime | None:
        expires = lock.expires_at()
        if expires is not None and expires <= datetime.now(timezone.utc):
            return expires
        return None

    async def _raise_if_expired(self, lock: _OrchLock) -> None:
        """An expired lock may not commit: ConcurrencyConflictError if another writer
        committed meanwhile (the ETag moved), else LockLostError."""
        expires = self._expired(lock)
        if expires is None:
            return
        self._release(lock)
        self._sessions.discard(lock.instance_id)
        current = await self._history.load(lock.instance_id)
        if current.sentinel.etag != lock.loaded.sentinel.etag:
            raise ConcurrencyConflictError(
                f"instance {lock.instance_id!r} was changed by another writer after this work "
                "item's lock expired; nothing was committed or sent"
            )
        raise LockLostError(
            f"the lock on instance {lock.instance_id!r} expired at {expires.isoformat()}; "
            "nothing was committed, its messages will be delivered again"
        )

    def _release(self, lock: _OrchLock) -> None:
        if not lock.released:
            lock.released = True
            self._orch_locks.pop(lock.instance_id, None)
            self._buffer.release(lock.instance_id)

    async def renew_orchestration(self, item: OrchestrationWorkItem) -> None:
        lock = self._own_orch(item)
        expires = self._expired(lock)
        if expires is not None:
            self._release(lock)
            raise LockLostError(
                f"the lock on instance {item.instance_id!r} expired at {expires.isoformat()}"
            )
        timeout = self.settings.control_queue_visibility_timeout
        try:
            lock.messages = [
                await self._queue(m.queue_name).set_visibility(m, timeout) for m in lock.messages
            ]
        except Exception as exc:
            self._release(lock)
            raise LockLostError(
                f"could not renew the lock on instance {item.instance_id!r}: {exc}"
            ) from exc

    async def complete_orchestration(
        self, item: OrchestrationWorkItem, commit: OrchestrationCommit
    ) -> None:
        lock = self._own_orch(item)
        await self._raise_if_expired(lock)
        instance_id = item.instance_id
        if commit.state.instance_id != instance_id:
            raise ValueError(
                f"commit.state is for {commit.state.instance_id!r}, the work item for "
                f"{instance_id!r}"
            )
        for request in commit.activity_messages:
            if not request.is_activity_request:
                raise ValueError(f"activity_messages holds a {type(request.event).__name__}")
        sentinel = lock.loaded.sentinel
        new_execution = commit.new_execution or lock.fresh
        events = lock.loaded.events
        if commit.new_events or new_execution:
            started = started_event(commit.new_events) if new_execution else None
            execution_id = (
                started.instance.execution_id if started is not None
                else sentinel.execution_id or commit.state.execution_id
            )
            first = 0 if new_execution else sentinel.event_count
            consumed = [m.message_id for m in lock.messages]
            carried = [
                i for i in sentinel.consumed_message_ids
                if not i.startswith(EPISODE_MARK) and i not in consumed
            ][: max(0, MAX_REMEMBERED_IDS - len(consumed))]
            mark = f"{EPISODE_MARK}{first}:{int(commit.new_execution)}"
            try:
                self._sessions.discard(instance_id)  # re-cached below once every step is done
                sentinel = await self._history.commit(
                    instance_id,
                    expected=sentinel,
                    new_events=commit.new_events,
                    new_execution=new_execution,
                    execution_id=execution_id or "",
                    consumed_message_ids=[*consumed, *carried, mark],
                    runtime_status=commit.state.runtime_status,
                    completed_at=commit.state.completed_at,
                )
            except ConcurrencyConflictError:
                self._sessions.discard(instance_id)
                log.info("orchestration %r: lost the commit race; nothing sent", instance_id)
                raise
            events = commit.new_events if new_execution else (*events, *commit.new_events)
            await self._hook("history", instance_id)
            await self._send_all(commit.outbound_messages)
            await self._hook("messages", instance_id)
        known = lock.known_state
        wrote_history = bool(commit.new_events) or new_execution
        # Without new events the history (the authority) did not change, so neither does the
        # row: writing it unguarded could overwrite a newer episode's status.
        if wrote_history and (
            known is None or visible_fields(known) != visible_fields(commit.state)
        ):
            await self._instances.upsert(commit.state)
        await self._hook("instance", instance_id)
        await asyncio.gather(*(self._queue(m.queue_name).delete(m) for m in lock.messages))
        if wrote_history:
            self._sessions.put(instance_id, tuple(events), sentinel, commit.state)
        self._release(lock)

    async def _hook(self, step: str, instance_id: str) -> None:
        if self.checkpoint_hook is not None:
            await self.checkpoint_hook(step, instance_id)

    async def abandon_orchestration(
        self, item: OrchestrationWorkItem, *, delay: timedelta | None = None
    ) -> None:
        lock = self._own_orch(item)
        expires = self._expired(lock)
        if expires is not None:
            self._release(lock)
            raise LockLostError(
                f"the lock on instance {item.instance_id!r} expired at {expires.isoformat()}"
            )
        try:
            await self._hide(lock.messages, delay or timedelta(0))
        finally:
            self._release(lock)

    async def _hide(self, messages: Sequence[ReceivedMessage], delay: timedelta) -> None:
        async def one(m: ReceivedMessage) -> None:
            try:
                await self._queue(m.queue_name).set_visibility(m, delay)
            except Exception as exc:  # stale receipt: it is visible again anyway
                log.info("could not re-hide message %s: %s", m.message_id, exc)

        await asyncio.gather(*(one(m) for m in messages))

    # --- activity work items --------------------------------------------------------------
    async def lock_next_activity(self, timeout: float) -> ActivityWorkItem | None:
        if self._activities is None or not self._running:
            await asyncio.sleep(min(timeout, 0.05))
            return None
        return await self._activities.lock_next(timeout)

    async def renew_activity(self, item: ActivityWorkItem) -> None:
        await self._activity_items().renew(item)

    async def complete_activity(self, item: ActivityWorkItem, result: TaskMessage) -> None:
        await self._activity_items().complete(item, result)

    async def abandon_activity(
        self, item: ActivityWorkItem, *, delay: timedelta | None = None
    ) -> None:
        await self._activity_items().abandon(item, delay=delay)

    def _activity_items(self) -> ActivityWorkItems:
        if self._activities is None:
            raise LockLostError("this backend was never started: it holds no activity locks")
        return self._activities

    # --- management (implementations in azure.management) ---------------------------------
    async def replace_history(
        self, instance_id: str, history: Sequence[HistoryEvent], state: InstanceState
    ) -> None:
        await self._open()
        await management.replace_history(
            self._history, self._instances, self._sessions, instance_id, history, state
        )

    async def find_stale_instances(self) -> list[StaleInstance]:
        """Instances whose Instances row disagrees with their History sentinel."""
        await self._open()
        table = self._clients.table(self.names.history_table)
        return await management.find_stale(table, self._instances, self._clients.retry)

    async def repair_stale_instances(
        self, stale: Sequence[StaleInstance] | None = None
    ) -> list[StaleInstance]:
        """Rewrite the rows of ``stale`` (default: ``find_stale_instances()``) from history."""
        items = await self.find_stale_instances() if stale is None else stale
        return await management.repair_stale(self._history, self._instances, self._sessions, items)

    async def list_poison(self) -> list[PoisonRecord]:
        """Every quarantined message (``azure.poison``), oldest key first."""
        await self._open()
        return await self.poison.list()

    async def get_poison(self, key: str) -> PoisonRecord | None:
        await self._open()
        return await self.poison.get(key)

    async def delete_poison(self, key: str) -> bool:
        """Drop a quarantined message for good; False if ``key`` is not in the store."""
        await self._open()
        return await self.poison.delete(key)


def _episode_mark(ids: Sequence[str]) -> tuple[int, bool]:
    """(first event index of the last episode, whether it continued as new)."""
    for value in ids:
        if value.startswith(EPISODE_MARK):
            first, _, start = value[len(EPISODE_MARK):].partition(":")
            return int(first), start == "1"
    return 0, False


__all__ = ["AzureStorageBackend", "OwnAllPartitions", "PartitionOwnership"]
