"""A fetch whose caller is cancelled (a worker stopping) gives its messages back at once.

The worker's dispatchers cancel a pending ``lock_next_*`` when they stop. Cancelled in the
middle of a receive, or while a work item was being prepared, the messages the service had
already hidden stayed invisible for the whole visibility timeout (measured before the fix:
a worker SIGTERMed under load stranded 1-2 of 40 orchestrations in 4 of 5 runs). Now the
fetch finishes and what it locked is abandoned, so another worker gets it within seconds.
The visibility timeouts here are 60 s: only a give-back makes the messages visible in time.
"""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import timedelta

import pytest
from builders import MakeBackend, start_message

from durable_azstorage.azure.messaging.queues import MessageQueue, ReceivedMessage
from durable_azstorage.azure.partitioning.ownership import OwnAllPartitions
from durable_azstorage.azure.settings import AzureStorageSettings
from durable_azstorage.model import history as h
from durable_azstorage.model.messages import TaskMessage
from durable_azstorage.testing.eventually import eventually_async

VISIBILITY = timedelta(seconds=60)
WITHIN = 10.0  # seconds another backend may need to see the message again


@pytest.fixture
def slow_visibility(fast_settings: AzureStorageSettings) -> AzureStorageSettings:
    return dataclasses.replace(
        fast_settings,
        control_queue_visibility_timeout=VISIBILITY,
        work_item_visibility_timeout=VISIBILITY,
    )


def answer_late(queue: MessageQueue) -> asyncio.Event:
    """Make ``queue``'s receives answer 0.3 s after the service hid the messages; the event
    is set when a receive got some (the moment a cancellation used to strand them)."""
    received_some = asyncio.Event()
    receive = queue.receive

    async def late(max_messages: int, visibility_timeout: timedelta) -> list[ReceivedMessage]:
        got = await receive(max_messages, visibility_timeout)
        if got:
            received_some.set()
            await asyncio.sleep(0.3)
        return got

    queue.receive = late  # type: ignore[method-assign]
    return received_some


async def test_cancelled_activity_fetch_gives_the_request_back(
    make_backend: MakeBackend, slow_visibility: AzureStorageSettings
) -> None:
    owner = OwnAllPartitions(slow_visibility.partition_count)
    backend = await make_backend(settings=slow_visibility, ownership=owner)
    peer = await make_backend(settings=slow_visibility, ownership=owner)
    target = h.OrchestrationInstance(instance_id="cancelled-fetch", execution_id="e1")
    await backend.send_message(
        TaskMessage(instance=target, event=h.TaskScheduled(event_id=0, name="work", input="1"))
    )
    received_some = answer_late(await backend.queue(slow_visibility.names.work_item_queue))

    fetch = asyncio.ensure_future(backend.lock_next_activity(timeout=WITHIN))
    await asyncio.wait_for(received_some.wait(), WITHIN)
    fetch.cancel()  # while the answer is on its way
    with pytest.raises(asyncio.CancelledError):
        await fetch

    item = await peer.lock_next_activity(timeout=WITHIN)
    assert item is not None, "the request stayed hidden: the cancelled fetch kept it"
    assert (item.instance.instance_id, item.task_id, item.name) == ("cancelled-fetch", 0, "work")
    await peer.complete_activity(
        item,
        TaskMessage(instance=target, event=h.TaskCompleted(task_scheduled_id=0, result='"ok"')),
    )


async def test_cancelled_orchestration_fetch_gives_the_messages_back(
    make_backend: MakeBackend, slow_visibility: AzureStorageSettings
) -> None:
    owner = OwnAllPartitions(slow_visibility.partition_count)
    backend = await make_backend(settings=slow_visibility, ownership=owner)
    peer = await make_backend(settings=slow_visibility, ownership=owner)
    assert await backend.create_instance(start_message("cancelled-prepare"))
    queue = await backend.queue(slow_visibility.names.control_queue_for("cancelled-prepare"))
    received_some = answer_late(queue)

    fetch = asyncio.ensure_future(backend.lock_next_orchestration(timeout=WITHIN))
    await asyncio.wait_for(received_some.wait(), WITHIN)
    # The receive answers, the batch is buffered, the fetch takes it and starts preparing
    # the work item (loading the history): cancel right then.
    # Checked at every turn of the loop (interval 0): the window is a few turns wide.
    await eventually_async(
        lambda: backend.buffered_messages,
        timeout=WITHIN,
        interval=0,
        what="the message to be buffered",
    )
    await eventually_async(
        lambda: backend.buffered_messages,
        until=lambda n: n == 0,
        timeout=WITHIN,
        interval=0,
        what="the fetch to take the buffered message",
    )
    fetch.cancel()  # while the history is being loaded
    with pytest.raises(asyncio.CancelledError):
        await fetch

    item = await peer.lock_next_orchestration(timeout=WITHIN)
    assert item is not None, "the start message stayed hidden: the cancelled fetch kept it"
    assert item.instance_id == "cancelled-prepare"
    assert [type(m.event) for m in item.messages] == [h.ExecutionStarted]
    await peer.abandon_orchestration(item)
