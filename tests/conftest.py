"""Fixtures shared by every test folder: one real Azurite per test session, unique hub names.

* ``azurite`` (session): a running Azurite (``durable_azstorage.testing.azurite``) with
  ``.connection_string``; stopped by PID at the end of the session, also on failure. If it
  cannot start, every test that needs it fails loudly with the reason (never skipped).
  Under pytest-xdist "session" means one worker process: each worker starts its own
  Azurite on its own free ports, so no two workers share a storage account.
* ``hub_name`` (function): a fresh valid task hub name, unique per test.
* ``azure_settings`` (function): ``AzureStorageSettings`` for the session Azurite and that hub.
  Creating (and deleting) the hub is up to the test.
* ``across_workers`` (session): a folder shared by every xdist worker of this run, and
  ``lock(name)``: a file lock so that tests which must not overlap (or a result computed
  once for all workers) wait for each other across worker processes.
* ``spans`` / ``metric_reader`` (function): OpenTelemetry's in-memory exporter and metric
  reader, installed as this process's global providers (``otel_capture``).
"""

from __future__ import annotations

import contextlib
import os
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import otel_capture
import pytest
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from durable_azstorage.azure.settings import AzureStorageSettings
from durable_azstorage.testing.azurite import Azurite, AzuriteError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: one worker (-n 0) needs no lock
    fcntl = None  # type: ignore[assignment]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that needs the session Azurite (directly or through other fixtures).

    ``fixturenames`` is the closure of a test's fixtures, so ``-m "not azurite"`` is a
    storage-free run without a hand-kept marker on each file. Tests that start an Azurite
    of their own (not through this fixture) carry the marker explicitly.
    """
    for item in items:
        if "azurite" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.azurite)


@pytest.fixture(scope="session")
def azurite() -> Iterator[Azurite]:
    emulator = Azurite(die_with_parent=True)
    try:
        emulator.start()
    except AzuriteError as exc:
        where = "in CI" if os.environ.get("CI") else "locally"
        pytest.fail(
            f"Azurite could not start {where} (tests against storage never skip): {exc}\n"
            "Install it with `npm ci --prefix azurite` (Node.js >= 20).",
            pytrace=False,
        )
    try:
        yield emulator
    finally:
        emulator.stop()


@pytest.fixture
def hub_name(request: pytest.FixtureRequest) -> str:
    stem = re.sub(r"[^A-Za-z0-9]", "", request.node.name)[:20]
    return f"t{stem}{uuid.uuid4().hex[:10]}"


@pytest.fixture
def azure_settings(azurite: Azurite, hub_name: str) -> AzureStorageSettings:
    return AzureStorageSettings(connection_string=azurite.connection_string, task_hub=hub_name)


@dataclass(frozen=True)
class AcrossWorkers:
    """What the xdist worker processes of one run share: a folder, and locks in it."""

    path: Path

    @contextlib.contextmanager
    def lock(self, name: str) -> Iterator[None]:
        """Hold the run-wide lock ``name`` (blocks while another worker holds it)."""
        with open(self.path / f"{name}.lock", "w") as handle:
            if fcntl is not None:
                fcntl.flock(handle, fcntl.LOCK_EX)
            yield


@pytest.fixture(scope="session")
def across_workers(tmp_path_factory: pytest.TempPathFactory) -> AcrossWorkers:
    base = tmp_path_factory.getbasetemp()  # under xdist: <run>/popen-gwN, one per worker
    return AcrossWorkers(base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base)


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """OpenTelemetry's in-memory span exporter, installed as the global provider, emptied."""
    otel_capture.install()
    otel_capture.EXPORTER.clear()
    yield otel_capture.EXPORTER
    otel_capture.EXPORTER.clear()


@pytest.fixture
def metric_reader() -> InMemoryMetricReader:
    """OpenTelemetry's in-memory metric reader (cumulative: tests compare before and after)."""
    otel_capture.install()
    return otel_capture.READER
