"""Activities this process dispatches to itself: no work-item message, no receive.

When the worker that commits an episode has room, the episode's activity requests are not
sent through the work-item queue; they wait here and the activity receiver hands them out
before anything it received (``ActivityReceiver.next``). Each is a ``ReceivedMessage`` that
exists only in this process: its ``carrier`` names the queue message whose lock is its
durable record (``work_items.local_carriers``).

Room is bounded (``limit``, counting the items waiting here and those running), so only
what this process will start soon is kept here: the rest goes through the queue, where any
worker can take it. A process that never asked for activity work (a client, an
orchestration-only worker) has no room.
"""

from __future__ import annotations

import asyncio
from collections import deque
from datetime import datetime, timezone

from durable_azstorage.azure.messaging.queues import ReceivedMessage
from durable_azstorage.model.messages import TaskMessage

LOCAL_PREFIX = "~local:"


def local_item(
    queue_name: str, carrier: str, message: TaskMessage, task_id: int
) -> ReceivedMessage:
    """An in-process item (a request or its result) riding on ``carrier``'s lock."""
    return ReceivedMessage(
        queue_name=queue_name,
        message_id=f"{LOCAL_PREFIX}{carrier}:{task_id}",
        pop_receipt="",
        dequeue_count=1,
        inserted_on=datetime.now(timezone.utc),
        next_visible_on=None,
        raw="",
        message=message,
        carrier=carrier,
    )


class LocalActivityQueue:
    """Locally dispatched activity requests waiting for this process's activity workers."""

    def __init__(self, limit: int) -> None:
        if limit < 0:
            raise ValueError(f"limit must be >= 0, got {limit}")
        self.limit = limit
        self._items: deque[ReceivedMessage] = deque()
        self._running = 0
        self.serving = False
        """Someone in this process has asked for activity work (only then is there room)."""
        self.arrived = asyncio.Event()
        """Set when an item is offered (the receiver waits on it with its other wake-ups)."""
        self.dispatched = 0
        """Requests ever dispatched here (diagnostics: each saved a send, receive, delete)."""

    def room(self) -> int:
        if not self.serving:
            return 0
        return max(0, self.limit - len(self._items) - self._running)

    def offer(self, item: ReceivedMessage) -> None:
        self._items.append(item)
        self.dispatched += 1
        self.arrived.set()

    def take(self) -> ReceivedMessage | None:
        """The oldest waiting item, counted as running until ``finished``."""
        if not self._items:
            return None
        self._running += 1
        return self._items.popleft()

    def finished(self) -> None:
        self._running = max(0, self._running - 1)

    def take_all(self) -> list[ReceivedMessage]:
        """Every waiting item (the backend stops: they go through the queue instead)."""
        items = list(self._items)
        self._items.clear()
        return items

    def __len__(self) -> int:
        return len(self._items)


__all__ = ["LOCAL_PREFIX", "LocalActivityQueue", "local_item"]
