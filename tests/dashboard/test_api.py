"""The JSON API on the in-memory backend: document shapes, filters, errors, actions."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from dashboard_support import ACTIVITIES, ORCHESTRATORS, tour

from durable_azstorage import TaskHubWorker
from durable_azstorage.backend.memory import InMemoryBackend
from durable_azstorage.client.async_client import AsyncTaskHubClient
from durable_azstorage.dashboard import create_app
from durable_azstorage.model.status import OrchestrationStatus

INSTANCE_KEYS = {"instance_id", "name", "runtime_status", "created_at", "last_updated_at"}


@pytest.fixture
async def hub(memory_backend: InMemoryBackend) -> AsyncTaskHubClient:
    client = AsyncTaskHubClient(backend=memory_backend)
    for i in range(5):
        await client.schedule_new_orchestration("alpha", instance_id=f"a-{i}", input={"n": i})
    for i in range(3):
        await client.schedule_new_orchestration("beta", instance_id=f"b-{i}")
    return client


@pytest.fixture
async def api(
    memory_backend: InMemoryBackend, hub: AsyncTaskHubClient
) -> AsyncIterator[TestClient[Any, Any]]:
    async with TestClient(TestServer(create_app(memory_backend))) as client:
        yield client


async def get_json(api: TestClient[Any, Any], path: str, status: int = 200) -> Any:
    response = await api.get(path)
    assert response.status == status, await response.text()
    assert response.content_type == "application/json"
    return await response.json()


async def test_instances_answer_items_and_a_continuation_token(api: TestClient[Any, Any]) -> None:
    doc = await get_json(api, "/api/instances")
    assert set(doc) == {"items", "continuation_token"}
    assert doc["continuation_token"] is None
    assert {i["instance_id"] for i in doc["items"]} == {f"a-{i}" for i in range(5)} | {
        f"b-{i}" for i in range(3)
    }
    first = doc["items"][0]
    assert INSTANCE_KEYS <= set(first)
    assert first["runtime_status"] == "Pending"
    assert "input" not in first  # lists carry no payloads


async def test_paging_follows_the_backends_tokens(api: TestClient[Any, Any]) -> None:
    seen: list[str] = []
    token = None
    pages = 0
    while True:
        query = "page_size=3" + (f"&continuation_token={token}" if token else "")
        doc = await get_json(api, f"/api/instances?{query}")
        assert len(doc["items"]) <= 3
        seen += [i["instance_id"] for i in doc["items"]]
        pages += 1
        token = doc["continuation_token"]
        if token is None:
            break
    assert pages == 3
    assert sorted(seen) == sorted(set(seen)) and len(seen) == 8


@pytest.mark.parametrize(
    ("pending", "running"),
    [
        ("Pending", "Running"),
        ("PENDING", "RUNNING"),
        ("pending", "running"),
        ("pEnDiNg", "rUNNING"),
    ],
)
async def test_status_names_in_any_letter_case(
    api: TestClient[Any, Any], pending: str, running: str
) -> None:
    doc = await get_json(api, f"/api/instances?status={pending}")
    assert len(doc["items"]) == 8
    none = await get_json(api, f"/api/instances?status={running}")
    assert none["items"] == []
    both = await get_json(api, f"/api/instances?status={running},{pending}")
    assert len(both["items"]) == 8


async def test_filters_by_name_prefix_and_created_range(api: TestClient[Any, Any]) -> None:
    by_name = await get_json(api, "/api/instances?name=BET")
    assert sorted(i["instance_id"] for i in by_name["items"]) == ["b-0", "b-1", "b-2"]
    by_prefix = await get_json(api, "/api/instances?prefix=a-")
    assert len(by_prefix["items"]) == 5
    future = await get_json(api, "/api/instances?created_from=2999-01-01T00:00:00Z")
    assert future["items"] == []
    past = await get_json(api, "/api/instances?created_to=2000-01-01")
    assert past["items"] == []


async def test_sorting_by_created_time_within_the_page(api: TestClient[Any, Any]) -> None:
    newest = await get_json(api, "/api/instances?sort=-created")
    created = [i["created_at"] for i in newest["items"]]
    assert created == sorted(created, reverse=True)


@pytest.mark.parametrize(
    ("query", "names"),
    [
        ("status=Runing", "status"),
        ("page_size=0", "page_size"),
        ("page_size=ten", "page_size"),
        ("created_from=yesterday", "created_from"),
        ("sort=name", "sort"),
        ("continuation_token=not-a-token", "token"),
    ],
)
async def test_bad_query_parameters_are_400_naming_them(
    api: TestClient[Any, Any], query: str, names: str
) -> None:
    doc = await get_json(api, f"/api/instances?{query}", status=400)
    assert doc["error"]["status"] == 400
    assert names in doc["error"]["message"]


async def test_instance_document_has_payloads(api: TestClient[Any, Any]) -> None:
    doc = await get_json(api, "/api/instances/a-2")
    assert doc["instance_id"] == "a-2"
    assert doc["input"] == {"n": 2}  # decoded, not a string holding JSON
    assert doc["output"] is None and doc["failure_details"] is None


async def test_unknown_instance_and_endpoint_are_json_404(api: TestClient[Any, Any]) -> None:
    missing = await get_json(api, "/api/instances/nope", status=404)
    assert "nope" in missing["error"]["message"]
    history = await get_json(api, "/api/instances/nope/history", status=404)
    assert history["error"]["status"] == 404
    endpoint = await get_json(api, "/api/whatever", status=404)
    assert "/api/whatever" in endpoint["error"]["message"]


async def test_history_lists_events_with_type_index_and_decoded_payloads(
    api: TestClient[Any, Any], memory_backend: InMemoryBackend, hub: AsyncTaskHubClient
) -> None:
    worker = TaskHubWorker(backend=memory_backend)
    for orchestrator in ORCHESTRATORS:
        worker.add_orchestrator(orchestrator)
    for activity in ACTIVITIES:
        worker.add_activity(activity)
    running = asyncio.create_task(worker.run_async())
    try:
        iid = await hub.schedule_new_orchestration(tour, input="Oslo")
        await hub.wait_for_orchestration_completion(iid, timeout=30)
    finally:
        await worker.stop_async(grace=timedelta(seconds=5))
        await running
    doc = await get_json(api, f"/api/instances/{iid}/history")
    types = [e["type"] for e in doc["items"]]
    assert {
        "ExecutionStarted",
        "ExecutionCompleted",
        "TaskScheduled",
        "TaskCompleted",
        "TimerCreated",
        "TimerFired",
        "SubOrchestrationInstanceCreated",
        "SubOrchestrationInstanceCompleted",
    } <= set(types)
    assert [e["index"] for e in doc["items"]] == list(range(len(types)))
    by_type = {e["type"]: e for e in doc["items"]}
    assert by_type["ExecutionStarted"]["input"] == "Oslo"  # decoded payload
    assert by_type["ExecutionCompleted"]["result"] == ["Hello, Oslo!", "Hello, Oslo again!"]
    assert by_type["ExecutionCompleted"]["status"] == "Completed"
    state = await get_json(api, f"/api/instances/{iid}")
    assert state["runtime_status"] == "Completed" and state["output"][0] == "Hello, Oslo!"


async def test_terminate_through_the_api(
    api: TestClient[Any, Any], hub: AsyncTaskHubClient
) -> None:
    response = await api.post("/api/instances/b-1/terminate", json={"output": "stop"})
    assert response.status == 200, await response.text()
    assert await response.json() == {"instance_id": "b-1", "action": "terminate", "ok": True}


async def test_raise_event_needs_a_name(api: TestClient[Any, Any]) -> None:
    response = await api.post("/api/instances/b-1/raise-event", json={"data": 1})
    assert response.status == 400
    assert "name" in (await response.json())["error"]["message"]
    ok = await api.post("/api/instances/b-1/raise-event", json={"name": "go", "data": [1]})
    assert (await ok.json())["event_name"] == "go"


@pytest.mark.parametrize(
    ("action", "body", "status"),
    [
        ("explode", {}, 404),
        ("terminate", {"recursive": "yes"}, 400),
        ("suspend", {"reason": 5}, 400),
        ("restart", {}, 409),  # still Pending: only ended instances restart
        ("rewind", {}, 409),  # not Failed
        ("purge", {}, 409),  # not ended
    ],
)
async def test_action_errors_have_the_right_status(
    api: TestClient[Any, Any], action: str, body: dict[str, Any], status: int
) -> None:
    response = await api.post(f"/api/instances/a-1/{action}", json=body)
    assert response.status == status, await response.text()
    assert (await response.json())["error"]["status"] == status


async def test_actions_on_an_unknown_instance_are_404(api: TestClient[Any, Any]) -> None:
    for action in ("terminate", "suspend", "purge"):
        response = await api.post(f"/api/instances/ghost/{action}", json={})
        assert response.status == 404, action


async def test_a_body_that_is_not_a_json_object_is_400(api: TestClient[Any, Any]) -> None:
    broken = await api.post(
        "/api/instances/a-1/suspend", data="{", headers={"Content-Type": "application/json"}
    )
    assert broken.status == 400 and "JSON" in (await broken.json())["error"]["message"]
    array = await api.post("/api/instances/a-1/suspend", json=[1])
    assert array.status == 400


async def test_bulk_purge_refuses_running_statuses_and_purges_ended_ones(
    api: TestClient[Any, Any], hub: AsyncTaskHubClient, memory_backend: InMemoryBackend
) -> None:
    refused = await api.post("/api/purge", json={"status": ["Running"]})
    assert refused.status == 400
    assert "Running" in (await refused.json())["error"]["message"]
    nothing = await api.post("/api/purge", json={})
    assert nothing.status == 400
    ended = await api.post("/api/purge", json={"status": ["completed", "TERMINATED"]})
    assert await ended.json() == {"deleted_instance_count": 0, "is_complete": True}


async def test_partitions_and_poison_say_when_the_backend_has_none(
    api: TestClient[Any, Any],
) -> None:
    partitions = await get_json(api, "/api/partitions", status=404)
    assert "partitions" in partitions["error"]["message"]
    poison = await get_json(api, "/api/poison", status=404)
    assert "poison" in poison["error"]["message"]


async def test_overview_counts_by_status(api: TestClient[Any, Any]) -> None:
    doc = await get_json(api, "/api/overview")
    assert doc["counts"][OrchestrationStatus.PENDING.value] == 8
    assert doc["complete"] is True
    assert sum(m["created"] for m in doc["per_minute"]) == 8
    assert doc["partitions"] is None and doc["poison_count"] is None
