"""The JSON API under ``/api/`` (documented in the README's dashboard section).

Handlers parse, call the client or a capability, and answer documents (``documents``);
errors are raised as ``ApiError`` (or library errors) and turned into JSON by ``app``.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

from aiohttp import web

from durable_azstorage.dashboard import documents
from durable_azstorage.dashboard.actions import bulk_purge, run_action
from durable_azstorage.dashboard.errors import ApiError, bad_request
from durable_azstorage.dashboard.filters import parse_filter
from durable_azstorage.dashboard.keys import HUB
from durable_azstorage.dashboard.listing import list_instances
from durable_azstorage.model.errors import OrchestrationNotFoundError

routes = web.RouteTableDef()
ID = "{instance_id:[^/]+}"
POISON = "{queue:[^/]+}/{message_id:[^/]+}"


def answer(doc: Any, status: int = 200) -> web.Response:
    return web.json_response(doc, status=status, dumps=lambda v: json.dumps(v, ensure_ascii=False))


async def json_body(request: web.Request) -> dict[str, Any]:
    """The POST body as an object (an empty body is ``{}``); 400 if it is not."""
    text = await request.text()
    if not text.strip():
        return {}
    try:
        body = json.loads(text)
    except ValueError as exc:
        raise bad_request(f"the body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise bad_request(f"the body must be a JSON object, got {type(body).__name__}")
    return body


@routes.get("/api/overview")
async def overview(request: web.Request) -> web.Response:
    return answer((await request.app[HUB].overview.get()).document())


@routes.get("/api/instances")
async def instances(request: web.Request) -> web.Response:
    page = await list_instances(request.app[HUB].client, parse_filter(request.query))
    return answer(
        {
            "items": [documents.instance(s, payloads=False) for s in page.items],
            "continuation_token": page.continuation_token,
        }
    )


@routes.get(f"/api/instances/{ID}")
async def instance(request: web.Request) -> web.Response:
    instance_id = request.match_info["instance_id"]
    state = await request.app[HUB].client.get_orchestration_state(instance_id)
    if state is None:
        raise OrchestrationNotFoundError(instance_id)
    return answer(documents.instance(state, payloads=True))


@routes.get(f"/api/instances/{ID}/history")
async def history(request: web.Request) -> web.Response:
    events = await request.app[HUB].client.get_orchestration_history(
        request.match_info["instance_id"]
    )
    return answer({"items": [documents.event(i, e) for i, e in enumerate(events)]})


@routes.post(f"/api/instances/{ID}/{{action}}")
async def action(request: web.Request) -> web.Response:
    result = await run_action(
        request.app[HUB].client,
        request.match_info["instance_id"],
        request.match_info["action"],
        await json_body(request),
    )
    return answer(result)


@routes.post("/api/purge")
async def purge(request: web.Request) -> web.Response:
    return answer(await bulk_purge(request.app[HUB].client, await json_body(request)))


@routes.get("/api/partitions")
async def partitions(request: web.Request) -> web.Response:
    monitor = request.app[HUB].monitor
    if monitor is None:
        raise ApiError(404, "this backend reports no partitions")
    leases = await monitor.describe_partitions()
    return answer(
        {
            "items": [documents.partition(p) for p in leases],
            "work_item_backlog": await monitor.work_item_backlog(),
            "as_of": datetime.now(timezone.utc).isoformat(),
        }
    )


@routes.get("/api/poison")
async def poison_list(request: web.Request) -> web.Response:
    messages = await request.app[HUB].require_quarantine().list_poison()
    return answer({"items": [documents.poison(m, body=False) for m in messages]})


@routes.get(f"/api/poison/{POISON}")
async def poison_show(request: web.Request) -> web.Response:
    hub = request.app[HUB]
    message = await hub.find_poison(request.match_info["queue"], request.match_info["message_id"])
    return answer(documents.poison(message, body=True))


@routes.post(f"/api/poison/{POISON}/{{action}}")
async def poison_action(request: web.Request) -> web.Response:
    hub = request.app[HUB]
    verb = request.match_info["action"]
    if verb not in ("replay", "delete"):
        raise ApiError(404, f"unknown poison action {verb!r}; expected replay or delete")
    message = await hub.find_poison(request.match_info["queue"], request.match_info["message_id"])
    quarantine = hub.require_quarantine()
    done = await (quarantine.replay_poison if verb == "replay" else quarantine.delete_poison)(
        message.key
    )
    if not done:
        raise ApiError(404, f"poison message {documents.poison_key(message)} is gone")
    return answer({"key": documents.poison_key(message), "action": verb, "ok": True})
