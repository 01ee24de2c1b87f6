"""The instance page with a name filter: bounded reads, tokens handed on, nothing skipped."""

from __future__ import annotations

from urllib.parse import parse_qsl

from durable_azstorage.backend.memory import InMemoryBackend
from durable_azstorage.client.async_client import AsyncTaskHubClient
from durable_azstorage.dashboard.filters import InstanceFilter, parse_filter
from durable_azstorage.dashboard.listing import MAX_SCAN_PAGES, list_instances
from durable_azstorage.model.query import OrchestrationQuery, Page
from durable_azstorage.model.state import InstanceState


class CountingBackend(InMemoryBackend):
    def __init__(self) -> None:
        super().__init__()
        self.queries: list[OrchestrationQuery] = []

    async def query_instances(self, query: OrchestrationQuery) -> Page[InstanceState]:
        self.queries.append(query)
        return await super().query_instances(query)


async def seeded() -> tuple[CountingBackend, AsyncTaskHubClient]:
    backend = CountingBackend()
    await backend.create_task_hub()
    client = AsyncTaskHubClient(backend=backend)
    for i in range(60):  # one "needle" every tenth instance
        name = "needle" if i % 10 == 0 else "hay"
        await client.schedule_new_orchestration(name, instance_id=f"i-{i:03d}")
    return backend, client


async def test_a_name_filter_reads_at_most_max_scan_pages_and_hands_on_the_token() -> None:
    backend, client = await seeded()
    wanted = InstanceFilter(name="NEEDLE", page_size=5)
    found: list[str] = []
    requests: list[int] = []
    while True:
        backend.queries.clear()
        page = await list_instances(client, wanted)
        requests.append(len(backend.queries))
        found += [s.instance_id for s in page.items]
        assert len(page.items) <= 5
        if page.continuation_token is None:
            break
        wanted = InstanceFilter(
            name="needle", page_size=5, continuation_token=page.continuation_token
        )
    assert found == [f"i-{i:03d}" for i in range(0, 60, 10)]  # every match, once, in order
    assert max(requests) <= MAX_SCAN_PAGES
    await backend.stop()


async def test_without_a_name_filter_one_query_per_page() -> None:
    backend, client = await seeded()
    page = await list_instances(client, InstanceFilter(page_size=7))
    assert len(page.items) == 7 and page.continuation_token is not None
    assert len(backend.queries) == 1 and backend.queries[0].page_size == 7
    await backend.stop()


def test_the_filter_round_trips_through_its_query_string() -> None:
    class Params:
        def __init__(self, pairs: list[tuple[str, str]]) -> None:
            self.pairs = pairs

        def getall(self, key: str, default: list[str]) -> list[str]:
            return [v for k, v in self.pairs if k == key] or default

        def get(self, key: str, default: str) -> str:
            return next((v for k, v in self.pairs if k == key), default)

    original = parse_filter(
        Params(
            [
                ("status", "running,FAILED"),
                ("name", "x"),
                ("prefix", "p-"),
                ("created_from", "2026-12-01T10:00:00Z"),
                ("page_size", "20"),
                ("sort", "-created"),
            ]
        )
    )
    again = parse_filter(Params(parse_qsl(original.query_string(continuation_token="t"))))
    assert again.continuation_token == "t"
    assert again == InstanceFilter(
        statuses=original.statuses,
        name="x",
        prefix="p-",
        created_from=original.created_from,
        page_size=20,
        continuation_token="t",
        sort="-created",
    )
