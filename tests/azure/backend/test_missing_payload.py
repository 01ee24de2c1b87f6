"""A queued message whose payload blob is gone is quarantined alone; its neighbours proceed.

The trigger users hit: purging an instance while a large (> 45 KiB, so blob-backed) message
for it is still queued. Before the fix, the missing blob failed the decoding of the whole
receive batch, every time: the healthy messages received with it never became work items
(and collected delivery counts until they were quarantined too).
"""

from __future__ import annotations

import dataclasses
import uuid

import pytest
from builders import MakeBackend, episode, event_message, now, start_message
from fault_proxy import Fault, fault_proxy, proxied_settings

from durable_azstorage.azure.settings import AzureStorageSettings
from durable_azstorage.model import history as h
from durable_azstorage.model.messages import TaskMessage
from durable_azstorage.model.status import OrchestrationStatus

pytestmark = pytest.mark.azurite

LARGE = '"' + "x" * 50_000 + '"'  # above the 45 KiB queue limit: the queue carries a blob name


@pytest.fixture
def one_partition(fast_settings: AzureStorageSettings) -> AzureStorageSettings:
    # One control queue, so the large message and its neighbour share a receive batch.
    return dataclasses.replace(fast_settings, partition_count=1)


def activity_request(instance_id: str, input: str) -> TaskMessage:
    me = h.OrchestrationInstance(instance_id=instance_id, execution_id=uuid.uuid4().hex)
    scheduled = h.TaskScheduled(event_id=0, name="work", input=input, timestamp=now())
    return TaskMessage(instance=me, event=scheduled, sender=me)


async def test_a_purged_instances_large_event_does_not_wedge_the_control_queue(
    make_backend: MakeBackend, one_partition: AzureStorageSettings
) -> None:
    backend = await make_backend(settings=one_partition)
    assert await backend.create_instance(start_message("purged"))
    item = await backend.lock_next_orchestration(10)
    assert item is not None
    await backend.complete_orchestration(item, episode(item, status=OrchestrationStatus.COMPLETED))
    await backend.stop()  # receive nothing while the queue is set up

    await backend.send_message(event_message("purged", "Late", data=LARGE))
    assert await backend.purge_instance("purged")  # deletes the event's payload blob too
    assert await backend.create_instance(start_message("neighbour"))

    await backend.start()
    item = await backend.lock_next_orchestration(10)

    assert item is not None and item.instance_id == "neighbour"
    assert item.dequeue_count == 1
    records = await backend.poison.list()
    assert len(records) == 1
    assert "PayloadNotFoundError" in records[0].reason
    assert "purged/message-" in records[0].reason  # names the missing blob
    assert records[0].instance_id == "purged"  # from the blob's folder: `poison list` shows it
    assert records[0].queue_name == backend.names.control_queues[0]
    await backend.complete_orchestration(item, episode(item))
    assert await backend.lock_next_orchestration(2) is None, "the quarantined copy came back"


async def test_a_missing_blob_does_not_wedge_the_work_item_queue(make_backend: MakeBackend) -> None:
    backend = await make_backend(start=False)
    await backend.send_message(activity_request("gone", LARGE))
    await backend.send_message(activity_request("healthy", '"small"'))
    await backend.purge_instance("gone")  # only the request's payload blob existed
    await backend.start()

    item = await backend.lock_next_activity(10)

    assert item is not None and item.instance.instance_id == "healthy"
    records = await backend.poison.list()
    assert [r.queue_name for r in records] == [backend.names.work_item_queue]
    assert "PayloadNotFoundError" in records[0].reason and "gone/message-" in records[0].reason
    assert records[0].instance_id == "gone"


async def test_a_payload_unreadable_for_now_is_left_for_later_not_quarantined(
    make_backend: MakeBackend, fast_settings: AzureStorageSettings
) -> None:
    def payload_read(request: object) -> bool:
        return getattr(request, "method", "") == "GET" and "/message-" in getattr(
            request, "path", ""
        )

    async with fault_proxy(fast_settings.connection_string or "") as proxy:
        settings = proxied_settings(fast_settings, proxy, retry_attempts=1)
        backend = await make_backend(start=False, settings=settings)
        await backend.send_message(activity_request("later", LARGE))
        await backend.send_message(activity_request("now", '"small"'))
        proxy.add(Fault(match=payload_read, status=503, times=1))
        await backend.start()

        first = await backend.lock_next_activity(10)
        assert first is not None and first.instance.instance_id == "now"
        again = await backend.lock_next_activity(10)  # after its visibility timeout (3 s)

        assert again is not None and again.instance.instance_id == "later"
        assert again.input == LARGE and again.dequeue_count == 2
        assert await backend.poison.list() == []
        await backend.stop()
