"""``AzureStorageBackend``: the Backend protocol on Azure Storage (queues, tables, blobs).

The backend wires the parts that each own one noun:

* ``checkpoint``: the checkpoint protocol of ``complete_orchestration`` (ARCHITECTURE.md §5)
  and the recovery of an episode a crash interrupted after its history was committed;
* ``orchestration_locks``: orchestration work items, from buffered control messages to a
  lock (filtering, recovery, poison), renewal, completion and abandon;
* ``partition_receivers``: one ``ControlQueueReceiver`` per owned partition (``ownership``)
  feeding the shared, bounded ``MessageBuffer``, and draining a partition before hand-over;
* ``activity_locks``: activity work items on the shared work-item queue;
* ``local_carriers``: activities an episode dispatches to this process (no work-item
  message), and the consumed messages kept hidden as their durable record;
* ``history_admin``: history replacement (rewind) and stale-row repair;
* ``hub``: the storage clients with the stores and queues built on them (opened on first
  use, together), and the lifecycle state (running, closing) the parts above read.

Here remain start and stop, routing of outbound messages (timers and scheduled starts are
delayed messages; one further out than ``max_timer_delay`` arrives early and is re-sent for
the rest of the wait: chaining), the client-side operations and the poison store.

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
from datetime import datetime, timedelta, timezone
from typing import TypeVar

from durable_azstorage.azure.hub import HubLifecycle
from durable_azstorage.azure.messaging.activity_receiver import ActivityReceiver
from durable_azstorage.azure.messaging.control_receiver import MessageBuffer
from durable_azstorage.azure.messaging.deliveries import SelfCausedDeliveries
from durable_azstorage.azure.messaging.local_activities import LocalActivityQueue
from durable_azstorage.azure.messaging.poison_store import PoisonRecord, PoisonStore
from durable_azstorage.azure.messaging.queues import MessageQueue, ReceivedMessage
from durable_azstorage.azure.messaging.wakeup import WATCH_FASTEST, WakeupWatcher
from durable_azstorage.azure.partitioning.manager import PartitionManager
from durable_azstorage.azure.partitioning.ownership import OwnAllPartitions, PartitionOwnership
from durable_azstorage.azure.partitioning.queue_sampling import sample_hub
from durable_azstorage.azure.settings import AzureStorageSettings
from durable_azstorage.azure.storage.metrics import RequestCounter
from durable_azstorage.azure.storage.naming import TaskHubNames, escape_key
from durable_azstorage.azure.storage.payloads import needs_message_offload
from durable_azstorage.azure.tracking.episode_log import episode_retention
from durable_azstorage.azure.tracking.history_admin import find_stale, repair_stale, replace_history
from durable_azstorage.azure.tracking.sessions import SessionCache
from durable_azstorage.azure.tracking.taskhub import TaskHubResources, list_task_hubs
from durable_azstorage.azure.work_items.activity_locks import ActivityLocks
from durable_azstorage.azure.work_items.checkpoint import Checkpoint, CheckpointHook
from durable_azstorage.azure.work_items.local_carriers import LocalCarriers
from durable_azstorage.azure.work_items.orchestration_locks import OrchestrationLocks
from durable_azstorage.azure.work_items.partition_receivers import PartitionReceivers
from durable_azstorage.backend.protocol import (
    ActivityWorkItem,
    OrchestrationCommit,
    OrchestrationWorkItem,
)
from durable_azstorage.backend.reuse import may_replace, pending_state
from durable_azstorage.model.errors import LockLostError, OrchestrationAlreadyExistsError
from durable_azstorage.model.history import HistoryEvent
from durable_azstorage.model.identifiers import validate_instance_id
from durable_azstorage.model.messages import TaskMessage
from durable_azstorage.model.polling import IdleBackoff
from durable_azstorage.model.query import OrchestrationQuery, Page
from durable_azstorage.model.scale import HubSample
from durable_azstorage.model.stale import StaleInstance
from durable_azstorage.model.state import InstanceState, OrchestrationIdReusePolicy
from durable_azstorage.model.status import OrchestrationStatus
from durable_azstorage.model.taskhub import TaskHubInfo
from durable_azstorage.serialization.codec import MessageEnvelope, decode_message_envelope
from durable_azstorage.telemetry.logs import set_log_field

log = logging.getLogger(__name__)

PREMATURE_SLACK = timedelta(0)  # a timer is never delivered before its fire_at
GIVE_BACK_TIMEOUT = 5.0  # seconds stop() waits for fetches whose caller was cancelled

T = TypeVar("T")


def _decodable(body: str) -> MessageEnvelope | None:
    try:
        return decode_message_envelope(body)
    except (ValueError, TypeError, KeyError):
        return None


class AzureStorageBackend:
    """The Backend protocol on Azure Storage; see the module docstring for its parts."""

    def __init__(
        self,
        settings: AzureStorageSettings,
        *,
        ownership: PartitionOwnership | None = None,
        max_buffered_messages: int = 256,
        session_capacity: int = 1000,
        session_idle_timeout: timedelta = timedelta(minutes=5),
        activity_prefetch: int = 8,
        checkpoint_hook: CheckpointHook | None = None,
        counter: RequestCounter | None = None,
    ) -> None:
        self.settings = settings
        self.names = settings.names
        self._stored_names: TaskHubNames | None = None  # read from the hub by sample_queues
        if ownership is None and settings.shared_partitions:
            ownership = OwnAllPartitions(settings.partition_count)  # every worker, every queue
        self._manage_partitions = ownership is None
        self.ownership: PartitionOwnership = ownership or OwnAllPartitions(settings.partition_count)
        self.partition_manager: PartitionManager | None = None  # built by start() if managed
        self.hub = HubLifecycle(settings, counter)
        self._clients = self.hub.clients
        self._deliveries = SelfCausedDeliveries()
        self._buffer = MessageBuffer(max_buffered_messages, self._deliveries)
        self._sessions = SessionCache(
            session_capacity if settings.extended_sessions else 0,
            session_idle_timeout.total_seconds(),
        )
        self._activity_prefetch = activity_prefetch
        self._activities: ActivityLocks | None = None
        self._wakeup_watcher: WakeupWatcher | None = None
        self._sequence = itertools.count(1)
        self._giving_back: set[asyncio.Future[None]] = set()
        self._local_activities = LocalActivityQueue(settings.local_activities)
        self._carriers = LocalCarriers(
            settings,
            self._local_activities,
            self._deliveries,
            hub=self.hub,
            # With shared partitions an instance's next episode often runs in another
            # process, which cannot apply results held here (correct, but churn).
            enabled=not settings.shared_partitions,
        )
        self._checkpoint = Checkpoint(
            hub=self.hub,
            sessions=self._sessions,
            send_all=self._send_all,
            hook=checkpoint_hook,
            retention=episode_retention(settings),
            carriers=self._carriers,
        )
        self._orchestrations = OrchestrationLocks(
            settings,
            self._buffer,
            self._sessions,
            self._checkpoint,
            self._deliveries,
            shared_partitions=not self._manage_partitions,
            hub=self.hub,
            carriers=self._carriers,
        )
        self._receivers = PartitionReceivers(
            settings,
            self._buffer,
            self._sessions,
            self._deliveries,
            hub=self.hub,
            handle=self._on_received,
            carriers=self._carriers,
        )

    # --- wiring ---------------------------------------------------------------------------
    @property
    def checkpoint_hook(self) -> CheckpointHook | None:
        """Awaited after each checkpoint step (tests raise from it to simulate a crash)."""
        return self._checkpoint.hook

    @checkpoint_hook.setter
    def checkpoint_hook(self, hook: CheckpointHook | None) -> None:
        self._checkpoint.hook = hook

    @property
    def poison(self) -> PoisonStore:
        """The poison store of the open hub (raises before the backend was used)."""
        return self.hub.resources.poison

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
    def activity_results_in_process(self) -> int:
        """Activity results handed to this process's orchestrations without a queue message."""
        return self._activities.delivered_in_process if self._activities is not None else 0

    @property
    def activities_dispatched_in_process(self) -> int:
        """Activity requests this process ran itself: no work-item send, receive or delete."""
        return self._local_activities.dispatched

    @property
    def buffered_messages(self) -> int:
        """Control messages received but not yet handed out (bounded: back-pressure)."""
        return self._buffer.count

    async def queue(self, name: str) -> MessageQueue:
        """One of the hub's queues (diagnostics and tests: peek, count)."""
        return (await self.hub.open()).queue(name)

    # --- task hub -------------------------------------------------------------------------
    async def create_task_hub(self) -> None:
        await self.hub.open()
        await TaskHubResources(self._clients).create_if_not_exists()

    async def delete_task_hub(self) -> None:
        await self.hub.open()
        if self.partition_manager is not None:
            await self.partition_manager.stop(graceful=False)
        await self._receivers.stop_all()
        await TaskHubResources(self._clients).delete()

    async def get_task_hub_info(self) -> TaskHubInfo:
        await self.hub.open()
        return await TaskHubResources(self._clients).info()

    async def list_task_hubs(self) -> list[TaskHubInfo]:
        await self.hub.open()
        return await list_task_hubs(self._clients)

    async def sample_queues(self) -> HubSample:
        """The hub's own partition count (not the settings') decides which queues exist."""
        await self.hub.open()
        if self._stored_names is None:
            info = await TaskHubResources(self._clients).info()
            self._stored_names = TaskHubNames(self.settings.task_hub, info.partition_count)
        return await sample_hub(self._clients, self._stored_names, self.settings.max_poll_interval)

    async def start(self) -> None:
        set_log_field("task_hub", self.settings.task_hub)  # for the caller and every task after
        await self.hub.open()
        await TaskHubResources(self._clients).verify()
        self.hub.running = True
        self._receivers.bind(asyncio.get_running_loop())
        receiver = ActivityReceiver(
            self.hub.queue(self.names.work_item_queue),
            prefetch=self._activity_prefetch,
            visibility_timeout=self.settings.work_item_visibility_timeout,
            max_poll_interval=self.settings.max_poll_interval,
            on_undecodable=self._quarantine_undecodable_request,
            deliveries=self._deliveries,
            local=self._local_activities,
        )
        self._activities = ActivityLocks(
            receiver,
            send=self._send_result,
            deliver=self._receivers.deliver,
            quarantine=self.hub.quarantine,
            max_dequeue_count=self.settings.max_dequeue_count,
            visibility_timeout=self.settings.work_item_visibility_timeout,
            carriers=self._carriers,
        )
        self._carriers.bind(asyncio.get_running_loop())
        self.hub.closing = False
        if self._manage_partitions:  # a fresh one per start: stop() closed the old clients
            self.partition_manager = PartitionManager(self.settings, self._clients, self)
            self.ownership = self.partition_manager
        self._receivers.apply(self.ownership.owned())
        self.ownership.subscribe(self._receivers.changed)
        if self.partition_manager is not None:
            await self.partition_manager.start()
        wakeup = self.hub.resources.wakeup
        if wakeup is not None and self.settings.wakeup_interval is not None:
            backoff = IdleBackoff(
                fastest=WATCH_FASTEST,
                slowest=max(WATCH_FASTEST, self.settings.wakeup_interval.total_seconds()),
                ratio=self.settings.wakeup_backoff_ratio,
            )
            self._wakeup_watcher = WakeupWatcher(
                wakeup,
                backoff=backoff,
                slowest_poll=self._slowest_poll,
                # Idle since the last control-queue message, not the last activity: a long
                # run of activities (results handed over in process, control queues quiet)
                # would keep the watch at its fastest, 20 reads a second.
                idle_for=self._receivers.idle_for,
                on_wake=self._receivers.wake_all,  # clients send to control queues only
            )
            self._wakeup_watcher.start()

    @property
    def wakeups(self) -> tuple[int, int]:
        """(signals sent by this backend, signals that woke its pollers): diagnostics."""
        wakeup = self.hub.resources.wakeup if self.hub.opened else None
        sent = wakeup.touches if wakeup is not None else 0
        woken = self._wakeup_watcher.wakes if self._wakeup_watcher is not None else 0
        return sent, woken

    def _slowest_poll(self) -> float:
        """The control-queue receivers' longest idle back-off: the wake-up signal is only
        touched for messages to control queues (clients send nothing else), so the watch
        reads it only while one of them polls slower than the watch would."""
        return self._receivers.slowest_poll()

    async def stop(self) -> None:
        """Release the partitions (graceful hand-over), then stop receiving and close."""
        self.hub.closing = True  # drains no longer wait for in-flight work: nobody completes it
        if self._wakeup_watcher is not None:
            await self._wakeup_watcher.stop()
            self._wakeup_watcher = None
        if self.partition_manager is not None and self.hub.running:
            await self.partition_manager.stop(graceful=True)
        self.hub.running = False
        self._orchestrations.stop()
        if self._activities is not None:
            self._activities.receiver.stopped = True
        await self._receivers.stop_all()
        self._buffer.notify()
        if self._giving_back:  # fetches whose caller left: let them hand their items back
            await asyncio.wait(set(self._giving_back), timeout=GIVE_BACK_TIMEOUT)
        if self._activities is not None:
            await self._activities.receiver.stop()  # prefetched requests: visible again now
        await self._give_back_local_activities()
        await self.hub.close()

    async def _give_back_local_activities(self) -> None:
        """Activities dispatched here and not started are dropped: the carriers standing for
        them become visible now, and their recovery sends each unanswered one through the
        queue exactly once (sending them here as well would run them twice)."""
        dropped = self._local_activities.take_all()
        if dropped:
            log.info("stopping: %d activities dispatched here left to recovery", len(dropped))
        await self._carriers.stop()

    async def drain(self, partition: int) -> None:
        """``PartitionDrainer``: called after ``partition`` left ``owned()``; returns when its
        receiver is stopped, its buffered messages are visible again and none of its work
        items is in flight (not waited for once ``stop()`` began: nobody completes them)."""
        await self._receivers.drain(partition, self.ownership.owned())

    # --- sending --------------------------------------------------------------------------
    async def _send(
        self,
        message: TaskMessage,
        *,
        answers: str | None = None,
        row_etag: str | None = None,
        new_instance: bool = False,
    ) -> bool:
        """Route ``message`` to its queue, delayed until ``visible_at()``; wake local pollers.

        True when a poller of this process was woken or the message is delayed (then the
        receiver's own polling finds it; a wake-up now would not help). ``answers``: the id
        of the activity request a result answers."""
        if message.is_activity_request:
            name = self.names.work_item_queue
        else:
            name = self.names.control_queue_for(message.instance.instance_id)
        visible_at = message.visible_at()
        delay = None
        if visible_at is not None:
            delay = visible_at - datetime.now(timezone.utc)
        await self.hub.queue(name).send(
            message,
            delay=delay,
            sequence_number=next(self._sequence),
            answers=answers,
            row_etag=row_etag,
            new_instance=new_instance,
        )
        if delay is None or delay <= timedelta(0):
            return self._wake(name, message.instance.instance_id)
        return True

    def _wake(self, queue_name: str, instance_id: str) -> bool:
        """Wake this process's poller of ``queue_name``; False when it has none."""
        if queue_name == self.names.work_item_queue:
            if self._activities is not None:
                self._activities.receiver.wake()
            return self._activities is not None
        return self._receivers.wake(instance_id)

    async def _send_result(self, result: TaskMessage, answers: str | None) -> None:
        await self._send(result, answers=answers)

    async def _send_from_client(
        self, message: TaskMessage, *, row_etag: str | None = None, new_instance: bool = False
    ) -> None:
        """Send, and when no poller of this process takes it, tell idle workers elsewhere."""
        wakeup = self.hub.resources.wakeup
        sent = await self._send(message, row_etag=row_etag, new_instance=new_instance)
        if not sent and wakeup is not None:
            await wakeup.touch()

    async def _send_all(self, messages: Sequence[TaskMessage]) -> None:
        await asyncio.gather(*(self._send(m) for m in messages))

    # --- client side ----------------------------------------------------------------------
    async def create_instance(
        self, start: TaskMessage, *, reuse_policy: OrchestrationIdReusePolicy | None = None
    ) -> bool:
        validate_instance_id(start.instance.instance_id)
        instances = (await self.hub.open()).instances
        state = pending_state(start, datetime.now(timezone.utc))
        # The row first: a start message for an instance with history is accepted only when
        # the row names its execution (otherwise it is a duplicate). Inserted optimistically:
        # a new id (nearly every start) needs no read; an existing row is read on conflict.
        new_instance = True
        try:
            row_etag = await instances.insert_pending(state, replace_etag=None)
        except OrchestrationAlreadyExistsError:
            new_instance = False
            existing = await instances.get(state.instance_id, fetch_payloads=False)
            if existing is not None and not may_replace(existing[0], reuse_policy):
                return False
            row_etag = await instances.insert_pending(
                state, replace_etag=existing[1] if existing is not None else None
            )
        # The first episode replaces the row by this ETag instead of reading it first.
        await self._send_from_client(start, row_etag=row_etag, new_instance=new_instance)
        return True

    async def send_message(self, message: TaskMessage) -> None:
        validate_instance_id(message.instance.instance_id)
        await self.hub.open()
        await self._send_from_client(message)

    async def get_instance(
        self, instance_id: str, *, fetch_payloads: bool = True
    ) -> InstanceState | None:
        hub = await self.hub.open()
        found = await hub.instances.get(instance_id, fetch_payloads=fetch_payloads)
        return found[0] if found is not None else None

    async def get_history(self, instance_id: str) -> list[HistoryEvent]:
        """The current execution's events; empty while a replacing execution is Pending
        (its ExecutionStarted is queued, the previous execution's rows are still stored)."""
        hub = await self.hub.open()
        loaded = await hub.history.load(instance_id)
        if loaded.events:
            row = await hub.instances.get(instance_id, fetch_payloads=False)
            if (
                row is not None
                and row[0].runtime_status is OrchestrationStatus.PENDING
                and row[0].execution_id != loaded.sentinel.execution_id
            ):
                return []
        return list(loaded.events)

    async def get_execution_history(
        self, instance_id: str, execution_id: str
    ) -> list[HistoryEvent] | None:
        """The stored execution's rows if it is ``execution_id`` (a sentinel read, then the
        history query), else its archive blob (one blob read)."""
        hub = await self.hub.open()
        sentinel = await hub.history.sentinel(instance_id)
        if sentinel.execution_id == execution_id:
            loaded = await hub.history.load(instance_id, execution_id=execution_id)
            if loaded.events:
                return list(loaded.events)
        return await hub.archive.read(instance_id, execution_id)

    async def list_executions(self, instance_id: str) -> list[str]:
        """From the sentinel alone (one point read): the archived ones, then the stored one."""
        sentinel = await (await self.hub.open()).history.sentinel(instance_id)
        current = sentinel.execution_id if sentinel.event_count else None
        earlier = [e for e in reversed(sentinel.archived_executions) if e != current]
        return [*earlier, current] if current is not None else earlier

    async def query_instances(self, query: OrchestrationQuery) -> Page[InstanceState]:
        return await (await self.hub.open()).instances.query(query)

    async def purge_instance(self, instance_id: str) -> bool:
        hub = await self.hub.open()
        self._sessions.discard(instance_id)
        # One listing of the instance's blob prefix covers history, row and message payloads.
        rows = await hub.history.delete(instance_id, payloads=False)
        existed = await hub.instances.delete(instance_id, payloads=False)
        await hub.payloads.delete_prefix(escape_key(instance_id) + "/")
        return existed or rows > 0

    # --- receiving control messages -------------------------------------------------------
    async def _on_received(self, batch: list[ReceivedMessage]) -> None:
        """Buffer a received batch; quarantine undecodable messages, re-delay early timers.

        An undecodable message is quarantined alone and its instance is not failed (unlike a
        message delivered too often): its content, often even its instance, is unknown, and
        it may be a stale copy of a message already applied or one for a purged instance, so
        failing an instance on it could kill a healthy one. The poison record keeps the
        reason (naming a missing payload blob, whose folder is the instance id).
        """
        now = datetime.now(timezone.utc)
        for received in sorted(batch, key=lambda m: m.sort_key):
            message = received.message
            if message is None:
                await self.hub.quarantine(received, f"cannot decode: {received.error}", delete=True)
                continue
            visible_at = message.visible_at()
            if visible_at is not None and visible_at - now > PREMATURE_SLACK:
                # A chained long timer (or scheduled start): hide it for the next leg.
                await self.hub.queue(received.queue_name).send_text(
                    received.raw, delay=visible_at - now
                )
                await self.hub.queue(received.queue_name).delete(received)
                continue
            self._buffer.add(message.instance.instance_id, received)

    async def replay_poison(self, key: str) -> bool:
        """Put a quarantined message back on its queue (after fixing its cause) and remove
        it from the poison store; False if ``key`` is not in the store."""
        hub = await self.hub.open()
        record = await hub.poison.get(key)
        if record is None:
            return False
        queue = hub.queues.get(record.queue_name)
        if queue is None:
            raise ValueError(f"poison record {key!r} names unknown queue {record.queue_name!r}")
        envelope = _decodable(record.body)
        # Re-encoded when kept whole (offloaded again) or when it is a client's start: the
        # hints it carries (the row's ETag, "a new instance") held only for its first delivery.
        if envelope is not None and (
            needs_message_offload(record.body) or envelope.row_etag or envelope.new_instance
        ):
            await queue.send(
                envelope.message,
                sequence_number=envelope.sequence_number,
                answers=envelope.answers,
            )
        else:
            await queue.send_text(record.body)
        await hub.poison.delete(key)
        self._wake(record.queue_name, record.instance_id or "")
        return True

    async def _quarantine_undecodable_request(self, received: ReceivedMessage) -> str:
        reason = f"cannot decode: {received.error or 'not an activity request'}"
        return await self.hub.quarantine(received, reason, delete=True)

    # --- orchestration work items (``orchestration_locks``) --------------------------------
    async def lock_next_orchestration(self, timeout: float) -> OrchestrationWorkItem | None:
        orchestrations = self._orchestrations
        return await self._fetch(orchestrations.lock_next(timeout), orchestrations.abandon)

    async def renew_orchestration(self, item: OrchestrationWorkItem) -> None:
        await self._orchestrations.renew(item)

    async def complete_orchestration(
        self, item: OrchestrationWorkItem, commit: OrchestrationCommit
    ) -> None:
        await self._orchestrations.complete(item, commit)

    async def abandon_orchestration(
        self, item: OrchestrationWorkItem, *, delay: timedelta | None = None, deferred: bool = False
    ) -> None:
        await self._orchestrations.abandon(item, delay=delay, deferred=deferred)

    async def _fetch(
        self, fetch: Awaitable[T | None], give_back: Callable[[T], Awaitable[None]]
    ) -> T | None:
        """Await a work-item fetch. If the caller is cancelled (a worker stopping), the fetch
        still finishes and what it locked is given back at once: cancelled in the middle of a
        receive or of preparing a work item, its messages stayed invisible for the whole
        visibility timeout (5 minutes by default)."""
        task = asyncio.ensure_future(fetch)
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            later = asyncio.ensure_future(_give_back(task, give_back))
            self._giving_back.add(later)
            later.add_done_callback(self._giving_back.discard)
            raise

    # --- activity work items --------------------------------------------------------------
    async def lock_next_activity(self, timeout: float) -> ActivityWorkItem | None:
        if self._activities is None or not self.hub.running:
            await asyncio.sleep(min(timeout, 0.05))
            return None
        return await self._fetch(self._activities.lock_next(timeout), self.abandon_activity)

    async def renew_activity(self, item: ActivityWorkItem) -> None:
        await self._activity_items().renew(item)

    async def complete_activity(self, item: ActivityWorkItem, result: TaskMessage) -> None:
        await self._activity_items().complete(item, result)

    async def abandon_activity(
        self, item: ActivityWorkItem, *, delay: timedelta | None = None, deferred: bool = False
    ) -> None:
        await self._activity_items().abandon(item, delay=delay, deferred=deferred)

    def _activity_items(self) -> ActivityLocks:
        if self._activities is None:
            raise LockLostError("this backend was never started: it holds no activity locks")
        return self._activities

    # --- management (implementations in azure.tracking.history_admin) ----------------------------
    async def replace_history(
        self, instance_id: str, history: Sequence[HistoryEvent], state: InstanceState
    ) -> None:
        hub = await self.hub.open()
        await replace_history(
            hub.history, hub.instances, self._sessions, instance_id, history, state
        )

    async def find_stale_instances(self) -> list[StaleInstance]:
        """Instances whose Instances row disagrees with their History sentinel."""
        hub = await self.hub.open()
        table = hub.clients.table(self.names.history_table)
        return await find_stale(table, hub.instances, hub.clients.retry)

    async def repair_stale_instances(
        self, stale: Sequence[StaleInstance] | None = None
    ) -> list[StaleInstance]:
        """Rewrite the rows of ``stale`` (default: ``find_stale_instances()``) from history."""
        items = await self.find_stale_instances() if stale is None else stale
        hub = self.hub.resources
        return await repair_stale(hub.history, hub.instances, self._sessions, items)

    async def list_poison(self) -> list[PoisonRecord]:
        """Every quarantined message (``azure.messaging.poison_store``), oldest key first."""
        return await (await self.hub.open()).poison.list()

    async def get_poison(self, key: str) -> PoisonRecord | None:
        return await (await self.hub.open()).poison.get(key)

    async def delete_poison(self, key: str) -> bool:
        """Drop a quarantined message for good; False if ``key`` is not in the store."""
        return await (await self.hub.open()).poison.delete(key)


async def _give_back(
    fetch: asyncio.Future[T | None], give_back: Callable[[T], Awaitable[None]]
) -> None:
    try:
        item = await fetch
        if item is not None:
            await give_back(item)
    except Exception as exc:  # the messages then reappear after their visibility timeout
        log.info("could not give back a work item fetched after its caller left: %r", exc)


__all__ = ["AzureStorageBackend", "OwnAllPartitions", "PartitionOwnership"]
