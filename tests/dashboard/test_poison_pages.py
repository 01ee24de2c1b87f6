"""Poison messages in the dashboard (Azurite): listed, shown with their body, replayed and
deleted through the API and the page."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from dashboard_support import TIMEOUT, browser_page, served

from durable_azstorage import TaskHubClient
from durable_azstorage.azure.provider import AzureStorageBackend
from durable_azstorage.azure.settings import AzureStorageSettings
from durable_azstorage.dashboard import create_app

pytestmark = pytest.mark.azurite
GARBAGE = "<this is not a message>"


def send_garbage(settings: AzureStorageSettings) -> str:
    """Put an undecodable message on control queue 0; the worker quarantines it."""

    async def send() -> str:
        backend = AzureStorageBackend(settings)
        try:
            queue = await backend.queue(backend.names.control_queues[0])
            await queue.send_text(GARBAGE)
            return backend.names.control_queues[0]
        finally:
            await backend.stop()

    return asyncio.run(send())


def fetch(url: str, method: str = "GET", body: Any = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def wait_for_poison(base: str, count: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + TIMEOUT
    while True:
        status, doc = fetch(base + "/api/poison")
        assert status == 200, doc
        if len(doc["items"]) == count or time.monotonic() > deadline:
            return list(doc["items"])
        time.sleep(0.5)


@pytest.fixture
def dashboard_url(azure_settings: AzureStorageSettings, azure_hub: TaskHubClient) -> Iterator[str]:
    with served(lambda: create_app(azure_settings, overview_ttl=0)) as dashboard:
        yield dashboard.url


def test_poison_api_lists_shows_replays_and_deletes(
    azure_settings: AzureStorageSettings, dashboard_url: str
) -> None:
    queue = send_garbage(azure_settings)
    [item] = wait_for_poison(dashboard_url, 1)
    assert item["queue"] == queue and item["key"] == f"{queue}/{item['message_id']}"
    assert "cannot decode" in item["reason"] and "body" not in item
    status, shown = fetch(f"{dashboard_url}/api/poison/{item['key']}")
    assert status == 200 and shown["body"] == GARBAGE
    status, overview = fetch(dashboard_url + "/api/overview")
    assert overview["poison_count"] == 1
    status, replayed = fetch(f"{dashboard_url}/api/poison/{item['key']}/replay", "POST", {})
    assert status == 200 and replayed == {"key": item["key"], "action": "replay", "ok": True}
    [again] = wait_for_poison(dashboard_url, 1)  # still garbage: quarantined once more
    status, deleted = fetch(f"{dashboard_url}/api/poison/{again['key']}/delete", "POST", {})
    assert status == 200 and deleted["action"] == "delete"
    assert fetch(dashboard_url + "/api/poison")[1]["items"] == []
    status, missing = fetch(f"{dashboard_url}/api/poison/{again['key']}")
    assert status == 404 and "no poison message" in missing["error"]["message"]
    status, unknown = fetch(f"{dashboard_url}/api/poison/{again['key']}/explode", "POST", {})
    assert status == 404 and "replay or delete" in unknown["error"]["message"]


def test_poison_page_shows_and_deletes(
    azure_settings: AzureStorageSettings, dashboard_url: str
) -> None:
    send_garbage(azure_settings)
    [item] = wait_for_poison(dashboard_url, 1)
    with browser_page() as page:
        page.on("dialog", lambda dialog: dialog.accept())
        page.goto(dashboard_url + "/poison")
        assert page.locator("#poison tbody tr").count() == 1
        assert "cannot decode" in page.inner_text("#poison")
        page.click("#poison td.id a")
        page.wait_for_url(f"**/poison/{item['queue']}/{item['message_id']}")
        assert GARBAGE in page.inner_text("pre")
        page.click("form.action button.danger")
        page.wait_for_url("**/poison")
        assert page.inner_text("#poison tbody") == "No poison messages."
