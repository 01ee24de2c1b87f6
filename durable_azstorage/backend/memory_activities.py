"""The in-memory backend's work-item queue: activity requests, competing consumers, locks.

Modelled on an Azure queue: a receive hides the request until its lock expires and bumps its
``dequeue_count``; completion deletes it; an expired lock lets it reappear.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from durable_azstorage.backend.memory_queues import (
    Carrier,
    Lock,
    LockToken,
    StoredMessage,
    VisibilityQueue,
    backlog,
)
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
        lock = Lock(
            token=LockToken(owner, stored.id, 0), expires_at=now + lock_timeout, messages=[stored]
        )
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

    # --- requests carrying their result (see ``StoredMessage``) ----------------------------
    def carry(self, lock: Lock) -> Carrier:
        """End the activity's lock but keep its request hidden: it now carries the result.

        It stays hidden while the result waits (the Azure worker renews it meanwhile) and as
        long as the work item holding the result (``hide_carrier``); when that lock expires
        unrenewed, the request reappears and may run again, voiding the result."""
        del self._locks[lock.token.key]
        request = lock.messages[0]
        self._queue.hide_until(request, datetime.max.replace(tzinfo=request.invisible_until.tzinfo))
        return Carrier(request=request, deliveries=request.dequeue_count)

    def still_carries(self, carrier: Carrier) -> bool:
        """The request is queued and nobody received it since it began to carry."""
        request = carrier.request
        return self._queue.contains(request) and request.dequeue_count == carrier.deliveries

    def hide_carrier(self, carrier: Carrier, until: datetime) -> None:
        """Keep a carrying request hidden as long as the work item holding its result."""
        if self.still_carries(carrier):
            self._queue.hide_until(carrier.request, until)

    def drop_carrier(self, carrier: Carrier) -> None:
        """The result was applied or returned to the control queue: the request is done."""
        if self.still_carries(carrier):
            self._queue.remove(carrier.request)

    def has_request(self, message_id: int) -> bool:
        return self._queue.contains_id(message_id)
