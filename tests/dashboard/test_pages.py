"""Server-rendered pages on the in-memory backend: failure chains, paging links, error pages."""

from __future__ import annotations

import asyncio
import html
import re
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from durable_azstorage import OrchestrationContext, TaskHubWorker
from durable_azstorage.backend.memory import InMemoryBackend
from durable_azstorage.client.async_client import AsyncTaskHubClient
from durable_azstorage.dashboard import create_app

Client = TestClient[Any, Any]


def reconcile(ctx: OrchestrationContext, _: Any) -> None:
    balances: dict[str, int] = {}
    try:
        balances["ledger-7"]
    except KeyError as exc:
        raise RuntimeError("the ledger does not balance") from exc


@pytest.fixture
async def pages(memory_backend: InMemoryBackend) -> AsyncIterator[Client]:
    async with TestClient(TestServer(create_app(memory_backend))) as client:
        yield client


async def text(client: Client, path: str, status: int = 200) -> str:
    response = await client.get(path)
    assert response.status == status, await response.text()
    assert response.content_type == "text/html"
    return html.unescape(await response.text())


async def test_a_failure_is_shown_with_its_inner_failures(
    pages: Client, memory_backend: InMemoryBackend
) -> None:
    client = AsyncTaskHubClient(backend=memory_backend)
    worker = TaskHubWorker(backend=memory_backend)
    worker.add_orchestrator(reconcile)
    running = asyncio.create_task(worker.run_async())
    try:
        await client.schedule_new_orchestration(reconcile, instance_id="r-1")
        await client.wait_for_orchestration_completion("r-1", timeout=30)
    finally:
        await worker.stop_async(grace=timedelta(seconds=5))
        await running
    page = await text(pages, "/instances/r-1")
    assert "builtins.RuntimeError: the ledger does not balance" in page.replace("</strong>", "")
    caused = page.index("caused by")
    assert page.index("builtins.KeyError", caused) > caused
    assert 'data-action="rewind"' in page and 'data-action="terminate"' not in page


async def test_the_next_page_link_carries_the_filter_and_the_token(
    pages: Client, memory_backend: InMemoryBackend
) -> None:
    client = AsyncTaskHubClient(backend=memory_backend)
    for i in range(3):
        await client.schedule_new_orchestration("job", instance_id=f"job-{i}")
    first = await text(pages, "/instances?status=pending&page_size=2&name=jo")
    found = re.search(r'href="([^"]+)" id="next-page"', first)
    assert found is not None
    link = found.group(1)
    assert link.startswith("/instances?status=Pending&name=jo&page_size=2&continuation_token=")
    second = await text(pages, link)
    assert "job-2" in second and "job-0" not in second and 'id="next-page"' not in second
    assert "first page" in second


async def test_pages_without_partitions_or_poison_say_so(pages: Client) -> None:
    overview = await text(pages, "/")
    assert "This backend reports no partitions." in overview
    assert 'href="/poison"' not in overview
    missing = await text(pages, "/poison", status=404)
    assert "keeps no poison messages" in missing


async def test_error_pages_have_the_status_and_the_reason(pages: Client) -> None:
    unknown = await text(pages, "/instances/ghost", status=404)
    assert "Error 404" in unknown and "'ghost' was not found" in unknown
    bad = await text(pages, "/instances?created_to=soon", status=400)
    assert "created_to" in bad and "ISO 8601" in bad
