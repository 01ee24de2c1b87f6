"""Stopping a control-queue receiver (a partition hand-over) never strands messages.

The service hides messages when it answers a receive. A stop that cancelled the request
after that left them invisible for the whole visibility timeout (5 minutes by default), so
orchestrations on a partition that just moved stalled; measured before the fix: 7 of 40
stops at random moments stranded a batch. Now a receive in flight is finished, its batch
reaches the buffer, and the caller (the provider's ``_let_go``) makes it visible again.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from stores_support import Stores

from durable_azstorage.azure.messaging.control_receiver import ControlQueueReceiver, MessageBuffer
from durable_azstorage.azure.messaging.deliveries import SelfCausedDeliveries
from durable_azstorage.azure.messaging.queues import MessageQueue, ReceivedMessage

VISIBILITY = timedelta(minutes=5)  # far longer than the test: only a hand-back shows them
COUNT = 5


class SlowAnswer(MessageQueue):
    """A queue whose receive answers late: the messages are already hidden by the service
    while the response is still on its way (where a cancellation used to lose them)."""

    dequeued: asyncio.Event

    async def receive(
        self, max_messages: int, visibility_timeout: timedelta
    ) -> list[ReceivedMessage]:
        received = await super().receive(max_messages, visibility_timeout)
        if received:
            self.dequeued.set()
            await asyncio.sleep(0.3)
        return received


async def test_stop_during_a_receive_keeps_the_batch_for_the_hand_back(stores: Stores) -> None:
    client = stores.clients.queue(stores.names.control_queues[0])
    queue = SlowAnswer(client, stores.payloads, stores.clients.retry, max_delay=timedelta(days=6))
    queue.dequeued = asyncio.Event()
    for i in range(COUNT):
        await client.send_message(f"message {i}")
    buffer = MessageBuffer(256, SelfCausedDeliveries())
    buffer.add_waiter()  # demand: the receiver polls

    async def handle(batch: list[ReceivedMessage]) -> None:
        for message in batch:
            buffer.add(message.message_id, message)

    receiver = ControlQueueReceiver(
        queue,
        buffer,
        batch_size=32,
        visibility_timeout=VISIBILITY,
        max_poll_interval=timedelta(seconds=1),
        handle=handle,
    )
    receiver.start()
    await asyncio.wait_for(queue.dequeued.wait(), 10)
    assert await client.peek_messages(max_messages=32) == []  # hidden by the service now

    await receiver.stop()  # while the answer is still on its way
    dropped = buffer.drop_queue(queue.name)
    assert len(dropped) == COUNT
    for message in dropped:
        await queue.set_visibility(message, timedelta(0))
    visible = await client.peek_messages(max_messages=32)
    assert sorted(m.content for m in visible) == [f"message {i}" for i in range(COUNT)]


async def test_stop_while_idle_ends_at_once(stores: Stores) -> None:
    """A receiver waiting for demand or sleeping between polls is still cancelled."""
    client = stores.clients.queue(stores.names.control_queues[1])
    queue = MessageQueue(client, stores.payloads, stores.clients.retry, max_delay=timedelta(days=6))
    buffer = MessageBuffer(256, SelfCausedDeliveries())

    async def handle(batch: list[ReceivedMessage]) -> None:
        raise AssertionError("the queue is empty")

    receiver = ControlQueueReceiver(
        queue,
        buffer,
        batch_size=32,
        visibility_timeout=VISIBILITY,
        max_poll_interval=timedelta(seconds=30),
        handle=handle,
    )
    receiver.start()
    await asyncio.sleep(0.1)  # no demand: it waits for a caller
    await asyncio.wait_for(receiver.stop(), 2)
    buffer.add_waiter()
    receiver.start()
    await asyncio.sleep(0.3)  # polled the empty queue, now sleeping in its back-off
    await asyncio.wait_for(receiver.stop(), 2)
