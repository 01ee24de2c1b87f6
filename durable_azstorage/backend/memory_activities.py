"""The in-memory backend's work-item queue: activity requests, competing consumers, locks.

Modelled on an Azure queue: a receive hides the request until its lock expires and bumps its
``dequeue_count``; completion deletes it; an expired lock lets it reappear.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from durable_azstorage.backend.memory_queues import Lock, LockToken, StoredMessage, VisibilityQueue, backlog
from durable_azstorage.backend.protocol import ActivityWorkItem
from durable_azstorage.model.errors import LockLostError


class ActivityQueue:
    """Activity requests and the locks on the ones being run."""

    def __init__(self) -> None:
        self._queue = VisibilityQueue()
        self._locks: dict[str | int, Lock] = {}

    def push(self, message: StoredMessage) -> None:
        self._queue.push(message)

    def next_visible_at(self) -> datetime | None:
        return self._queue.next_visible_at()

    def backlog(self, now: datetime) -> tuple[int, datetime | None]:
        """Requests queued, and since when the oldest visible one waits."""
        return backlog(self._queue, now)

    def lock_next(self, now: datetime, lock_timeout: timedelta, owner: object) -> Lock | None:
        """Lock the request that became visible first; None if none is visible."""
        stored = self._queue.first_visible(now)
        if stored is None:
            return None
        lock = Lock(token=LockToken(owner, stored.id, 0), expires_at=now + lock_timeout, messages=[stored])
        self._locks[stored.id] = lock
        stored.dequeue_count += 1
        self._queue.hide_until(stored, lock.expires_at)
        return lock

    def live_lock(self, token: LockToken, now: datetime) -> Lock | None:
        lock = self._locks.get(token.key)
        if lock is None or lock.token is not token or lock.expires_at <= now:
            return None
        return lock

    def require_live(self, token: LockToken, now: datetime, item: ActivityWorkItem) -> Lock:
        """The live lock ``token`` holds, else ``LockLostError`` naming ``item``."""
        lock = self.live_lock(token, now)
        if lock is None:
            raise LockLostError(
                f"the lock on activity {item.name!r} (task {item.task_id} of "
                f"{item.instance.instance_id!r}) expired or was taken by another worker"
            )
        return lock

    def renew(self, lock: Lock, until: datetime) -> None:
        lock.expires_at = until
        self._queue.hide_until(lock.messages[0], until)

    def consume(self, lock: Lock) -> None:
        self._queue.remove(lock.messages[0])
        del self._locks[lock.token.key]

    def release(self, lock: Lock, visible_at: datetime) -> None:
        self._queue.hide_until(lock.messages[0], visible_at)
        del self._locks[lock.token.key]
