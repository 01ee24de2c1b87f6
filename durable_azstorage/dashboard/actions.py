"""Instance actions (``POST /api/instances/{id}/{action}``) and bulk purge, checked first.

Each action reads its options from the JSON body and refuses wrong types with a 400 naming
the field, before anything is sent. Bodies: ``terminate {"output": any, "recursive": bool}``,
``suspend``/``resume``/``rewind`` ``{"reason": str}``, ``raise-event {"name": str, "data":
any}``, ``restart {"new_instance_id": bool}``, ``purge {"recursive": bool}``.
Bulk purge (``POST /api/purge``) takes ``{"status": [...], "created_from", "created_to"}``
and works for at most ``PURGE_SLICE`` seconds per request; the answer says whether it is
complete, and the page calls again until it is, showing the running count.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from durable_azstorage.client.async_client import AsyncTaskHubClient
from durable_azstorage.dashboard.errors import ApiError, bad_request
from durable_azstorage.dashboard.filters import parse_statuses, parse_time
from durable_azstorage.model.status import OrchestrationStatus

PURGE_SLICE = 10.0  # seconds of purging per bulk-purge request

Body = Mapping[str, Any]
Action = Callable[[AsyncTaskHubClient, str, Body], Awaitable[dict[str, Any]]]


def _text(body: Body, key: str, *, required: bool = False) -> str | None:
    value = body.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or (required and not value.strip()):
        raise bad_request(
            f"{key}: expected a non-empty string"
            if required
            else f"{key}: expected a string, got {type(value).__name__}"
        )
    return value


def _flag(body: Body, key: str, default: bool) -> bool:
    value = body.get(key, default)
    if not isinstance(value, bool):
        raise bad_request(f"{key}: expected true or false, got {value!r}")
    return value


async def _terminate(client: AsyncTaskHubClient, iid: str, body: Body) -> dict[str, Any]:
    await client.terminate_orchestration(
        iid, output=body.get("output"), recursive=_flag(body, "recursive", True)
    )
    return {}


async def _suspend(client: AsyncTaskHubClient, iid: str, body: Body) -> dict[str, Any]:
    await client.suspend_orchestration(iid, reason=_text(body, "reason"))
    return {}


async def _resume(client: AsyncTaskHubClient, iid: str, body: Body) -> dict[str, Any]:
    await client.resume_orchestration(iid, reason=_text(body, "reason"))
    return {}


async def _rewind(client: AsyncTaskHubClient, iid: str, body: Body) -> dict[str, Any]:
    await client.rewind_orchestration(iid, reason=_text(body, "reason"))
    return {}


async def _raise_event(client: AsyncTaskHubClient, iid: str, body: Body) -> dict[str, Any]:
    name = _text(body, "name", required=True)
    assert name is not None
    await client.raise_orchestration_event(iid, name, data=body.get("data"))
    return {"event_name": name}


async def _restart(client: AsyncTaskHubClient, iid: str, body: Body) -> dict[str, Any]:
    new_id = await client.restart_orchestration(
        iid, restart_with_new_instance_id=_flag(body, "new_instance_id", False)
    )
    return {"new_instance_id": new_id}


async def _purge(client: AsyncTaskHubClient, iid: str, body: Body) -> dict[str, Any]:
    if await client.get_orchestration_state(iid, fetch_payloads=False) is None:
        raise ApiError(404, f"orchestration instance {iid!r} was not found")
    result = await client.purge_orchestration(iid, recursive=_flag(body, "recursive", True))
    return {"deleted_instance_count": result.deleted_instance_count}


ACTIONS: dict[str, Action] = {
    "terminate": _terminate,
    "suspend": _suspend,
    "resume": _resume,
    "raise-event": _raise_event,
    "restart": _restart,
    "rewind": _rewind,
    "purge": _purge,
}


def actions_for(status: OrchestrationStatus) -> tuple[str, ...]:
    """The actions that make sense for an instance in ``status`` (the page offers only
    these; the API still accepts any and lets the client refuse with 409)."""
    if status is OrchestrationStatus.FAILED:
        return ("rewind", "restart", "purge")
    if status.is_terminal:
        return ("restart", "purge")
    if status is OrchestrationStatus.SUSPENDED:
        return ("resume", "terminate", "raise-event")
    return ("terminate", "suspend", "raise-event")


async def run_action(
    client: AsyncTaskHubClient, instance_id: str, action: str, body: Body
) -> dict[str, Any]:
    """Run ``action`` on the instance; the answer names both plus what the action returned."""
    handler = ACTIONS.get(action)
    if handler is None:
        raise ApiError(404, f"unknown action {action!r}; expected one of: {', '.join(ACTIONS)}")
    result = await handler(client, instance_id, body)
    return {"instance_id": instance_id, "action": action, "ok": True, **result}


async def bulk_purge(client: AsyncTaskHubClient, body: Body) -> dict[str, Any]:
    """One slice of a purge by filter (see the module docstring)."""
    statuses = body.get("status")
    if isinstance(statuses, str):
        statuses = [statuses]
    if not isinstance(statuses, list) or not all(isinstance(s, str) for s in statuses):
        raise bad_request("status: expected a list of status names (Completed, Failed, Terminated)")
    created_from, created_to = (
        parse_time(_text(body, key) or "", key) for key in ("created_from", "created_to")
    )
    result = await client.purge_orchestrations_by(
        runtime_status=parse_statuses(statuses),
        created_time_from=created_from,
        created_time_to=created_to,
        timeout=PURGE_SLICE,
    )
    return {
        "deleted_instance_count": result.deleted_instance_count,
        "is_complete": result.is_complete,
    }
