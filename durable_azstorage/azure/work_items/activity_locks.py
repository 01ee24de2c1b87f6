"""Activity work items: locks on work-item queue messages, renewal, completion, abandon.

A lock is the received message's invisibility: renewing extends it (new pop receipt),
abandoning makes it visible again after the delay. Completing sends the result to the
orchestration's control queue *first* and then deletes the request (a crash in between re-runs
the activity; replay ignores the duplicate result). When this process receives the
orchestration's partition, the result is instead handed to its message buffer together with
the still-hidden request message (``deliver``): the episode that applies the result deletes
the request in its checkpoint step 4, so the request is the result's durable record until
then (a crash re-runs the activity), and the control-queue send, receive and delete are
saved. A result sent through the queue names the request it answers (``answers``), so a
committed episode that consumed the request is recognised (``checkpoint``). A request
delivered more than ``max_dequeue_count`` times is copied to the poison store before it is
handed out; the worker then fails the activity instead of running it again.

An activity dispatched in process (``local_carriers``) has no request message: its lock is
its carrier's, which ``LocalCarriers`` renews. Its result is buffered riding on the carrier,
or, when the partition is not received here any more, sent through the control queue; an
abandoned one is sent to the work-item queue as an ordinary request.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone

from durable_azstorage.azure.messaging.activity_receiver import ActivityReceiver
from durable_azstorage.azure.messaging.queues import ReceivedMessage
from durable_azstorage.azure.work_items.local_carriers import LocalCarriers, item_task_id
from durable_azstorage.backend.protocol import ActivityWorkItem
from durable_azstorage.model.errors import LockLostError
from durable_azstorage.model.messages import TaskMessage
from durable_azstorage.serialization.codec import encode_message

Send = Callable[[TaskMessage, str | None], Awaitable[object]]
"""``send(result, answers)``: the result to the control queue, naming the request's id
(None: a local activity, which had no request message)."""
Deliver = Callable[[str, ReceivedMessage], bool]
"""``deliver(instance_id, received)``: buffer a result in process (``PartitionReceivers``)."""


@dataclass(eq=False, slots=True)
class _ActivityLock:
    received: ReceivedMessage


class ActivityLocks:
    """The activity half of ``AzureStorageBackend``."""

    def __init__(
        self,
        receiver: ActivityReceiver,
        *,
        send: Send,
        deliver: Deliver,
        quarantine: Callable[[ReceivedMessage, str], Awaitable[object]],
        max_dequeue_count: int,
        visibility_timeout: timedelta,
        carriers: LocalCarriers,
    ) -> None:
        self.receiver = receiver
        self._queue = receiver.queue
        self._send = send
        self._deliver = deliver
        self.delivered_in_process = 0
        """Results handed to this process's message buffer instead of the control queue."""
        self._quarantine = quarantine
        self._max_dequeue_count = max_dequeue_count
        self._visibility = visibility_timeout
        self._locks: dict[str, _ActivityLock] = {}
        self._carriers = carriers

    async def lock_next(self, timeout: float) -> ActivityWorkItem | None:
        received = await self.receiver.next(timeout)
        if received is None or received.message is None:
            return None
        limit = self._max_dequeue_count
        failed = self.receiver.deliveries.failed_deliveries(received)
        if failed > limit:
            await self._quarantine(
                received, f"delivered {failed} times (max_dequeue_count={limit})"
            )
        lock = _ActivityLock(received)
        self._locks[received.message_id] = lock
        return ActivityWorkItem.from_message(
            received.message, lock_token=lock, dequeue_count=failed
        )

    def _own(self, item: ActivityWorkItem) -> _ActivityLock:
        lock = item.lock_token
        if (
            not isinstance(lock, _ActivityLock)
            or self._locks.get(lock.received.message_id) is not lock
        ):
            raise LockLostError(
                f"the lock on activity {item.name!r} (task {item.task_id} of "
                f"{item.instance.instance_id!r}) is not held by this backend"
            )
        visible = lock.received.next_visible_on
        if visible is not None and visible <= datetime.now(timezone.utc):
            self._locks.pop(lock.received.message_id, None)
            raise LockLostError(
                f"the lock on activity {item.name!r} (task {item.task_id} of "
                f"{item.instance.instance_id!r}) expired at {visible.isoformat()}"
            )
        return lock

    async def renew(self, item: ActivityWorkItem) -> None:
        lock = self._own(item)
        if lock.received.carrier is not None:
            return  # the carrier's lock, renewed by ``LocalCarriers``
        try:
            lock.received = await self._queue.set_visibility(lock.received, self._visibility)
        except Exception as exc:
            self._locks.pop(lock.received.message_id, None)
            raise LockLostError(
                f"could not renew the lock on activity {item.name!r}: {exc}"
            ) from exc

    async def complete(self, item: ActivityWorkItem, result: TaskMessage) -> None:
        lock = item.lock_token
        if not isinstance(lock, _ActivityLock):
            raise LockLostError(f"lock token {lock!r} was not issued by this backend")
        request = lock.received
        held = self._locks.pop(request.message_id, None) is lock
        if request.carrier is not None:
            if held:
                await self._complete_local(request, result)
            return
        if held and self._deliver_in_process(request, result):
            self.delivered_in_process += 1
            return
        await self._send(result, request.message_id)
        deleted = held and await self._queue.consume(request)
        if deleted:
            self.receiver.deliveries.forget(request.message_id)
        if not deleted:
            raise LockLostError(
                f"the lock on activity {item.name!r} (task {item.task_id} of "
                f"{item.instance.instance_id!r}) was lost; the result was sent, the request "
                "will be delivered again"
            )

    async def _complete_local(self, request: ReceivedMessage, result: TaskMessage) -> None:
        """Buffer the result riding on the carrier, or send it (the carrier or the partition
        is not here any more): then the queue message is its record."""
        self.receiver.local.finished()
        carrier = request.carrier
        assert carrier is not None
        instance_id = result.instance.instance_id
        if self._carriers.holds(carrier):
            copy = replace(request, message=result, inserted_on=datetime.now(timezone.utc))
            if self._deliver(instance_id, copy):
                self.delivered_in_process += 1
                return
        await self._send(result, None)
        await self._carriers.resolve(instance_id, carrier, item_task_id(request))

    def _deliver_in_process(self, request: ReceivedMessage, result: TaskMessage) -> bool:
        visible = request.next_visible_on
        # A request whose lock ends within a third of its timeout is not handed over in
        # process: it could reappear, and run again, before the episode deletes it.
        if visible is None or visible - datetime.now(timezone.utc) < self._visibility / 3:
            return False
        carrier = replace(
            request,
            message=result,
            raw=encode_message(result),
            inserted_on=datetime.now(timezone.utc),
            sequence_number=None,
            answers=None,
            error=None,
        )
        return self._deliver(result.instance.instance_id, carrier)

    async def abandon(
        self, item: ActivityWorkItem, *, delay: timedelta | None = None, deferred: bool = False
    ) -> None:
        lock = self._own(item)
        self._locks.pop(lock.received.message_id, None)
        local = lock.received
        if local.carrier is not None and local.message is not None:
            self.receiver.local.finished()  # an ordinary request from now on
            await self._queue.send(local.message, delay=delay)
            await self._carriers.resolve(
                local.message.instance.instance_id, local.carrier, item_task_id(local)
            )
            return
        try:
            if deferred:  # given back by choice: recorded in the message, not a failure
                await self._queue.defer(lock.received, delay or timedelta(0))
            else:
                await self._queue.set_visibility(lock.received, delay or timedelta(0))
        except Exception as exc:  # a stale receipt: it becomes visible again anyway
            raise LockLostError(f"could not abandon activity {item.name!r}: {exc}") from exc
