"""The task hub as the dashboard sees it: a client plus the optional capabilities it found.

``Hub.open`` accepts what ``create_app`` does: settings (anything with ``create_backend()``,
e.g. ``AzureStorageSettings``; the backend is then the dashboard's own and stopped with it)
or a ``Backend`` a worker process already uses (left running). Poison quarantine and request
counting are looked up on the backend by shape (``capabilities``); a ``HubMonitor`` may be
given explicitly or be the backend itself.
"""

from __future__ import annotations

from dataclasses import dataclass

from durable_azstorage.backend.protocol import Backend, BackendSettings, NamedHub, SettingsBacked
from durable_azstorage.client.async_client import AsyncTaskHubClient
from durable_azstorage.dashboard.capabilities import (
    CountsRequests,
    HubMonitor,
    PoisonMessage,
    PoisonQuarantine,
)
from durable_azstorage.dashboard.errors import ApiError
from durable_azstorage.dashboard.overview import OverviewSource


@dataclass(slots=True, kw_only=True)
class Hub:
    client: AsyncTaskHubClient
    name: str
    overview: OverviewSource
    quarantine: PoisonQuarantine | None
    monitor: HubMonitor | None

    @classmethod
    def open(
        cls,
        source: BackendSettings | Backend,
        *,
        monitor: HubMonitor | None = None,
        task_hub: str | None = None,
        overview_ttl: float = 5.0,
    ) -> Hub:
        if isinstance(source, Backend):
            client = AsyncTaskHubClient(backend=source)
        else:
            client = AsyncTaskHubClient(source)
        backend = client.backend
        if monitor is None and isinstance(backend, HubMonitor):
            monitor = backend
        quarantine = backend if isinstance(backend, PoisonQuarantine) else None
        requests = backend if isinstance(backend, CountsRequests) else None
        name = task_hub or _hub_name(source) or _hub_name(backend) or "task hub"
        return cls(
            client=client,
            name=name,
            overview=OverviewSource(
                client,
                monitor=monitor,
                quarantine=quarantine,
                requests=requests,
                ttl=overview_ttl,
            ),
            quarantine=quarantine,
            monitor=monitor,
        )

    def require_quarantine(self) -> PoisonQuarantine:
        if self.quarantine is None:
            raise ApiError(404, "this backend keeps no poison messages")
        return self.quarantine

    async def find_poison(self, queue: str, message_id: str) -> PoisonMessage:
        """The quarantined message ``queue/message_id`` (404 if there is none)."""
        for message in await self.require_quarantine().list_poison():
            if message.queue_name == queue and message.message_id == message_id:
                return message
        raise ApiError(404, f"no poison message {queue}/{message_id} in this task hub")


def _hub_name(source: object) -> str | None:
    """``settings.task_hub`` (or ``backend.settings.task_hub``) when there is one."""
    if isinstance(source, SettingsBacked):
        source = source.settings
    return source.task_hub if isinstance(source, NamedHub) else None
