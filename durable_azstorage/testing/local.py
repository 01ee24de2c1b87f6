"""Settings for examples and quick starts: the configured account, or a private Azurite.

A new user needs nothing but Python and Node.js: with no connection string in the
environment, ``local_settings()`` starts Azurite (on disk, free ports) for the duration of the
``with`` block and stops it by PID afterwards.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from durable_azstorage.azure.settings import ENV_PREFIX, AzureStorageSettings
from durable_azstorage.client.client import TaskHubClient
from durable_azstorage.testing.azurite import Azurite
from durable_azstorage.worker.worker import TaskHubWorker

_ACCOUNT_VARIABLES = (
    ENV_PREFIX + "CONNECTION_STRING",
    ENV_PREFIX + "ACCOUNT_URL",
    "AZURE_STORAGE_CONNECTION_STRING",
)


def storage_configured() -> bool:
    """True when the environment names a storage account (so no Azurite is needed)."""
    return any(os.environ.get(name) for name in _ACCOUNT_VARIABLES)


@contextmanager
def local_settings(task_hub: str = "samples", **overrides: Any) -> Iterator[AzureStorageSettings]:
    """Yield settings for ``task_hub``: from the environment if an account is configured,
    else for an Azurite started here and stopped when the block exits."""
    if storage_configured():
        yield AzureStorageSettings.from_env(task_hub=task_hub, **overrides)
        return
    main_thread = threading.current_thread() is threading.main_thread()
    with Azurite(die_with_parent=main_thread) as azurite:
        yield AzureStorageSettings(
            connection_string=azurite.connection_string, task_hub=task_hub, **overrides
        )


@contextmanager
def local_runtime(
    *,
    task_hub: str,
    orchestrators: Sequence[Callable[..., Any]] = (),
    activities: Sequence[Callable[..., Any]] = (),
    entities: Sequence[Callable[..., Any]] = (),
    **settings_overrides: Any,
) -> Iterator[TaskHubClient]:
    """A client for ``task_hub`` with a worker running the given functions.

    The hub is created if needed (idempotent); the worker is stopped gracefully and the
    Azurite (if one was started) stopped by PID when the block exits. Examples use this so
    that each one shows only its orchestration logic.
    """
    with local_settings(task_hub, **settings_overrides) as settings:
        with TaskHubClient(settings) as client:
            client.create_task_hub()
            with TaskHubWorker(settings) as worker:
                for orchestrator in orchestrators:
                    worker.add_orchestrator(orchestrator)
                for activity in activities:
                    worker.add_activity(activity)
                for entity in entities:
                    worker.add_entity(entity)
                worker.start()
                yield client
