"""Instance queries for the in-memory backend: filters, payload trimming, continuation tokens.

Pages are ordered by instance id and the token records the last id returned, so paging sees
every instance that existed throughout exactly once, even if instances are added meanwhile.
Tokens are opaque to callers (versioned, base64url JSON) and a malformed one is refused.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
from collections.abc import Iterable

from durable_azstorage.model.query import OrchestrationQuery, Page
from durable_azstorage.model.state import InstanceState

_TOKEN_VERSION = 1


def without_payloads(state: InstanceState) -> InstanceState:
    """The state minus input and output (custom status and failure details stay)."""
    return dataclasses.replace(state, input=None, output=None)


def matches(state: InstanceState, query: OrchestrationQuery) -> bool:
    """True if ``state`` passes every filter of ``query`` (created range is inclusive)."""
    if query.runtime_status and state.runtime_status not in query.runtime_status:
        return False
    if query.created_time_from is not None and state.created_at < query.created_time_from:
        return False
    if query.created_time_to is not None and state.created_at > query.created_time_to:
        return False
    prefix = query.instance_id_prefix
    return not prefix or state.instance_id.startswith(prefix)


def page_of(states: Iterable[InstanceState], query: OrchestrationQuery) -> Page[InstanceState]:
    """One page of matching ``states`` after the query's continuation token."""
    after = decode_token(query.continuation_token) if query.continuation_token else None
    candidates = sorted(
        (s for s in states if (after is None or s.instance_id > after) and matches(s, query)),
        key=lambda s: s.instance_id,
    )
    items = candidates[: query.page_size]
    if not query.fetch_inputs_and_outputs:
        items = [without_payloads(s) for s in items]
    more = len(candidates) > query.page_size
    return Page(
        items=items, continuation_token=encode_token(items[-1].instance_id) if more else None
    )


def encode_token(after_instance_id: str) -> str:
    raw = json.dumps({"v": _TOKEN_VERSION, "after": after_instance_id}).encode("utf-8")
    return base64.urlsafe_b64encode(raw).decode("ascii")


def decode_token(token: str) -> str:
    try:
        doc = json.loads(base64.urlsafe_b64decode(token.encode("ascii")))
    except (ValueError, UnicodeError, binascii.Error) as exc:
        raise ValueError(f"invalid continuation token {token[:40]!r}: {exc}") from exc
    if not isinstance(doc, dict) or doc.get("v") != _TOKEN_VERSION:
        raise ValueError(f"invalid continuation token {token[:40]!r}: unknown format")
    after = doc.get("after")
    if not isinstance(after, str):
        raise ValueError(f"invalid continuation token {token[:40]!r}: no position")
    return after
