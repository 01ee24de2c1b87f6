"""Per-instance control queues and the one-work-item-per-instance rule (in-memory backend).

Choosing the next orchestration work item: among instances that are not locked, the one
with the message that became visible first; all its visible messages are locked
together (ExecutionStarted first for a new execution). Messages for an instance that has
not started wait for its ExecutionStarted; messages for an instance that does not exist and
is not about to start are dropped with a log line, since nothing would ever consume them.
"""

from __future__ import annotations

import heapq
import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from durable_azstorage.backend.memory_queues import (
    Lock,
    LockToken,
    StoredMessage,
    VisibilityQueue,
    backlog,
)
from durable_azstorage.model.entities import is_entity_id
from durable_azstorage.model.errors import LockLostError

log = logging.getLogger(__name__)

InstanceProbe = Callable[[str], "tuple[bool, bool]"]
"""``probe(instance_id) -> (exists, started)``: a state record exists / history is not empty."""

DropListener = Callable[[str, StoredMessage, str], None]
"""Told of each message dropped, with the reason: ``dropped`` (its instance does not exist)
or ``void`` (a carried result whose request was received again: the activity runs again)."""

VoidCheck = Callable[[StoredMessage], bool]
"""``void(message)``: True for a carried result that may no longer be delivered."""


class ControlQueues:
    """Every instance's control queue, plus one heap over all of them.

    The heap holds ``(check_at, message)`` entries: when a message may next be deliverable.
    An entry is stale once its message is gone or its visibility moved (``version``); a
    message of a locked or not-yet-started instance is re-filed at the time worth checking
    again. Picking the next work item therefore costs O(log n), not a scan of all instances.
    """

    def __init__(self, dropped: DropListener | None = None, void: VoidCheck | None = None) -> None:
        self._dropped = dropped
        self._void = void
        self._queues: dict[str, VisibilityQueue] = {}
        self._locks: dict[str, Lock] = {}
        self._heap: list[tuple[datetime, int, int, str, StoredMessage]] = []

    def push(self, instance_id: str, message: StoredMessage) -> None:
        queue = self._queues.get(instance_id)
        if queue is None:
            queue = self._queues[instance_id] = VisibilityQueue(ordered=False)
        queue.push(message)
        self._file(instance_id, message, message.invisible_until)

    def lock_next(
        self,
        now: datetime,
        lock_timeout: timedelta,
        probe: InstanceProbe,
        token: Callable[[str], LockToken],
    ) -> tuple[str, Lock] | None:
        """Lock the next deliverable instance and hide its messages until the lock expires."""
        refile: list[tuple[str, StoredMessage, datetime]] = []
        found: tuple[str, list[StoredMessage]] | None = None
        while found is None and self._heap and self._heap[0][0] <= now:
            _, _, version, instance_id, message = heapq.heappop(self._heap)
            queue = self._queues.get(instance_id)
            if queue is None or not queue.contains(message) or message.version != version:
                continue  # stale entry
            lock = self._locks.get(instance_id)
            if lock is not None and lock.expires_at > now:
                refile.append((instance_id, message, lock.expires_at))
                continue
            self._locks.pop(instance_id, None)  # an expired lock: its messages are free again
            deliverable = self._deliverable(instance_id, queue, now, probe)
            if deliverable:
                found = (instance_id, deliverable)
            elif queue.contains(message):
                starts = [m.invisible_until for m in queue if m.is_start]
                if starts:
                    refile.append((instance_id, message, max(min(starts), now)))
        for instance_id, message, when in refile:
            self._file(instance_id, message, when)
        if found is None:
            return None
        instance_id, messages = found
        lock = Lock(token=token(instance_id), expires_at=now + lock_timeout, messages=messages)
        self._locks[instance_id] = lock
        for message in messages:
            message.dequeue_count += 1
        self._hide(instance_id, messages, lock.expires_at)
        return instance_id, lock

    def backlog(self, now: datetime) -> tuple[int, datetime | None]:
        """Messages queued for all instances, and since when the oldest visible one waits."""
        return backlog((m for queue in self._queues.values() for m in queue), now)

    def next_change(self) -> datetime | None:
        """The earliest time ``lock_next`` may find something it cannot find now."""
        while self._heap:
            _, _, version, instance_id, message = self._heap[0]
            queue = self._queues.get(instance_id)
            if queue is not None and queue.contains(message) and message.version == version:
                return self._heap[0][0]
            heapq.heappop(self._heap)
        return None

    def live_lock(self, instance_id: str, token: LockToken, now: datetime) -> Lock | None:
        lock = self._locks.get(instance_id)
        if lock is None or lock.token is not token or lock.expires_at <= now:
            return None
        return lock

    def require_live(self, instance_id: str, token: LockToken, now: datetime) -> Lock:
        """The live lock ``token`` holds, else ``LockLostError``."""
        lock = self.live_lock(instance_id, token, now)
        if lock is None:
            raise LockLostError(
                f"the lock on instance {instance_id!r} expired or was taken by another "
                "worker; its messages will be delivered again"
            )
        return lock

    def renew(self, instance_id: str, lock: Lock, until: datetime) -> None:
        lock.expires_at = until
        self._hide(instance_id, lock.messages, until)

    def release(self, instance_id: str, lock: Lock, visible_at: datetime) -> None:
        """Unlock and show the lock's messages again at ``visible_at`` (abandon)."""
        self.renew(instance_id, lock, visible_at)
        self._unlock(instance_id, visible_at)

    def delete(self, instance_id: str, messages: list[StoredMessage]) -> list[StoredMessage]:
        """Delete those of ``messages`` still queued (a recovery may have deleted some);
        returns the ones deleted now."""
        queue = self._queues.get(instance_id)
        if queue is None:
            return []
        deleted = [m for m in messages if queue.remove(m)]
        if not len(queue) and instance_id not in self._locks:
            del self._queues[instance_id]
        return deleted

    def unlock(self, instance_id: str, token: LockToken, now: datetime) -> None:
        """Drop the lock if ``token`` still holds it (completion); else leave it alone."""
        lock = self._locks.get(instance_id)
        if lock is not None and lock.token is token:
            self._unlock(instance_id, now)

    def _unlock(self, instance_id: str, now: datetime) -> None:
        """Drop the lock; messages that arrived meanwhile are worth checking at once."""
        del self._locks[instance_id]
        queue = self._queues.get(instance_id)
        if queue is None:
            return
        for message in queue:
            self._file(instance_id, message, max(message.invisible_until, now))
        if not len(queue):
            del self._queues[instance_id]

    def _hide(self, instance_id: str, messages: list[StoredMessage], until: datetime) -> None:
        queue = self._queues[instance_id]
        for message in messages:
            if queue.contains(message):
                queue.hide_until(message, until)
                self._file(instance_id, message, until)

    def _file(self, instance_id: str, message: StoredMessage, when: datetime) -> None:
        entry = (when, message.id, message.version, instance_id, message)
        heapq.heappush(self._heap, entry)

    def _deliverable(
        self, instance_id: str, queue: VisibilityQueue, now: datetime, probe: InstanceProbe
    ) -> list[StoredMessage]:
        visible = queue.visible(now)
        if self._void is not None:
            for message in [m for m in visible if self._void(m)]:
                if self._dropped is not None:
                    self._dropped(instance_id, message, "void")
                queue.remove(message)
            visible = [m for m in visible if queue.contains(m)]
        if not visible:
            return []
        exists, started = probe(instance_id)
        if started or is_entity_id(instance_id):  # an entity exists from its first message on
            return visible
        starts = [m for m in visible if m.is_start]
        if starts:
            return starts + [m for m in visible if not m.is_start]
        if exists or any(m.is_start for m in queue):
            return []  # wait for the ExecutionStarted
        for message in visible:
            log.warning(
                "discarding a message for instance %r, which does not exist: %s",
                instance_id,
                message.text[:200],
            )
            queue.remove(message)
            if self._dropped is not None:
                self._dropped(instance_id, message, "dropped")
        return []
