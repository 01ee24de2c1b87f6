"""The work-item receiver batches under load but never hoards: unclaimed prefetched requests
go back to the queue within ``hold``, and ``stop()`` hands its buffer back at once."""

from __future__ import annotations

from datetime import timedelta

from stores_support import Stores

from durable_azstorage.azure.messaging.activity_receiver import ActivityReceiver
from durable_azstorage.azure.messaging.deliveries import SelfCausedDeliveries
from durable_azstorage.azure.messaging.local_activities import LocalActivityQueue
from durable_azstorage.azure.messaging.queues import MessageQueue, ReceivedMessage
from durable_azstorage.model.history import OrchestrationInstance, TaskScheduled
from durable_azstorage.model.messages import TaskMessage

VISIBILITY = timedelta(minutes=5)  # far longer than the test: only a release makes them visible


def _queue(stores: Stores) -> MessageQueue:
    return MessageQueue(
        stores.clients.queue(stores.names.work_item_queue),
        stores.payloads,
        stores.clients.retry,
        max_delay=timedelta(days=6),
    )


def _receiver(queue: MessageQueue, *, prefetch: int, hold: timedelta) -> ActivityReceiver:
    async def undecodable(message: ReceivedMessage) -> None:
        raise AssertionError(f"unexpected undecodable message {message.message_id}")

    return ActivityReceiver(
        queue,
        prefetch=prefetch,
        visibility_timeout=VISIBILITY,
        max_poll_interval=timedelta(seconds=1),
        on_undecodable=undecodable,
        deliveries=SelfCausedDeliveries(),
        local=LocalActivityQueue(0),
        hold=hold,
    )


async def _send_requests(queue: MessageQueue, count: int) -> None:
    for task_id in range(count):
        await queue.send(
            TaskMessage(
                instance=OrchestrationInstance(instance_id="receiver-test", execution_id="e1"),
                event=TaskScheduled(event_id=task_id, name="work", input=str(task_id)),
            )
        )


async def _drain(receiver: ActivityReceiver) -> list[ReceivedMessage]:
    taken: list[ReceivedMessage] = []
    while (message := await receiver.next(timeout=0.5)) is not None:
        taken.append(message)
    return taken


async def test_batch_grows_while_every_prefetched_request_is_claimed(stores: Stores) -> None:
    queue = _queue(stores)
    await _send_requests(queue, 20)
    receiver = _receiver(queue, prefetch=8, hold=timedelta(seconds=30))
    before = stores.clients.counter.snapshot()

    taken = [await receiver.next(timeout=5) for _ in range(20)]

    assert sorted(m.message.event.event_id for m in taken if m and m.message) == list(range(20))
    receives = (stores.clients.counter.snapshot() - before).counts.get(("queue", "GetMessages"), 0)
    # Batches of 1, 2, 4, 8 and 8 (the last one finds 5): 5 requests instead of 20.
    assert receives == 5, f"{receives} receive requests for 20 messages"
    assert receiver.batch_size == 8
    assert receiver.released == 0


async def test_unclaimed_prefetch_is_released_to_a_competing_worker(stores: Stores) -> None:
    queue = _queue(stores)
    await _send_requests(queue, 16)
    busy = _receiver(queue, prefetch=8, hold=timedelta(milliseconds=300))
    claimed = [await busy.next(timeout=5) for _ in range(4)]  # batch grows 1 -> 2 -> 4 -> ...
    assert all(m is not None for m in claimed)
    batch_before = busy.batch_size

    # The busy worker claims nothing more; within `hold` its buffer goes back to the queue.
    idle = _receiver(queue, prefetch=8, hold=timedelta(seconds=30))
    late = await _idle_takes_rest(idle, expected=12)

    assert len(late) == 12
    assert busy.released > 0
    assert busy.batch_size < batch_before
    ids = [m.message.event.event_id for m in [*claimed, *late] if m is not None and m.message]
    assert sorted(ids) == list(range(16))


async def _idle_takes_rest(receiver: ActivityReceiver, *, expected: int) -> list[ReceivedMessage]:
    taken: list[ReceivedMessage] = []
    for _attempt in range(40):
        taken.extend(await _drain(receiver))
        if len(taken) >= expected:
            break
    return taken


async def test_stop_hands_the_buffer_back_at_once(stores: Stores) -> None:
    queue = _queue(stores)
    await _send_requests(queue, 6)
    first = _receiver(queue, prefetch=8, hold=timedelta(minutes=1))
    claimed = [await first.next(timeout=5) for _ in range(3)]  # receives 1, 2, then 3 (batch 4)
    assert all(m is not None for m in claimed)

    await first.stop()

    assert await first.next(timeout=0.1) is None  # a stopped receiver hands out nothing
    second = _receiver(queue, prefetch=8, hold=timedelta(minutes=1))
    rest = await _drain(second)
    ids = [m.message.event.event_id for m in [*claimed, *rest] if m is not None and m.message]
    assert sorted(ids) == list(range(6))
