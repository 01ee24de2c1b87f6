"""The dashboard in a real browser (Debian's chromium through Playwright) against Azurite.

Each test serves the dashboard of its own hub, with a worker running the orchestrations of
``dashboard_support``, and drives the pages as a user would. Screenshots of the pages go to
``docs/`` (used by the README) when ``DASHBOARD_SCREENSHOTS=1``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from dashboard_support import TIMEOUT, approval, broken, chromium, fresh_page, served, tour

from durable_azstorage import TaskHubClient
from durable_azstorage.azure.settings import AzureStorageSettings
from durable_azstorage.cli.hub_monitor import AzureHubMonitor
from durable_azstorage.dashboard import create_app
from durable_azstorage.model.status import OrchestrationStatus

pytestmark = pytest.mark.azurite

DOCS = Path(__file__).resolve().parents[2] / "docs"
HOSTILE = '"><script>window.__pwned=1</script><img src=x onerror="window.__pwned=2;alert(3)">'


def app_factory(settings: AzureStorageSettings, **options: Any) -> Any:
    def make() -> web.Application:
        monitor = AzureHubMonitor(settings)
        app = create_app(settings, monitor=monitor, overview_ttl=0, **options)

        async def close_monitor(_: web.Application) -> None:
            await monitor.close()

        app.on_cleanup.append(close_monitor)
        return app

    return make


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as launched:
        yield launched


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    with fresh_page(browser) as p:
        yield p


def screenshot(page: Any, name: str) -> None:
    if os.environ.get("DASHBOARD_SCREENSHOTS") == "1":
        DOCS.mkdir(exist_ok=True)
        page.screenshot(path=str(DOCS / f"dashboard-{name}.png"))


def start_tours(client: TaskHubClient, count: int) -> list[str]:
    ids = [client.schedule_new_orchestration(tour, input=f"City {i}") for i in range(count)]
    for iid in ids:
        client.wait_for_orchestration_completion(iid, timeout=TIMEOUT)
    return ids


def start_approvals(client: TaskHubClient, count: int, prefix: str = "approval-") -> list[str]:
    ids = [
        client.schedule_new_orchestration(approval, instance_id=f"{prefix}{i}")
        for i in range(count)
    ]
    for iid in ids:
        client.wait_for_orchestration_start(iid, timeout=TIMEOUT)
    return ids


def ids_on(page: Any) -> set[str]:
    return set(page.locator("#instances td.id a").all_inner_texts())


def test_list_shows_started_instances_and_filters_them(
    azure_settings: AzureStorageSettings, azure_hub: TaskHubClient, page: Any
) -> None:
    tours = start_tours(azure_hub, 3)
    approvals = start_approvals(azure_hub, 2)
    with served(app_factory(azure_settings)) as dashboard:
        page.goto(dashboard.url + "/instances")
        everything = {s.instance_id for s in azure_hub.get_all_orchestration_states()}
        assert len(everything) == 8  # three tours, their children, two approvals
        assert ids_on(page) == everything
        page.check("input[name=status][value=Running]")
        page.click("form#filters button[type=submit]")
        page.wait_for_url("**status=Running**")
        assert ids_on(page) == set(approvals)
        page.goto(dashboard.url + "/instances?name=TOUR")
        assert ids_on(page) == set(tours)
        page.goto(dashboard.url + "/instances?prefix=approval-1")
        assert ids_on(page) == {"approval-1"}
        page.goto(dashboard.url + "/instances?page_size=2")
        first = ids_on(page)
        assert len(first) == 2
        page.click("#next-page")
        assert ids_on(page).isdisjoint(first)
        page.goto(dashboard.url + "/instances?sort=-created")
        screenshot(page, "instances")


def test_the_list_refreshes_itself_until_switched_off(
    azure_settings: AzureStorageSettings, azure_hub: TaskHubClient, page: Any
) -> None:
    [first] = start_approvals(azure_hub, 1, prefix="early-")
    with served(app_factory(azure_settings, refresh_seconds=1)) as dashboard:
        page.goto(dashboard.url + "/instances")
        assert ids_on(page) == {first}
        assert page.is_checked("#autorefresh")
        [second] = start_approvals(azure_hub, 1, prefix="late-")
        page.wait_for_selector(f"#instances a:text-is('{second}')", timeout=15_000)
        page.uncheck("#autorefresh")
        [third] = start_approvals(azure_hub, 1, prefix="later-")
        page.wait_for_timeout(2500)
        assert third not in ids_on(page)
        page.reload()  # the choice is remembered
        assert not page.is_checked("#autorefresh")


def test_detail_shows_history_timeline_and_child_link(
    azure_settings: AzureStorageSettings, azure_hub: TaskHubClient, page: Any
) -> None:
    [iid] = start_tours(azure_hub, 1)
    with served(app_factory(azure_settings)) as dashboard:
        page.goto(f"{dashboard.url}/instances/{iid}")
        assert page.inner_text("h1") == iid
        assert page.inner_text("#status") == "Completed"
        assert "Hello, City 0!" in page.inner_text("#output")
        events = page.locator("#history td.event-type").all_inner_texts()
        for kind in (
            "ExecutionStarted",
            "TaskScheduled",
            "TaskCompleted",
            "TimerCreated",
            "TimerFired",
            "SubOrchestrationInstanceCreated",
            "ExecutionCompleted",
        ):
            assert kind in events
        bars = page.locator("#timeline rect.bar")
        assert bars.count() == 3
        classes = [bars.nth(i).get_attribute("class") for i in range(3)]
        assert classes == [
            "bar activity completed",
            "bar timer completed",
            "bar suborchestration completed",
        ]
        screenshot(page, "instance")
        page.click("#timeline .lane-label a")
        page.wait_for_url("**/instances/*%3A*")
        assert page.inner_text("#status") == "Completed"
        assert "greet_child" in page.inner_text("table.facts")
        page.click("table.facts a")  # the parent link leads back
        page.wait_for_url(f"**/instances/{iid}")
        assert page.inner_text("h1") == iid


def test_bulk_purge_from_the_page_purges_the_filtered_ended_instances(
    azure_settings: AzureStorageSettings, azure_hub: TaskHubClient, page: Any
) -> None:
    start_tours(azure_hub, 2)
    [running] = start_approvals(azure_hub, 1)
    page.on("dialog", lambda dialog: dialog.accept())
    with served(app_factory(azure_settings)) as dashboard:
        page.goto(dashboard.url + "/instances?status=Completed")
        assert len(ids_on(page)) == 4  # two tours and their children
        page.click("form.bulk-purge button")
        page.wait_for_selector("form.bulk-purge .progress:has-text('done')")
        assert page.inner_text("form.bulk-purge .progress") == "4 purged, done"
    left = azure_hub.get_all_orchestration_states()
    assert [s.instance_id for s in left] == [running]


def test_terminate_from_the_page_terminates(
    azure_settings: AzureStorageSettings, azure_hub: TaskHubClient, page: Any
) -> None:
    [iid] = start_approvals(azure_hub, 1)
    dialogs: list[str] = []

    def accept(dialog: Any) -> None:
        dialogs.append(dialog.message)
        dialog.accept()

    page.on("dialog", accept)
    with served(app_factory(azure_settings)) as dashboard:
        page.goto(f"{dashboard.url}/instances/{iid}")
        assert page.inner_text("#status") == "Running"
        page.fill("form.action input[name=output]", '"stopped from the dashboard"')
        page.click("button[data-action=terminate]")
        state = azure_hub.wait_for_orchestration_completion(iid, timeout=TIMEOUT)
        assert state.runtime_status is OrchestrationStatus.TERMINATED
        assert state.get_output() == "stopped from the dashboard"
        assert dialogs == [f"Terminate {iid}?"]
        page.wait_for_function("document.getElementById('status').textContent === 'Terminated'")


def test_cancelled_confirmation_changes_nothing(
    azure_settings: AzureStorageSettings, azure_hub: TaskHubClient, page: Any
) -> None:
    [iid] = start_approvals(azure_hub, 1)
    page.on("dialog", lambda dialog: dialog.dismiss())
    with served(app_factory(azure_settings)) as dashboard:
        page.goto(f"{dashboard.url}/instances/{iid}")
        page.click("button[data-action=suspend]")
        page.wait_for_timeout(1500)
        state = azure_hub.get_orchestration_state(iid)
        assert state is not None and state.runtime_status is OrchestrationStatus.RUNNING


def test_read_only_hides_actions(
    azure_settings: AzureStorageSettings, azure_hub: TaskHubClient, page: Any
) -> None:
    [iid] = start_approvals(azure_hub, 1)
    with served(app_factory(azure_settings, read_only=True)) as dashboard:
        page.goto(f"{dashboard.url}/instances/{iid}")
        assert page.inner_text("#status") == "Running"
        assert page.locator("#actions").count() == 0
        assert page.locator("button[data-action]").count() == 0
        assert page.inner_text("header .badge") == "read-only"
        page.goto(dashboard.url + "/instances")
        assert page.locator("form.bulk-purge").count() == 0


def test_a_hostile_instance_id_is_rendered_inert(
    azure_settings: AzureStorageSettings, azure_hub: TaskHubClient, page: Any
) -> None:
    azure_hub.schedule_new_orchestration(approval, instance_id=HOSTILE)
    azure_hub.wait_for_orchestration_start(HOSTILE, timeout=TIMEOUT)
    dialogs: list[str] = []

    def dismiss(dialog: Any) -> None:  # an alert() would mean injected script ran
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", dismiss)
    with served(app_factory(azure_settings)) as dashboard:
        page.goto(dashboard.url + "/instances")
        assert ids_on(page) == {HOSTILE}
        assert page.evaluate("typeof window.__pwned") == "undefined"
        assert page.locator("#instances img").count() == 0
        page.click("#instances td.id a")
        page.wait_for_selector("h1")
        assert page.inner_text("h1") == HOSTILE
        assert page.inner_text("#status") == "Running"
        assert page.locator("button[data-action=terminate]").count() == 1  # attributes intact
        assert page.evaluate("typeof window.__pwned") == "undefined"
        assert dialogs == []


def test_overview_shows_counts_partitions_and_backlog(
    azure_settings: AzureStorageSettings, azure_hub: TaskHubClient, page: Any
) -> None:
    start_tours(azure_hub, 2)
    start_approvals(azure_hub, 1)
    with served(app_factory(azure_settings)) as dashboard:
        page.goto(dashboard.url + "/")
        completed = page.locator("a.card.status-completed .count").inner_text()
        assert completed == "4"  # two tours and their two children
        assert page.locator("a.card.status-running .count").inner_text() == "1"
        rows = page.locator("table.grid tbody tr")
        assert rows.count() == azure_settings.partition_count
        owners = page.locator("table.grid tbody tr td:nth-child(3)").all_inner_texts()
        assert all(owner != "-" for owner in owners)  # the worker holds every lease
        page.goto(dashboard.url + "/")  # the second refresh shows request rates
        assert page.locator("text=table.QueryEntities").count() == 1
        screenshot(page, "overview")


def test_a_failed_instance_shows_its_failures_and_purges_from_the_page(
    azure_settings: AzureStorageSettings, azure_hub: TaskHubClient, page: Any
) -> None:
    iid = azure_hub.schedule_new_orchestration(broken)
    state = azure_hub.wait_for_orchestration_completion(iid, timeout=TIMEOUT)
    assert state.runtime_status is OrchestrationStatus.FAILED
    page.on("dialog", lambda dialog: dialog.accept())
    with served(app_factory(azure_settings)) as dashboard:
        page.goto(f"{dashboard.url}/instances/{iid}")
        assert "the ledger does not balance" in page.inner_text(".failure")
        event_type = page.locator("td.event-type", has_text=re.compile("^TaskFailed$"))
        failed = page.locator("#history tr", has=event_type).inner_text()
        assert "builtins.RuntimeError" in failed
        assert "builtins.KeyError" in failed  # the activity's inner failure
        assert page.locator("#timeline rect.bar.failed").count() == 1
        offered = page.locator("button[data-action]").all_inner_texts()
        assert offered == ["Restart", "Rewind", "Purge"]
        page.click("button[data-action=purge]")
        page.wait_for_url(dashboard.url + "/instances")
        assert iid not in ids_on(page)
    assert azure_hub.get_orchestration_state(iid) is None
