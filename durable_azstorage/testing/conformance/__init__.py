"""The backend conformance suite, for any implementation of the ``Backend`` protocol.

The contract in ``durable_azstorage.backend.protocol`` (at-least-once delivery, one work
item per instance, ETag-guarded commits, lock expiry, checkpoint order ...) as pytest tests.
Both of this package's backends run it; so can yours: subclass ``BackendConformance`` in a
class whose name starts with ``Test`` and give it one fixture, ``harness``, that yields a
``BackendHarness`` on a fresh, empty task hub::

    import pytest
    from durable_azstorage.testing.conformance import BackendConformance, BackendHarness

    class TestMyBackend(BackendConformance):
        @pytest.fixture
        async def harness(self):
            backend, peer = MyBackend(...), MyBackend(...)  # peer: a competing worker
            await backend.create_task_hub()
            await backend.start(); await peer.start()
            try:
                yield BackendHarness(name="mine", backend=backend, peer=peer, ...)
            finally:
                await peer.stop(); await backend.stop(); await backend.delete_task_hub()

The tests are ``async def``: run them with pytest-asyncio (``asyncio_mode = "auto"``).
A backend with the ``checkpoint_hook`` seam (``backend.protocol.CheckpointHooks``) also
subclasses ``CrashRecoveryConformance``: a crash between any two checkpoint steps loses
nothing and applies nothing twice. A backend that keeps earlier executions' histories
(``backend.protocol.ExecutionArchive``) also subclasses ``ExecutionArchiveConformance``.
"""

from __future__ import annotations

import pytest

# Plain ``assert`` in the suite reports values when it fails, as in a project's own tests.
pytest.register_assert_rewrite(
    "durable_azstorage.testing.conformance.activities",
    "durable_azstorage.testing.conformance.checkpoint",
    "durable_azstorage.testing.conformance.crash_recovery",
    "durable_azstorage.testing.conformance.executions",
    "durable_azstorage.testing.conformance.harness",
    "durable_azstorage.testing.conformance.identifiers",
    "durable_azstorage.testing.conformance.instances",
    "durable_azstorage.testing.conformance.orchestration_items",
    "durable_azstorage.testing.conformance.task_hub",
)

# E402 below: the suites are imported only after pytest was told to rewrite their asserts.

from durable_azstorage.testing.conformance.activities import ActivityConformance  # noqa: E402
from durable_azstorage.testing.conformance.checkpoint import CheckpointConformance  # noqa: E402
from durable_azstorage.testing.conformance.crash_recovery import CrashRecoveryConformance  # noqa: E402
from durable_azstorage.testing.conformance.executions import ExecutionArchiveConformance  # noqa: E402
from durable_azstorage.testing.conformance.harness import BackendHarness  # noqa: E402
from durable_azstorage.testing.conformance.identifiers import IdentifierConformance  # noqa: E402
from durable_azstorage.testing.conformance.instances import InstanceConformance  # noqa: E402
from durable_azstorage.testing.conformance.orchestration_items import (  # noqa: E402
    OrchestrationItemConformance,
)
from durable_azstorage.testing.conformance.task_hub import TaskHubConformance  # noqa: E402


class BackendConformance(
    TaskHubConformance,
    InstanceConformance,
    IdentifierConformance,
    OrchestrationItemConformance,
    ActivityConformance,
    CheckpointConformance,
):
    """Every test of the ``Backend`` contract; needs a ``harness`` fixture."""


__all__ = [
    "ActivityConformance",
    "BackendConformance",
    "BackendHarness",
    "CheckpointConformance",
    "CrashRecoveryConformance",
    "ExecutionArchiveConformance",
    "IdentifierConformance",
    "InstanceConformance",
    "OrchestrationItemConformance",
    "TaskHubConformance",
]
