"""Task hub operations through the client on Azurite: create, info, list, delete."""

from __future__ import annotations

import pytest

from durable_azstorage import AsyncTaskHubClient, AzureStorageSettings, TaskHubNotFoundError

pytestmark = pytest.mark.azurite


async def test_create_info_list_delete(azure_settings: AzureStorageSettings) -> None:
    settings = azure_settings
    async with AsyncTaskHubClient(settings) as client:
        with pytest.raises(TaskHubNotFoundError):
            await client.get_task_hub_info()
        await client.create_task_hub()
        info = await client.get_task_hub_info()
        assert info.task_hub == settings.task_hub
        assert info.partition_count == settings.partition_count
        assert info.missing == ()
        assert f"{settings.task_hub}-control-00".lower() in info.resources
        assert settings.task_hub in [h.task_hub for h in await client.list_task_hubs()]
        await client.delete_task_hub()
        assert settings.task_hub not in [h.task_hub for h in await client.list_task_hubs()]
