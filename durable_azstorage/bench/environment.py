"""Where a benchmark runs: the storage account (or an Azurite started for it) and the machine.

Both are recorded with every result, because a number without them is meaningless: Azurite
on a 2-core laptop and a real storage account differ by orders of magnitude (ARCHITECTURE.md
§7). An auto-started Azurite runs on disk (``--location``): its in-memory mode stalls for
minutes in garbage collection after heavy message churn.
"""

from __future__ import annotations

import os
import platform
import sys
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from durable_azstorage.azure.settings import ENV_PREFIX, AzureStorageSettings
from durable_azstorage.testing.azurite import AZURITE_VERSION, Azurite
from durable_azstorage.testing.local import storage_configured


@dataclass(frozen=True)
class StorageTarget:
    """Settings for the account under test plus a non-secret description of it."""

    settings: AzureStorageSettings
    description: dict[str, Any] = field(default_factory=dict)

    def hub(self, scenario: str, **overrides: Any) -> AzureStorageSettings:
        """Settings for a fresh, uniquely named task hub (runs never share state)."""
        name = f"bench{scenario}{uuid.uuid4().hex[:8]}"
        return AzureStorageSettings(
            connection_string=self.settings.connection_string,
            account_url=self.settings.account_url,
            credential=self.settings.credential,
            **{**_tunables(self.settings), "task_hub": name, **overrides},
        )


def _tunables(settings: AzureStorageSettings) -> dict[str, Any]:
    skip = {"connection_string", "account_url", "credential", "task_hub", "worker_id"}
    return {k: getattr(settings, k) for k in settings.__dataclass_fields__ if k not in skip}


@contextmanager
def storage_target(
    connection_string: str | None = None, *, in_memory: bool = False, **overrides: Any
) -> Iterator[StorageTarget]:
    """The given account (option, else ``DURABLE_AZSTORAGE_*`` environment), or an Azurite
    started here on disk (in memory on request) and stopped by PID when the block exits.
    Either way the other ``DURABLE_AZSTORAGE_*`` settings apply; ``overrides`` win."""
    if connection_string or storage_configured():
        extra: dict[str, Any] = {}
        if connection_string:
            extra.update(connection_string=connection_string, account_url=None, credential=None)
        settings = AzureStorageSettings.from_env(**extra, **overrides)
        local = "127.0.0.1" in (settings.connection_string or "") or settings.account_name == (
            "devstoreaccount1"
        )
        yield StorageTarget(
            settings,
            {
                "kind": "emulator (given)" if local else "storage account",
                "account": settings.account_name,
                "azurite_version": "unknown (not started here)" if local else None,
                "mode": "given by connection string / environment",
            },
        )
        return
    main_thread = threading.current_thread() is threading.main_thread()
    with Azurite(in_memory=in_memory, die_with_parent=main_thread) as emulator:
        # the tunables may still come from DURABLE_AZSTORAGE_* (an A/B of one setting)
        settings = AzureStorageSettings.from_env(
            connection_string=emulator.connection_string, **overrides
        )
        yield StorageTarget(
            settings,
            {
                "kind": "azurite (started by the benchmark)",
                "account": settings.account_name,
                "azurite_version": AZURITE_VERSION,
                "mode": f"{emulator.mode}, "
                + ("in memory" if in_memory else "on disk (--location)"),
                "pid": emulator.pid,
            },
        )


def machine_info() -> dict[str, Any]:
    """Cores, Python and OS of this machine (the client, the workers and an Azurite share it)."""
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "implementation": sys.implementation.name,
        "platform": platform.platform(),
        "load_average_at_start": [round(x, 2) for x in load] if load else None,
    }


def settings_info(settings: AzureStorageSettings) -> dict[str, Any]:
    """The tunables of ``settings`` as JSON-friendly values (never the secrets)."""
    out: dict[str, Any] = {"task_hub": settings.task_hub}
    for key, value in _tunables(settings).items():
        out[key] = value.total_seconds() if isinstance(value, timedelta) else value
    return out


def connection_env(settings: AzureStorageSettings) -> dict[str, str]:
    """``DURABLE_AZSTORAGE_*`` variables naming ``settings`` for a child worker process."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
    if settings.connection_string is None:
        raise ValueError("bench scale needs a connection string (worker processes read it)")
    env[ENV_PREFIX + "CONNECTION_STRING"] = settings.connection_string
    for key, value in settings_info(settings).items():
        if key in ("max_timer_delay",):
            continue
        env[ENV_PREFIX + key.upper()] = (
            str(value).lower() if isinstance(value, bool) else str(value)
        )
    return env
