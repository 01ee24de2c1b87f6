"""``create_app``: the dashboard as an aiohttp application, ready to run or to mount.

Errors leave in one place (``_errors``): JSON under ``/api/``, an error page elsewhere,
with the status ``errors.classify`` chose; an unexpected exception is logged with its
traceback and answered 500 without details (they could hold account names or payloads).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

from aiohttp import web
from aiohttp.typedefs import Middleware

from durable_azstorage.backend.protocol import Backend, BackendSettings
from durable_azstorage.dashboard import api, pages
from durable_azstorage.dashboard.capabilities import HubMonitor
from durable_azstorage.dashboard.errors import ApiError, classify
from durable_azstorage.dashboard.hub import Hub
from durable_azstorage.dashboard.keys import HUB, RENDERER, SECURITY
from durable_azstorage.dashboard.rendering import Renderer
from durable_azstorage.dashboard.security import Handler, Security, guard, harden

log = logging.getLogger(__name__)
STATIC = Path(__file__).with_name("static")


def create_app(
    settings_or_backend: BackendSettings | Backend,
    *,
    read_only: bool = False,
    token: str | None = None,
    monitor: HubMonitor | None = None,
    task_hub: str | None = None,
    allowed_hosts: Iterable[str] = (),
    overview_ttl: float = 5.0,
    refresh_seconds: int = 10,
) -> web.Application:
    """The dashboard for one task hub.

    Give settings (the app then owns its backend and stops it on cleanup) or the
    ``Backend`` of a running worker (left alone; its request counts appear on the
    overview). ``monitor`` supplies partition leases and queue backlogs when the backend
    does not. Without ``token`` only loopback ``Host`` names (and ``allowed_hosts``) are
    served; see ``security`` for the rest. Pages with auto-refresh on reload every
    ``refresh_seconds``; the overview is recomputed at most every ``overview_ttl`` seconds.
    """
    if token is not None and not token.strip():
        raise ValueError("token: must not be empty or blank")
    if refresh_seconds < 1:
        raise ValueError(f"refresh_seconds: must be at least 1, got {refresh_seconds}")
    hub = Hub.open(
        settings_or_backend, monitor=monitor, task_hub=task_hub, overview_ttl=overview_ttl
    )
    security = Security(token=token, read_only=read_only, allowed_hosts=frozenset(allowed_hosts))
    renderer = Renderer(
        {
            "hub_name": hub.name,
            "read_only": read_only,
            "csrf_token": security.csrf_token,
            "has_poison": hub.quarantine is not None,
            "refresh_seconds": refresh_seconds,
        }
    )

    def refuse(request: web.Request, error: ApiError) -> web.StreamResponse:
        return _render_error(request, renderer, error)

    app = web.Application(middlewares=[_errors(renderer), guard(security, refuse)])
    app[HUB] = hub
    app[SECURITY] = security
    app[RENDERER] = renderer
    app.add_routes(api.routes)
    app.router.add_route("*", "/api/{tail:.*}", _unknown_api)
    app.add_routes(pages.routes)
    app.router.add_static("/static/", STATIC)
    app.on_response_prepare.append(harden)

    async def close(app: web.Application) -> None:
        await hub.client.close()

    app.on_cleanup.append(close)
    return app


async def _unknown_api(request: web.Request) -> web.Response:
    raise ApiError(404, f"no API endpoint {request.method} {request.path}")


def _render_error(request: web.Request, renderer: Renderer, error: ApiError) -> web.Response:
    if request.path.startswith("/api/"):
        return api.answer(
            {"error": {"status": error.status, "message": error.message}}, status=error.status
        )
    return renderer.page(
        "error.html", status=error.status, page="error", error=error, refresh=False
    )


def _errors(renderer: Renderer) -> Middleware:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except web.HTTPException as exc:
            if exc.status >= 400 and request.path.startswith("/api/"):
                return _render_error(request, renderer, ApiError(exc.status, exc.reason))
            raise
        except Exception as exc:
            error = classify(exc)
            if error is None or error.status >= 500:
                log.exception("dashboard request %s %s failed", request.method, request.path)
                error = error or ApiError(500, "internal error; see the dashboard's log")
            return _render_error(request, renderer, error)

    return middleware
