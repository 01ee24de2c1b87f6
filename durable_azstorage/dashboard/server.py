"""Serving the dashboard: the bind rule, and running an app until told to stop.

The bind rule: a dashboard reachable from other machines must have a token. Loopback
addresses (``127.0.0.0/8``, ``::1``, ``localhost``) need none; anything else without a
token is refused before anything starts.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Callable

from aiohttp import web

from durable_azstorage.dashboard.security import is_loopback


class BindRefused(ValueError):
    """A non-loopback address without a token."""


def check_bind(host: str, token: str | None) -> None:
    if token is not None and token.strip():
        return
    if not is_loopback(host):
        raise BindRefused(
            f"refusing to serve the dashboard on {host!r} without a token: anyone who can "
            "reach that address could terminate and purge instances; pass --token (or set "
            "DURABLE_AZSTORAGE_DASHBOARD_TOKEN), or bind to 127.0.0.1"
        )


def url_for(host: str, port: int) -> str:
    try:
        if ipaddress.ip_address(host).version == 6:
            host = f"[{host}]"
    except ValueError:
        pass
    shown = "127.0.0.1" if host in ("0.0.0.0", "[::]") else host
    return f"http://{shown}:{port}/"


async def serve_until(
    app: web.Application,
    host: str,
    port: int,
    stop: asyncio.Event,
    on_ready: Callable[[str], None],
) -> None:
    """Serve ``app`` on ``host:port`` (0: a free port), call ``on_ready(url)``, run until
    ``stop`` is set, then shut down (the app's cleanup runs)."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound = runner.addresses[0][1] if runner.addresses else port
        on_ready(url_for(host, int(bound)))
        await stop.wait()
    finally:
        await runner.cleanup()
