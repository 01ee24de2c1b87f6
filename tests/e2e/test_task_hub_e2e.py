"""Task hub operations through the client, on the in-memory backend."""

from __future__ import annotations

import pytest

from durable_azstorage import InMemoryBackend, TaskHubClient, TaskHubNotFoundError


def test_info_list_delete_and_recreate_through_the_client() -> None:
    backend = InMemoryBackend()
    with TaskHubClient(backend=backend) as client:
        info = client.get_task_hub_info()
        assert info.partition_count == 1 and info.missing == ()
        assert [h.task_hub for h in client.list_task_hubs()] == [info.task_hub]
        client.delete_task_hub()
        with pytest.raises(TaskHubNotFoundError, match="create it first"):
            client.get_task_hub_info()
        assert client.list_task_hubs() == []
        client.create_task_hub()
        assert client.get_task_hub_info().created_time >= info.created_time
