"""Fixtures for the gRPC sidecar: the real ``SidecarServer`` on the session Azurite.

The portable SDK's ``TaskHubGrpcClient`` is synchronous, so the server runs on its own event
loop in a background thread (``RunningSidecar``) and the tests are plain functions.

* ``sidecar`` (module): a started sidecar on a fresh task hub (created), on a free port;
  stopped in a finalizer, also when a test fails. ``sidecar.address`` is the SDK's
  ``host_address``; ``sidecar.server`` the ``SidecarServer``; ``sidecar.settings`` its settings.
* ``sidecar_address`` (module): just the address.
* ``sdk_client`` (module): a ``durabletask.client.TaskHubGrpcClient`` connected to it.
* ``new_sidecar`` (function): a factory for further sidecars (e.g. a fresh hub per test),
  each stopped in a finalizer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from durabletask.client import TaskHubGrpcClient
from sidecar_support import RunningSidecar, sidecar_settings

from durable_azstorage.azure.settings import AzureStorageSettings
from durable_azstorage.testing.azurite import Azurite


@pytest.fixture(scope="module")
def sidecar(azurite: Azurite) -> Iterator[RunningSidecar]:
    running = RunningSidecar(sidecar_settings(azurite))
    try:
        running.start()
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def sidecar_address(sidecar: RunningSidecar) -> str:
    return sidecar.address


@pytest.fixture(scope="module")
def sdk_client(sidecar_address: str) -> Iterator[TaskHubGrpcClient]:
    client = TaskHubGrpcClient(host_address=sidecar_address)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def new_sidecar(azurite: Azurite) -> Iterator[Callable[..., RunningSidecar]]:
    started: list[RunningSidecar] = []

    def make(settings: AzureStorageSettings | None = None, **kwargs: Any) -> RunningSidecar:
        running = RunningSidecar(settings or sidecar_settings(azurite), **kwargs)
        started.append(running)
        return running.start()

    try:
        yield make
    finally:
        for running in reversed(started):
            running.stop()
