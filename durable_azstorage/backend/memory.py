"""``InMemoryBackend``: the Backend protocol in process memory, faithful to its contract.

It models what makes distributed execution hard so that the worker is tested against it:
visibility (delayed timers and starts, abandon delays, lock expiry), at-least-once redelivery
with ``dequeue_count``, one locked work item per instance, ETag-guarded commits and opaque
lock tokens. Commits follow ARCHITECTURE.md §5 step by step, with the same crash points as the
Azure backend (``checkpoint_hook``): history (recording the consumed message ids and the
episode's outbox, ``memory_checkpoint``), then outbound messages, then the instance state
(never older than the newest episode's), then deletion of the consumed messages. A consumed
message delivered again finishes its episode instead of reaching a worker. Everything is
validated (encoded) before the first write, so a bad commit changes nothing.

Time comes from an injectable ``Clock``; with ``FakeClock`` tests jump over lock timeouts
instantly. State is guarded by a thread lock and waiters are woken across event loops, so a
sync client on another thread may share the backend with a worker. The task hub exists from
construction (``TaskHubWorker(backend=InMemoryBackend())`` just works).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import TypeVar

from durable_azstorage.backend.clock import Clock, SystemClock
from durable_azstorage.backend.memory_activities import ActivityQueue
from durable_azstorage.backend.memory_archive import ArchivedExecutions
from durable_azstorage.backend.memory_checkpoint import (
    CheckpointHook,
    Checkpoints,
    CommittedEpisode,
    DeleteAudit,
    InstanceRecord,
    validated,
)
from durable_azstorage.backend.memory_control import ControlQueues
from durable_azstorage.backend.memory_query import page_of, without_payloads
from durable_azstorage.backend.memory_queues import Lock, LockToken, Signal, StoredMessage, uncount
from durable_azstorage.backend.protocol import (
    ActivityWorkItem,
    OrchestrationCommit,
    OrchestrationWorkItem,
)
from durable_azstorage.backend.reuse import may_replace, pending_state
from durable_azstorage.model.archive import (
    DEFAULT_ARCHIVED_EXECUTIONS,
    EndedExecution,
    validate_archive_limit,
)
from durable_azstorage.model.errors import (
    ConcurrencyConflictError,
    LockLostError,
    OrchestrationNotFoundError,
    TaskHubNotFoundError,
)
from durable_azstorage.model.history import ExecutionStarted, HistoryEvent
from durable_azstorage.model.identifiers import validate_instance_id
from durable_azstorage.model.messages import TaskMessage
from durable_azstorage.model.query import OrchestrationQuery, Page
from durable_azstorage.model.scale import HubSample, PartitionSample
from durable_azstorage.model.state import InstanceState, OrchestrationIdReusePolicy
from durable_azstorage.model.taskhub import TaskHubInfo
from durable_azstorage.serialization.codec import (
    decode_event,
    decode_state,
    encode_event,
    encode_state,
)

log = logging.getLogger(__name__)
_T = TypeVar("_T")


class InMemoryBackend:
    """Backend protocol in memory. ``lock_timeout`` is how long a received item stays locked.

    ``checkpoint_hook`` and ``delete_audit`` are test seams (see ``memory_checkpoint``).
    """

    def __init__(
        self,
        *,
        clock: Clock | None = None,
        lock_timeout: timedelta = timedelta(minutes=5),
        checkpoint_hook: CheckpointHook | None = None,
        delete_audit: DeleteAudit | None = None,
        archived_executions: int = DEFAULT_ARCHIVED_EXECUTIONS,
    ) -> None:
        """``archived_executions``: earlier executions' histories kept per instance (0: none)."""
        if lock_timeout <= timedelta(0):
            raise ValueError(f"lock_timeout must be positive, got {lock_timeout}")
        self.archived_executions = validate_archive_limit(archived_executions)
        self.clock: Clock = clock or SystemClock()
        self.lock_timeout = lock_timeout
        self._mutex = threading.RLock()
        self._signal = Signal()
        self.clock.subscribe(self._signal.notify_all)
        self._hub_exists = True
        self._created = self.clock.now()
        self._stopped = False
        self.checkpoint_hook = checkpoint_hook
        self.delete_audit = delete_audit
        self._reset()

    def _reset(self) -> None:
        self._instances: dict[str, InstanceRecord] = {}
        self._etags: dict[str, int] = {}  # survives purge so that stale locks still conflict
        self._control = ControlQueues(dropped=self._drop, void=self._void)
        self._activities = ActivityQueue()
        self._archive = ArchivedExecutions(self.archived_executions)
        self._episodes = Checkpoints(
            instances=self._instances,
            control=self._control,
            activities=self._activities,
            enqueue=self._enqueue,
            now=self.clock.now,
            audit=lambda: self.delete_audit,
        )

    def _drop(self, instance_id: str, message: StoredMessage, reason: str) -> None:
        self._episodes.delete(instance_id, [message], None, reason)

    def _void(self, message: StoredMessage) -> bool:
        """A carried result whose request was received again (the activity runs again)."""
        return message.carrier is not None and not self._activities.still_carries(message.carrier)

    def _hide_carriers(self, lock: Lock) -> None:
        for message in lock.messages:
            if message.carrier is not None:
                self._activities.hide_carrier(message.carrier, lock.expires_at)

    # --- task hub -------------------------------------------------------------------------
    async def create_task_hub(self) -> None:
        with self._mutex:
            if not self._hub_exists:
                self._created = self.clock.now()
            self._hub_exists = True

    async def get_task_hub_info(self) -> TaskHubInfo:
        with self._mutex:
            self._require_hub()
            return TaskHubInfo("in-memory", 1, self._created, "InMemoryBackend", (), ())

    async def list_task_hubs(self) -> list[TaskHubInfo]:
        return [await self.get_task_hub_info()] if self._hub_exists else []

    async def sample_queues(self) -> HubSample:
        """All instances' messages as one partition (this backend has no partitions)."""
        with self._mutex:
            now = self.clock.now()
            control, control_since = self._control.backlog(now)
            work_items, work_since = self._activities.backlog(now)
        return HubSample(
            partitions=(
                PartitionSample(
                    partition=0, messages=control, oldest_message_age=_age(now, control_since)
                ),
            ),
            work_items=work_items,
            work_item_age=_age(now, work_since),
        )

    async def delete_task_hub(self) -> None:
        with self._mutex:
            self._hub_exists = False
            self._reset()
        self._signal.notify_all()

    async def start(self) -> None:
        with self._mutex:
            self._require_hub()
            self._stopped = False

    async def stop(self) -> None:
        with self._mutex:
            self._stopped = True
        self._signal.notify_all()

    # --- client side ----------------------------------------------------------------------
    async def create_instance(
        self, start: TaskMessage, *, reuse_policy: OrchestrationIdReusePolicy | None = None
    ) -> bool:
        instance_id = validate_instance_id(start.instance.instance_id)
        with self._mutex:
            self._require_hub()
            now = self.clock.now()
            stored = StoredMessage.of(start, now=now)
            existing = self._instances.get(instance_id)
            if existing is not None and existing.state is not None:
                if not may_replace(existing.state, reuse_policy):
                    return False
                self._archive.archive(instance_id, _replaced(existing.history))
            self._instances[instance_id] = InstanceRecord(
                state=pending_state(start, now), state_episode=self._episodes.next_number()
            )
            self._bump_etag(instance_id)
            self._control.push(instance_id, stored)
        self._signal.notify_all()
        return True

    async def send_message(self, message: TaskMessage) -> None:
        validate_instance_id(message.instance.instance_id)
        with self._mutex:
            self._require_hub()
            self._enqueue(message, self.clock.now())
        self._signal.notify_all()

    async def get_instance(
        self, instance_id: str, *, fetch_payloads: bool = True
    ) -> InstanceState | None:
        with self._mutex:
            record = self._instances.get(instance_id)
            state = record.state if record is not None else None
        if state is None:
            return None
        return state if fetch_payloads else without_payloads(state)

    async def get_history(self, instance_id: str) -> list[HistoryEvent]:
        with self._mutex:
            record = self._instances.get(instance_id)
            return list(record.history) if record is not None else []

    async def get_execution_history(
        self, instance_id: str, execution_id: str
    ) -> list[HistoryEvent] | None:
        with self._mutex:
            record = self._instances.get(instance_id)
            if record is not None and _execution_of(record.history) == execution_id:
                return list(record.history)
            return self._archive.get(instance_id, execution_id)

    async def list_executions(self, instance_id: str) -> list[str]:
        with self._mutex:
            record = self._instances.get(instance_id)
            current = _execution_of(record.history) if record is not None else None
            earlier = [e for e in self._archive.oldest_first(instance_id) if e != current]
            return [*earlier, current] if current is not None else earlier

    async def query_instances(self, query: OrchestrationQuery) -> Page[InstanceState]:
        with self._mutex:
            states = [r.state for r in self._instances.values() if r.state is not None]
        return page_of(states, query)

    async def purge_instance(self, instance_id: str) -> bool:
        with self._mutex:
            record = self._instances.pop(instance_id, None)
            self._archive.drop(instance_id)
            if record is None:
                return False
            self._bump_etag(instance_id)
            return True

    async def replace_history(
        self, instance_id: str, history: Sequence[HistoryEvent], state: InstanceState
    ) -> None:
        events = [decode_event(encode_event(e)) for e in history]  # validate before writing
        new_state = decode_state(encode_state(state))
        with self._mutex:
            record = self._instances.get(instance_id)
            if record is None or record.state is None:
                raise OrchestrationNotFoundError(instance_id)
            if record.state.execution_id != state.execution_id:
                raise ConcurrencyConflictError(
                    f"instance {instance_id!r} now runs execution {record.state.execution_id!r}, "
                    f"not {state.execution_id!r}; its history was not replaced"
                )
            record.history = events
            record.state = new_state
            record.state_episode = self._episodes.next_number()
            self._bump_etag(instance_id)

    # --- orchestration work items --------------------------------------------------------
    async def lock_next_orchestration(self, timeout: float) -> OrchestrationWorkItem | None:
        return await self._wait_for(
            self._try_lock_orchestration, lambda: self._control.next_change(), timeout
        )

    async def renew_orchestration(self, item: OrchestrationWorkItem) -> None:
        with self._mutex:
            lock = self._live_orch_lock(item)
            self._control.renew(item.instance_id, lock, self.clock.now() + self.lock_timeout)
            self._hide_carriers(lock)

    async def complete_orchestration(
        self, item: OrchestrationWorkItem, commit: OrchestrationCommit
    ) -> None:
        if commit.ended_executions:  # archived before step 1: a re-run archives them again
            validated(commit, item.instance_id)  # a commit that cannot be stored writes nothing
            with self._mutex:
                self._archive.archive(item.instance_id, commit.ended_executions)
        episode, consumed = self._commit_history(item, commit)  # 1. history
        await self._step("history", item.instance_id)
        with self._mutex:  # 2. outbound messages
            self._episodes.send_outbox(episode)
        self._signal.notify_all()
        await self._step("messages", item.instance_id)
        with self._mutex:  # 3. instance state
            self._episodes.write_state(episode)
        await self._step("instance", item.instance_id)
        with self._mutex:  # 4. consumed messages; the lock is released
            self._episodes.delete(item.instance_id, consumed, episode.token, "consumed")
            self._control.unlock(item.instance_id, episode.token, self.clock.now())
        self._signal.notify_all()

    def _commit_history(
        self, item: OrchestrationWorkItem, commit: OrchestrationCommit
    ) -> tuple[CommittedEpisode, list[StoredMessage]]:
        """Validate everything, then write the history (ETag-guarded) and file the episode."""
        with self._mutex:
            instance_id = item.instance_id
            token = self._own_token(item.lock_token, instance_id)
            if self._etags.get(instance_id, 0) != token.etag:
                raise ConcurrencyConflictError(
                    f"instance {instance_id!r} was changed by another writer since this work "
                    "item was locked; nothing was committed or sent"
                )
            lock = self._live_orch_lock(item)
            events, state, outbox = validated(commit, instance_id)
            record = self._instances.setdefault(instance_id, InstanceRecord())
            record.history = events if commit.new_execution else record.history + events
            self._bump_etag(instance_id)
            episode = CommittedEpisode(
                number=self._episodes.next_number(),
                instance_id=instance_id,
                token=token,
                record=record,
                state=state,
                outbox=outbox,
                changed_history=bool(events) or commit.new_execution,
            )
            consumed = list(lock.messages)
            self._episodes.record(episode, consumed)
            return episode, consumed

    async def _step(self, step: str, instance_id: str) -> None:
        hook = self.checkpoint_hook
        if hook is not None:
            await hook(step, instance_id)

    async def abandon_orchestration(
        self, item: OrchestrationWorkItem, *, delay: timedelta | None = None, deferred: bool = False
    ) -> None:
        with self._mutex:
            lock = self._live_orch_lock(item)
            if deferred:
                uncount(lock.messages)
            visible_at = self.clock.now() + (delay or timedelta(0))
            for message in lock.messages:  # a carried result goes back as a plain one
                carrier, message.carrier = message.carrier, None
                if carrier is not None:
                    message.answers = carrier.request.id
                    self._activities.drop_carrier(carrier)
            self._control.release(item.instance_id, lock, visible_at)
        self._signal.notify_all()

    # --- activity work items --------------------------------------------------------------
    async def lock_next_activity(self, timeout: float) -> ActivityWorkItem | None:
        return await self._wait_for(
            self._try_lock_activity, self._activities.next_visible_at, timeout
        )

    async def renew_activity(self, item: ActivityWorkItem) -> None:
        with self._mutex:
            lock = self._live_activity_lock(item)
            self._activities.renew(lock, self.clock.now() + self.lock_timeout)

    async def complete_activity(self, item: ActivityWorkItem, result: TaskMessage) -> None:
        with self._mutex:
            token = self._own_token(item.lock_token, None)
            now = self.clock.now()
            lock = self._activities.live_lock(token, now)
            live = lock is not None
            stored = StoredMessage.of(result, now=now)
            if lock is not None:  # handed over in process, carried by the request
                stored.carrier = self._activities.carry(lock)
            else:
                stored.answers = int(token.key)
            self._control.push(result.instance.instance_id, stored)
        self._signal.notify_all()
        if not live:
            raise LockLostError(
                f"the lock on activity {item.name!r} (task {item.task_id} of "
                f"{item.instance.instance_id!r}) expired; the result was sent, the request "
                "will be delivered again"
            )

    async def abandon_activity(
        self, item: ActivityWorkItem, *, delay: timedelta | None = None, deferred: bool = False
    ) -> None:
        with self._mutex:
            lock = self._live_activity_lock(item)
            if deferred:
                uncount(lock.messages)
            visible_at = self.clock.now() + (delay or timedelta(0))
            self._activities.release(lock, visible_at)
        self._signal.notify_all()

    # --- receiving ------------------------------------------------------------------------
    async def _wait_for(
        self,
        attempt: Callable[[], _T | None],
        next_change: Callable[[], datetime | None],
        timeout: float,
    ) -> _T | None:
        """``attempt`` under the mutex until it finds work, the backend stops or ``timeout``."""

        def check() -> tuple[bool, _T | None, datetime | None]:
            with self._mutex:
                if self._stopped or not self._hub_exists:
                    return True, None, None
                return False, attempt(), next_change()

        return await self._signal.poll(check, self.clock.seconds_until, timeout)

    def _try_lock_orchestration(self) -> OrchestrationWorkItem | None:
        def token(instance_id: str) -> LockToken:
            return LockToken(self, instance_id, self._etags.get(instance_id, 0))

        while True:
            now = self.clock.now()
            locked = self._control.lock_next(now, self.lock_timeout, self._probe, token)
            if locked is None:
                return None
            instance_id, lock = locked
            if not self._episodes.recover(instance_id, lock):
                break
        self._hide_carriers(lock)
        record = self._instances.get(instance_id)
        return OrchestrationWorkItem(
            instance_id=instance_id,
            history=tuple(record.history) if record is not None else (),
            messages=tuple(m.decode() for m in lock.messages),
            lock_token=lock.token,
            dequeue_count=max(m.dequeue_count for m in lock.messages),
        )

    def _probe(self, instance_id: str) -> tuple[bool, bool]:
        record = self._instances.get(instance_id)
        if record is None:
            return False, False
        return record.state is not None, bool(record.history)

    def _try_lock_activity(self) -> ActivityWorkItem | None:
        lock = self._activities.lock_next(self.clock.now(), self.lock_timeout, self)
        if lock is None:
            return None
        stored = lock.messages[0]
        return ActivityWorkItem.from_message(
            stored.decode(), lock_token=lock.token, dequeue_count=stored.dequeue_count
        )

    # --- locks ----------------------------------------------------------------------------
    def _own_token(self, token: object, instance_id: str | None) -> LockToken:
        if not isinstance(token, LockToken) or token.owner is not self:
            raise LockLostError(f"lock token {token!r} was not issued by this backend")
        if instance_id is not None and token.key != instance_id:
            raise LockLostError(f"lock token {token!r} is not for instance {instance_id!r}")
        return token

    def _live_orch_lock(self, item: OrchestrationWorkItem) -> Lock:
        token = self._own_token(item.lock_token, item.instance_id)
        return self._control.require_live(item.instance_id, token, self.clock.now())

    def _live_activity_lock(self, item: ActivityWorkItem) -> Lock:
        token = self._own_token(item.lock_token, None)
        return self._activities.require_live(token, self.clock.now(), item)

    # --- storage --------------------------------------------------------------------------
    def _require_hub(self) -> None:
        if not self._hub_exists:
            raise TaskHubNotFoundError("in-memory")

    def _bump_etag(self, instance_id: str) -> None:
        self._etags[instance_id] = self._etags.get(instance_id, 0) + 1

    def _enqueue(self, message: TaskMessage, now: datetime) -> None:
        stored = StoredMessage.of(message, now=now)
        if message.is_activity_request:
            self._activities.push(stored)
        else:
            self._control.push(message.instance.instance_id, stored)


def _age(now: datetime, since: datetime | None) -> float | None:
    return None if since is None else max(0.0, (now - since).total_seconds())


def _execution_of(history: Sequence[HistoryEvent]) -> str | None:
    started = next((e for e in history if isinstance(e, ExecutionStarted)), None)
    return started.instance.execution_id if started is not None else None


def _replaced(history: Sequence[HistoryEvent]) -> list[EndedExecution]:
    """The execution a replacing ``create_instance`` drops (none if it never started)."""
    execution_id = _execution_of(history)
    if execution_id is None:
        return []
    return [EndedExecution(execution_id=execution_id, events=tuple(history))]
