"""``hub``: a created task hub on the session Azurite (2 partitions, 300 ms max poll),
deleted after the test."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import timedelta

import pytest

from durable_azstorage import TaskHubClient
from durable_azstorage.azure.settings import AzureStorageSettings


@pytest.fixture
def hub(azure_settings: AzureStorageSettings) -> Iterator[AzureStorageSettings]:
    settings = dataclasses.replace(
        azure_settings, partition_count=2, max_poll_interval=timedelta(milliseconds=300)
    )
    with TaskHubClient(settings) as admin:
        admin.create_task_hub()
        try:
            yield settings
        finally:
            admin.delete_task_hub()
