"""The queue receivers' idle back-off, on a fake clock: a wake-up (this process sent, or the
wake-up signal changed) polls at once, but only a poll that finds work restarts the back-off.
Before, every wake-up restarted it, so one signal from a client set every queue of a worker
polling from 50 ms again (about eight more polls per queue before they settled)."""

from __future__ import annotations

from datetime import timedelta

from stores_support import Stores

from durable_azstorage.azure.messaging.activity_receiver import ActivityReceiver
from durable_azstorage.azure.messaging.control_receiver import ControlQueueReceiver, MessageBuffer
from durable_azstorage.azure.messaging.deliveries import SelfCausedDeliveries
from durable_azstorage.azure.messaging.local_activities import LocalActivityQueue
from durable_azstorage.azure.messaging.queues import MessageQueue, ReceivedMessage
from durable_azstorage.model.history import OrchestrationInstance, TaskScheduled
from durable_azstorage.model.messages import TaskMessage
from durable_azstorage.testing.eventually import eventually_async

MAX_POLL = timedelta(seconds=10)
VISIBILITY = timedelta(minutes=5)


class Ticks:
    """The back-off's clock, moved by hand (the receive loop itself runs in real time)."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _request(task_id: int) -> TaskMessage:
    return TaskMessage(
        instance=OrchestrationInstance(instance_id="backoff-test", execution_id="e1"),
        event=TaskScheduled(event_id=task_id, name="work", input=None),
    )


def _polls(stores: Stores) -> int:
    return stores.clients.counter.snapshot().counts.get(("queue", "GetMessages"), 0)


def _control_receiver(
    stores: Stores, buffer: MessageBuffer, clock: Ticks
) -> tuple[MessageQueue, ControlQueueReceiver]:
    """Partition 0's control queue and a receiver that buffers what it receives."""
    queue = MessageQueue(
        stores.clients.queue(stores.names.control_queues[0]),
        stores.payloads,
        stores.clients.retry,
        max_delay=timedelta(days=6),
    )

    async def handle(batch: list[ReceivedMessage]) -> None:
        for message in batch:
            buffer.add("backoff-test", message)

    receiver = ControlQueueReceiver(
        queue,
        buffer,
        batch_size=32,
        visibility_timeout=VISIBILITY,
        max_poll_interval=MAX_POLL,
        handle=handle,
        clock=clock,
    )
    return queue, receiver


async def test_control_receiver_restarts_its_back_off_only_when_a_poll_finds_work(
    stores: Stores,
) -> None:
    buffer = MessageBuffer(256, SelfCausedDeliveries())
    buffer.add_waiter()  # demand: the receiver polls
    clock = Ticks()
    queue, receiver = _control_receiver(stores, buffer, clock)
    started = _polls(stores)
    receiver.start()
    try:
        await eventually_async(
            lambda: _polls(stores), until=lambda n: n > started, what="the receiver's first poll"
        )
        clock.now += 5  # five quiet seconds: the receiver now polls every 5 s
        assert receiver.poll_interval == 5.0
        before = _polls(stores)

        receiver.wake()  # a signal, but nothing in the queue
        await eventually_async(
            lambda: _polls(stores), until=lambda n: n > before, what="a poll after the wake-up"
        )
        assert receiver.poll_interval == 5.0  # not restarted by an empty poll

        await queue.send(_request(1))
        receiver.wake()  # this process sent to the queue
        await eventually_async(lambda: buffer.count, until=lambda n: n == 1, what="the message")
        assert receiver.poll_interval == 0.05  # work found: from the fastest interval again
    finally:
        await receiver.stop()


async def test_a_control_receiver_with_a_full_buffer_is_paused_not_slow(stores: Stores) -> None:
    """The wake-up watch reads the signal only while a receiver polls slowly; one that cannot
    poll (its buffer is full, or no worker asks for work) is busy, and a wake-up cannot help."""
    buffer = MessageBuffer(1, SelfCausedDeliveries())
    clock = Ticks()
    queue, receiver = _control_receiver(stores, buffer, clock)
    clock.now += 5
    assert receiver.poll_interval == 0.0  # nobody asks for work yet
    buffer.add_waiter()
    assert receiver.poll_interval == 5.0  # asked, idle for five seconds
    await queue.send(_request(1))
    receiver.start()
    try:
        await eventually_async(lambda: buffer.count, until=lambda n: n == 1, what="the message")
        clock.now += 5
        assert receiver.poll_interval == 0.0  # the buffer (capacity 1) is full: paused
    finally:
        await receiver.stop()


async def test_activity_receiver_restarts_its_back_off_only_when_a_poll_finds_work(
    stores: Stores,
) -> None:
    queue = MessageQueue(
        stores.clients.queue(stores.names.work_item_queue),
        stores.payloads,
        stores.clients.retry,
        max_delay=timedelta(days=6),
    )

    async def undecodable(message: ReceivedMessage) -> None:
        raise AssertionError(f"unexpected undecodable message {message.message_id}")

    clock = Ticks()
    receiver = ActivityReceiver(
        queue,
        prefetch=1,
        visibility_timeout=VISIBILITY,
        max_poll_interval=MAX_POLL,
        on_undecodable=undecodable,
        deliveries=SelfCausedDeliveries(),
        local=LocalActivityQueue(0),
        clock=clock,
    )
    try:
        clock.now += 5
        before = _polls(stores)
        receiver.wake()
        assert await receiver.next(timeout=0.2) is None
        assert _polls(stores) > before  # it polled at once
        assert receiver.poll_interval == 5.0  # and found nothing: the back-off stands

        await queue.send(_request(2))
        receiver.wake()
        message = await receiver.next(timeout=5)
        assert message is not None and message.message is not None
        assert receiver.poll_interval == 0.05
    finally:
        await receiver.stop()
