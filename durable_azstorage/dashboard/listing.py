"""One page of the instance list, always with the backend's continuation tokens.

The storage query filters status, id prefix and created range itself. It cannot filter by
orchestrator name, so a ``name`` filter is applied to each storage page here: storage pages
are read (each asking only for the rows still missing) until the page is full or
``MAX_SCAN_PAGES`` were read, and the token of the last one is handed on. A request
therefore costs at most ``MAX_SCAN_PAGES`` queries, never a scan of the hub; a page may hold
fewer rows than asked while more follow (the page shows a "next" link whenever a token does).
"""

from __future__ import annotations

import dataclasses

from durable_azstorage.client.async_client import AsyncTaskHubClient
from durable_azstorage.client.state import OrchestrationState
from durable_azstorage.dashboard.filters import InstanceFilter
from durable_azstorage.model.query import OrchestrationQuery, Page

MAX_SCAN_PAGES = 5


async def list_instances(
    client: AsyncTaskHubClient, wanted: InstanceFilter
) -> Page[OrchestrationState]:
    """The page of instances ``wanted`` names (see the module docstring for ``name``)."""
    query = OrchestrationQuery(
        runtime_status=wanted.statuses or None,
        instance_id_prefix=wanted.prefix or None,
        created_time_from=wanted.created_from,
        created_time_to=wanted.created_to,
        page_size=wanted.page_size,
        continuation_token=wanted.continuation_token,
    )
    needle = wanted.name.casefold()
    items: list[OrchestrationState] = []
    token: str | None = None
    for _ in range(MAX_SCAN_PAGES):
        page = await client.query_orchestrations(query)
        items += [s for s in page.items if needle in s.name.casefold()]
        token = page.continuation_token
        if token is None or not needle or len(items) >= wanted.page_size:
            break
        query = dataclasses.replace(
            query, continuation_token=token, page_size=wanted.page_size - len(items)
        )
    if wanted.sort:
        items.sort(key=lambda s: s.created_at, reverse=wanted.sort.startswith("-"))
    return Page(items, token)
