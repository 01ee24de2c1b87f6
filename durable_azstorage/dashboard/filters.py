"""The instance filter of ``/instances`` and ``GET /api/instances``, parsed from a query string.

One parser serves the page and the API, so both accept the same parameters and refuse bad
ones with the same message (naming the parameter): ``status`` (repeatable and/or
comma-separated, any letter case: ``Running``, ``RUNNING``, ``continued_as_new``), ``name``
(orchestrator name contains it, case-insensitive), ``prefix`` (instance id prefix),
``created_from``/``created_to`` (ISO 8601; no offset or ``Z`` means UTC), ``page_size``
(1-1000), ``continuation_token`` (opaque, from the previous page) and ``sort``
(``created`` or ``-created``: within the page; storage pages come in instance-id order).
Empty values count as absent, as HTML forms send them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Protocol
from urllib.parse import urlencode

from durable_azstorage.dashboard.errors import bad_request
from durable_azstorage.model.status import OrchestrationStatus

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000
SORTS = ("", "created", "-created")


class QueryParams(Protocol):
    """A multi-valued query string (aiohttp's ``MultiDictProxy``)."""

    def getall(self, key: str, default: list[str]) -> list[str]: ...

    def get(self, key: str, default: str) -> str: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class InstanceFilter:
    statuses: tuple[OrchestrationStatus, ...] = ()
    name: str = ""
    prefix: str = ""
    created_from: datetime | None = None
    created_to: datetime | None = None
    page_size: int = DEFAULT_PAGE_SIZE
    continuation_token: str | None = None
    sort: str = ""

    def query_string(self, *, continuation_token: str | None = None) -> str:
        """This filter as a query string (for links to the next page and the API)."""
        pairs: list[tuple[str, str]] = [("status", s.value) for s in self.statuses]
        for key, value in (("name", self.name), ("prefix", self.prefix), ("sort", self.sort)):
            if value:
                pairs.append((key, value))
        for key, when in (("created_from", self.created_from), ("created_to", self.created_to)):
            if when is not None:
                pairs.append((key, when.isoformat()))
        if self.page_size != DEFAULT_PAGE_SIZE:
            pairs.append(("page_size", str(self.page_size)))
        if continuation_token:
            pairs.append(("continuation_token", continuation_token))
        return urlencode(pairs)


def parse_filter(params: QueryParams) -> InstanceFilter:
    """The filter in ``params``; ``ApiError(400)`` naming the first bad parameter."""
    sort = params.get("sort", "").strip()
    if sort not in SORTS:
        raise bad_request(f"sort: expected 'created' or '-created', got {sort!r}")
    return InstanceFilter(
        statuses=parse_statuses(params.getall("status", [])),
        name=params.get("name", "").strip(),
        prefix=params.get("prefix", ""),
        created_from=parse_time(params.get("created_from", ""), "created_from"),
        created_to=parse_time(params.get("created_to", ""), "created_to"),
        page_size=_page_size(params.get("page_size", "")),
        continuation_token=params.get("continuation_token", "") or None,
        sort=sort,
    )


def parse_statuses(values: Sequence[str]) -> tuple[OrchestrationStatus, ...]:
    parts = [p for value in values for p in value.split(",") if p.strip()]
    try:
        return tuple(dict.fromkeys(OrchestrationStatus.parse(p) for p in parts))
    except ValueError as exc:
        raise bad_request(f"status: {exc}") from None


def parse_time(text: str, parameter: str) -> datetime | None:
    raw = text.strip()
    if not raw:
        return None
    if raw[-1] in "Zz":
        raw = raw[:-1] + "+00:00"
    try:
        when = datetime.fromisoformat(raw)
    except ValueError:
        raise bad_request(
            f"{parameter}: {text!r} is not an ISO 8601 time such as 2026-12-01T18:00:00Z"
        ) from None
    return when if when.tzinfo is not None else when.replace(tzinfo=timezone.utc)


def _page_size(text: str) -> int:
    if not text.strip():
        return DEFAULT_PAGE_SIZE
    try:
        size = int(text)
    except ValueError:
        raise bad_request(f"page_size: expected a whole number, got {text!r}") from None
    if not 1 <= size <= MAX_PAGE_SIZE:
        raise bad_request(f"page_size: must be between 1 and {MAX_PAGE_SIZE}, got {size}")
    return size
