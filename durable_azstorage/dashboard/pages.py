"""The server-rendered pages: overview, instances, instance detail, poison, login.

Pages read through the same functions as the API and render the same documents; templates
escape everything (autoescape), and scripts come only from ``/static/``.
"""

from __future__ import annotations

from datetime import datetime, timezone

from aiohttp import web

from durable_azstorage.dashboard import documents
from durable_azstorage.dashboard.actions import actions_for
from durable_azstorage.dashboard.filters import parse_filter
from durable_azstorage.dashboard.keys import HUB, RENDERER, SECURITY
from durable_azstorage.dashboard.listing import list_instances
from durable_azstorage.dashboard.security import safe_next
from durable_azstorage.dashboard.timeline import build_timeline
from durable_azstorage.model.errors import OrchestrationNotFoundError
from durable_azstorage.model.history import SubOrchestrationInstanceCreated
from durable_azstorage.model.status import OrchestrationStatus

routes = web.RouteTableDef()


@routes.get("/")
async def overview(request: web.Request) -> web.Response:
    data = await request.app[HUB].overview.get()
    peak = max([1] + [max(m["created"], m["completed"]) for m in data.per_minute])
    return request.app[RENDERER].page(
        "overview.html", page="overview", overview=data, peak=peak, refresh=True
    )


@routes.get("/instances")
async def instances(request: web.Request) -> web.Response:
    wanted = parse_filter(request.query)
    page = await list_instances(request.app[HUB].client, wanted)
    next_link = None
    if page.continuation_token:
        next_link = "/instances?" + wanted.query_string(continuation_token=page.continuation_token)
    return request.app[RENDERER].page(
        "instances.html",
        page="instances",
        wanted=wanted,
        items=[documents.instance(s, payloads=False) for s in page.items],
        next_link=next_link,
        first_link="/instances?" + wanted.query_string() if wanted.continuation_token else None,
        statuses=[s.value for s in OrchestrationStatus],
        chosen={s.value for s in wanted.statuses},
        api_query=wanted.query_string(continuation_token=wanted.continuation_token),
        refresh=True,
    )


@routes.get("/instances/{instance_id:[^/]+}")
async def instance(request: web.Request) -> web.Response:
    instance_id = request.match_info["instance_id"]
    client = request.app[HUB].client
    state = await client.get_orchestration_state(instance_id)
    if state is None:
        raise OrchestrationNotFoundError(instance_id)
    history = await client.get_orchestration_history(instance_id)
    now = datetime.now(timezone.utc)
    children = list(
        dict.fromkeys(
            e.instance_id for e in history if isinstance(e, SubOrchestrationInstanceCreated)
        )
    )
    return request.app[RENDERER].page(
        "instance.html",
        page="instances",
        state=documents.instance(state, payloads=True),
        events=[documents.event(i, e) for i, e in enumerate(history)],
        timeline=build_timeline(history, running=not state.is_terminal, now=now),
        children=children,
        actions=actions_for(state.runtime_status),
        refresh=not state.is_terminal,
    )


@routes.get("/poison")
async def poison_list(request: web.Request) -> web.Response:
    messages = await request.app[HUB].require_quarantine().list_poison()
    return request.app[RENDERER].page(
        "poison.html",
        page="poison",
        items=[documents.poison(m, body=False) for m in messages],
        refresh=True,
    )


@routes.get("/poison/{queue:[^/]+}/{message_id:[^/]+}")
async def poison_show(request: web.Request) -> web.Response:
    message = await request.app[HUB].find_poison(
        request.match_info["queue"], request.match_info["message_id"]
    )
    return request.app[RENDERER].page(
        "poison_message.html",
        page="poison",
        message=documents.poison(message, body=True),
        refresh=False,
    )


@routes.get("/login")
async def login_form(request: web.Request) -> web.Response:
    return request.app[RENDERER].page(
        "login.html",
        page="login",
        next=safe_next(request.query.get("next", "/")),
        failed=False,
        refresh=False,
    )


@routes.post("/login")
async def login(request: web.Request) -> web.Response:
    security = request.app[SECURITY]
    form = await request.post()
    target = safe_next(str(form.get("next", "/")))
    if not security.token_matches(str(form.get("token", ""))):
        return request.app[RENDERER].page(
            "login.html", status=401, page="login", next=target, failed=True, refresh=False
        )
    redirect = web.HTTPSeeOther(target)
    security.login_cookie(redirect, secure=request.secure)
    raise redirect
