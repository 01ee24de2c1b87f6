"""Deliveries this process caused itself, so that they never count toward poison.

Azure counts every receive of a message (``dequeue_count``), including the receives that
follow a give-back this process made for its own reasons: an event deferred until its
instance starts, a prefetched activity request nobody here claimed in time, a buffered
control message whose visibility ran out while it waited for a free slot. Such deliveries
say nothing about the message; only deliveries whose processing failed (or whose holder
died) do. ``failed_deliveries`` subtracts the ones recorded here before the poison check.

The record is per process and bounded (the oldest entries are forgotten first): a message
handed to another process (a partition hand-over) arrives there with the raw count, one
more per hand-over, which ``max_dequeue_count`` absorbs. Deferrals (a worker rejecting an
instance's version, no SDK worker able to take an item) can repeat without bound and
must hold across processes (the rolling deployment hands them to the new code's worker):
they are recorded in the message text itself (``MessageQueue.defer``), not here.
"""

from __future__ import annotations

from collections import OrderedDict

from durable_azstorage.azure.messaging.queues import ReceivedMessage

DEFAULT_CAPACITY = 10_000


class SelfCausedDeliveries:
    """Per message id: how many of its deliveries this process caused."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self._capacity = capacity
        self._caused: OrderedDict[str, int] = OrderedDict()

    def caused(self, message_id: str) -> None:
        """This process gave the message back (or let it reappear) for a reason of its own:
        its next delivery is not a failure."""
        self._caused[message_id] = self._caused.pop(message_id, 0) + 1
        while len(self._caused) > self._capacity:
            self._caused.popitem(last=False)

    def failed_deliveries(self, received: ReceivedMessage) -> int:
        """Deliveries of ``received`` that count toward poison (at least 1: this one): not
        those caused here, nor the deferrals recorded in the message (by any process)."""
        caused = self._caused.get(received.message_id, 0) + received.deferrals
        return max(1, received.dequeue_count - caused)

    def forget(self, message_id: str) -> None:
        """The message is gone (deleted); its record is no longer needed."""
        self._caused.pop(message_id, None)

    def __len__(self) -> int:
        return len(self._caused)


__all__ = ["DEFAULT_CAPACITY", "SelfCausedDeliveries"]
