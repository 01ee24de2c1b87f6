"""``RunningSidecar`` and settings for the sidecar tests (a module, so tests can import them;
importing from ``conftest`` breaks when several test folders run together)."""

from __future__ import annotations

import asyncio
import threading
import uuid
from datetime import timedelta
from typing import Any

from durable_azstorage.azure.settings import AzureStorageSettings
from durable_azstorage.sidecar.server import SidecarServer
from durable_azstorage.testing.azurite import Azurite


def sidecar_settings(azurite: Azurite, prefix: str = "sc") -> AzureStorageSettings:
    """Settings for a fresh hub on the session Azurite, polling fast (tests wait less)."""
    return AzureStorageSettings(
        connection_string=azurite.connection_string,
        task_hub=f"{prefix}{uuid.uuid4().hex[:12]}",
        max_poll_interval=timedelta(seconds=1),
    )


class RunningSidecar:
    """A ``SidecarServer`` on its own event loop thread (start/stop block until done)."""

    def __init__(
        self, settings: AzureStorageSettings, *, create_hub: bool = True, **kwargs: Any
    ) -> None:
        self.settings = settings
        self._create_hub = create_hub
        self._kwargs = {"port": 0, **kwargs}
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="sidecar", daemon=True)
        self.server: SidecarServer | None = None

    @property
    def address(self) -> str:
        assert self.server is not None
        return self.server.address

    def run(self, coro: Any, timeout: float = 60) -> Any:
        """Run a coroutine on the sidecar's loop and return its result."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def start(self) -> RunningSidecar:
        self._thread.start()
        self.run(self._start())
        return self

    async def _start(self) -> None:
        backend = self.settings.create_backend()
        if self._create_hub:
            await backend.create_task_hub()
        self.server = SidecarServer(backend, **self._kwargs)
        await self.server.start()

    def stop(self, grace: float = 5.0) -> None:
        """Stop the server (graceful) and its loop thread; a second call does nothing."""
        if self._loop.is_closed() or not self._thread.is_alive():
            return
        try:
            if self.server is not None:
                self.run(self.server.stop(grace=grace), timeout=grace + 60)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
            if not self._thread.is_alive():
                self._loop.close()
