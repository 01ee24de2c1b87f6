"""A tiny fault-injecting HTTP proxy to put in front of Azurite (test support, not a mock).

The SDK talks to the proxy as if it were Azurite (``proxied_connection_string``); the proxy
forwards every request unchanged — SharedKey signatures do not cover host or port — except
those a ``Fault`` rule claims: those get a canned status (503, ...) or a dropped connection,
and never reach Azurite, or (``after_upstream``) reach Azurite and lose its answer. ``seen``
records (method, path_qs, status-or-"dropped") for every request the proxy received; a lost
answer is recorded with the status Azurite gave it.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from durable_azstorage.azure.settings import AzureStorageSettings

_HOP = {"host", "content-length", "transfer-encoding", "connection", "keep-alive"}


@dataclass
class Fault:
    """Answer the next ``times`` requests matching ``match`` with ``status`` (None: drop).

    ``after_upstream``: forward the request first, then drop the connection instead of
    answering (the service applied it; the client never learns).
    """

    match: Callable[[web.Request], bool]
    status: int | None = 503
    times: int = 1
    after_upstream: bool = False


@dataclass
class FaultProxy:
    upstream: dict[str, int]  # service -> Azurite port
    ports: dict[str, int] = field(default_factory=dict)
    faults: list[Fault] = field(default_factory=list)
    seen: list[tuple[str, str, int | str]] = field(default_factory=list)

    def add(self, fault: Fault) -> None:
        self.faults.append(fault)

    def forwarded(self) -> list[tuple[str, str, int | str]]:
        return [s for s in self.seen if s[2] != "dropped"]


def upstream_ports(connection_string: str) -> dict[str, int]:
    return {
        svc.lower(): int(port)
        for svc, port in re.findall(
            r"(Blob|Queue|Table)Endpoint=http://127\.0\.0\.1:(\d+)/", connection_string
        )
    }


def proxied_settings(
    settings: AzureStorageSettings, proxy: FaultProxy, **changes: Any
) -> AzureStorageSettings:
    """``settings`` talking to Azurite through ``proxy`` (and with ``changes``)."""
    return dataclasses.replace(
        settings,
        connection_string=proxied_connection_string(settings.connection_string or "", proxy),
        **changes,
    )


def proxied_connection_string(connection_string: str, proxy: FaultProxy) -> str:
    result = connection_string
    for svc, port in proxy.upstream.items():
        result = result.replace(f"127.0.0.1:{port}/", f"127.0.0.1:{proxy.ports[svc]}/")
    return result


@asynccontextmanager
async def fault_proxy(connection_string: str) -> AsyncIterator[FaultProxy]:
    proxy = FaultProxy(upstream=upstream_ports(connection_string))
    session = aiohttp.ClientSession(auto_decompress=False)
    runners: list[web.AppRunner] = []

    def handler_for(port: int) -> Callable[[web.Request], object]:
        async def handle(request: web.Request) -> web.StreamResponse:
            lose_answer = False
            for fault in proxy.faults:
                if fault.times > 0 and fault.match(request):
                    fault.times -= 1
                    if fault.after_upstream:
                        lose_answer = True
                        break
                    if fault.status is None:
                        proxy.seen.append((request.method, request.path_qs, "dropped"))
                        assert request.transport is not None
                        request.transport.close()
                        return web.Response(status=599)  # never delivered: socket is closed
                    await request.read()
                    proxy.seen.append((request.method, request.path_qs, fault.status))
                    return web.Response(status=fault.status, text="injected fault")
            body = await request.read()
            headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP}
            async with session.request(
                request.method,
                f"http://127.0.0.1:{port}{request.path_qs}",
                headers=headers,
                data=body,
                skip_auto_headers={"Content-Type", "User-Agent", "Accept-Encoding", "Accept"},
                allow_redirects=False,
            ) as upstream:
                payload = await upstream.read()
                out = {k: v for k, v in upstream.headers.items() if k.lower() not in _HOP}
                proxy.seen.append((request.method, request.path_qs, upstream.status))
                if lose_answer:
                    assert request.transport is not None
                    request.transport.close()
                    return web.Response(status=599)  # never delivered: socket is closed
                return web.Response(status=upstream.status, headers=out, body=payload)

        return handle

    try:
        for svc, port in proxy.upstream.items():
            app = web.Application()
            app.router.add_route("*", "/{tail:.*}", handler_for(port))
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            runners.append(runner)
            sockets = site._server.sockets  # type: ignore[union-attr]
            proxy.ports[svc] = sockets[0].getsockname()[1]
        yield proxy
    finally:
        for runner in runners:
            await runner.cleanup()
        await session.close()
