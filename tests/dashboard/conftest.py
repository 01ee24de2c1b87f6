"""Fixtures of the dashboard tests (helpers in ``dashboard_support``).

* ``memory_backend`` (function): a started ``InMemoryBackend`` with its hub created, for the
  API tests that need no storage.
* ``azure_hub`` (function): the test's hub created in the session Azurite, with a
  ``TaskHubWorker`` running the test orchestrations; yields a ``TaskHubClient``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from dashboard_support import ACTIVITIES, ORCHESTRATORS

from durable_azstorage import TaskHubClient, TaskHubWorker
from durable_azstorage.azure.settings import AzureStorageSettings
from durable_azstorage.backend.memory import InMemoryBackend


@pytest.fixture
async def memory_backend() -> AsyncIterator[InMemoryBackend]:
    backend = InMemoryBackend()
    await backend.create_task_hub()
    try:
        yield backend
    finally:
        await backend.stop()


@pytest.fixture
def azure_hub(azure_settings: AzureStorageSettings) -> Iterator[TaskHubClient]:
    with TaskHubClient(azure_settings) as client:
        client.create_task_hub()
        worker = TaskHubWorker(azure_settings)
        for orchestrator in ORCHESTRATORS:
            worker.add_orchestrator(orchestrator)
        for activity in ACTIVITIES:
            worker.add_activity(activity)
        worker.start()
        try:
            yield client
        finally:
            worker.stop()
            client.delete_task_hub()
