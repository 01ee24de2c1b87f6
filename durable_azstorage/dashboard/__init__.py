"""The web dashboard of a task hub: ``create_app(settings_or_backend)`` → an aiohttp app.

``durable-azstorage dashboard`` serves it; a worker process can mount or run it next to its
worker (``aiohttp.web.run_app(create_app(worker_backend))``). Needs the ``dashboard``
extra (Jinja2); importing this package without it works, calling ``create_app`` raises an
``ImportError`` naming the extra.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from durable_azstorage.dashboard.app import create_app

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from durable_azstorage.dashboard.app import create_app

        return create_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
