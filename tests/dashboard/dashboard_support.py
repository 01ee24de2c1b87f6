"""Helpers of the dashboard tests: an app served from a thread, the test orchestrations, a
browser.

``ServedApp`` runs ``create_app(...)`` on its own event loop in a thread (the app and its
storage clients must live in that loop) on a free loopback port, and stops it on ``close``.
``chromium`` launches Debian's chromium through Playwright and closes it (and Playwright's
driver) on the way out, also when the test fails; a module shares one (a launch costs about a
second of CPU) and ``fresh_page`` gives each test a new browser context, so nothing carries
over between tests. Pages ignore the CSP, so tests see what escaping alone does (the header has
its own test). ``browser_page`` is both for a single test.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
from aiohttp import web

from durable_azstorage import ActivityContext, OrchestrationContext

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT = 60.0


class ServedApp:
    """``make_app()`` (called inside the server's loop) served on 127.0.0.1 until ``close``."""

    def __init__(self, make_app: Callable[[], web.Application]) -> None:
        self._make_app = make_app
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self.url = ""
        self._thread = threading.Thread(target=lambda: asyncio.run(self._serve()), daemon=True)

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        runner: web.AppRunner | None = None
        try:
            runner = web.AppRunner(self._make_app(), access_log=None)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            self.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        except BaseException as exc:
            self._error = exc
        finally:
            self._ready.set()
        try:
            await self._stop.wait()
        finally:
            if runner is not None:
                await runner.cleanup()

    def start(self) -> ServedApp:
        self._thread.start()
        self._ready.wait(TIMEOUT)
        if self._error is not None:
            raise self._error
        return self

    def close(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(TIMEOUT)


@contextmanager
def served(make_app: Callable[[], web.Application]) -> Iterator[ServedApp]:
    app = ServedApp(make_app).start()
    try:
        yield app
    finally:
        app.close()


@contextmanager
def chromium() -> Iterator[Any]:
    """Debian's chromium through Playwright, closed (with Playwright's driver) on the way out."""
    from playwright.sync_api import sync_playwright

    if not os.path.exists(CHROMIUM):
        pytest.fail(
            f"the browser tests need Debian's chromium at {CHROMIUM}: "
            "apt-get install -y chromium (Playwright's own browser download is not used)",
            pytrace=False,
        )

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@contextmanager
def fresh_page(browser: Any) -> Iterator[Any]:
    """A page in a new browser context: no cookies, storage or cache shared with other tests."""
    context = browser.new_context(
        viewport={"width": 1280, "height": 860},
        # The pages' Content-Security-Policy would stop an injected script even if
        # escaping failed; bypassing it makes the hostile-id test check escaping.
        bypass_csp=True,
    )
    try:
        page = context.new_page()
        page.set_default_timeout(20_000)
        yield page
    finally:
        context.close()


@contextmanager
def browser_page() -> Iterator[Any]:
    """A page in a browser of its own (for a module with one browser test)."""
    with chromium() as browser, fresh_page(browser) as page:
        yield page


# --- the orchestrations the pages show -----------------------------------------------------
def greet(ctx: ActivityContext, name: str) -> str:
    return f"Hello, {name}!"


def greet_child(ctx: OrchestrationContext, name: str):  # type: ignore[no-untyped-def]
    return (yield ctx.call_activity(greet, input=name))


def tour(ctx: OrchestrationContext, city: str):  # type: ignore[no-untyped-def]
    """An activity, a short timer and a sub-orchestration: three bars on the timeline."""
    first = yield ctx.call_activity(greet, input=city)
    yield ctx.create_timer(timedelta(milliseconds=300))
    second = yield ctx.call_sub_orchestrator(greet_child, input=city + " again")
    return [first, second]


def audit(ctx: ActivityContext, _: Any) -> None:
    try:
        raise KeyError("ledger-7")
    except KeyError as exc:
        raise RuntimeError("the ledger does not balance") from exc


def broken(ctx: OrchestrationContext, _: Any):  # type: ignore[no-untyped-def]
    """Fails through its activity: a failure with an inner failure."""
    yield ctx.call_activity(audit)


def approval(ctx: OrchestrationContext, _: Any):  # type: ignore[no-untyped-def]
    """Runs until the ``approve`` event arrives (something to terminate)."""
    return (yield ctx.wait_for_external_event("approve"))


ORCHESTRATORS = (tour, greet_child, approval, broken)
ACTIVITIES = (greet, audit)
