"""Task hub lifecycle: creation and deletion are idempotent; a missing hub is reported."""

from __future__ import annotations

import pytest

from durable_azstorage.model.errors import TaskHubNotFoundError

from .builders import start_message
from .harness import BackendHarness


class TaskHubConformance:
    """Task hub lifecycle: creation and deletion are idempotent; a missing hub is reported."""

    async def test_create_task_hub_is_idempotent(self, harness: BackendHarness) -> None:
        await harness.backend.create_instance(start_message("hub-1"))

        await harness.backend.create_task_hub()

        assert await harness.backend.get_instance("hub-1") is not None, "re-creating keeps data"

    async def test_start_on_a_deleted_hub_names_the_problem(self, harness: BackendHarness) -> None:
        await harness.backend.stop()
        await harness.backend.delete_task_hub()
        await harness.backend.delete_task_hub()  # a missing hub is not an error

        with pytest.raises(TaskHubNotFoundError, match="does not exist"):
            await harness.backend.start()

        await harness.backend.create_task_hub()
        await harness.backend.start()
        assert await harness.backend.get_instance("hub-1") is None
        assert await harness.no_orchestration()
