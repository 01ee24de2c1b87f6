"""Token, login cookie, CSRF, Origin and Host checks, read-only, the bind rule, escaping."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from durable_azstorage.backend.memory import InMemoryBackend
from durable_azstorage.client.async_client import AsyncTaskHubClient
from durable_azstorage.dashboard import create_app
from durable_azstorage.dashboard.security import COOKIE, CSRF_HEADER, safe_next
from durable_azstorage.dashboard.server import BindRefused, check_bind

TOKEN = "s3cret-token"
HOSTILE = "<script>alert('x')</script>"
Client = TestClient[Any, Any]


@asynccontextmanager
async def dashboard(backend: InMemoryBackend, **options: Any) -> AsyncIterator[Client]:
    await AsyncTaskHubClient(backend=backend).schedule_new_orchestration(
        "<b>bold</b>", instance_id=HOSTILE, input="<img src=x onerror=alert(1)>"
    )
    async with TestClient(TestServer(create_app(backend, **options))) as client:
        yield client


def csrf_of(html: str) -> str:
    start = html.index('data-csrf="') + len('data-csrf="')
    return html[start : html.index('"', start)]


async def test_with_a_token_api_calls_need_it(memory_backend: InMemoryBackend) -> None:
    async with dashboard(memory_backend, token=TOKEN) as client:
        anonymous = await client.get("/api/instances")
        assert anonymous.status == 401
        assert (await anonymous.json())["error"]["status"] == 401
        wrong = await client.get("/api/instances", headers={"Authorization": "Bearer nope"})
        assert wrong.status == 401
        right = await client.get("/api/instances", headers={"Authorization": f"Bearer {TOKEN}"})
        assert right.status == 200
        posted = await client.post("/api/instances/x/terminate", json={})
        assert posted.status == 401


async def test_pages_redirect_to_login_and_the_cookie_then_opens_them(
    memory_backend: InMemoryBackend,
) -> None:
    async with dashboard(memory_backend, token=TOKEN) as client:
        page = await client.get("/instances?status=Pending", allow_redirects=False)
        assert page.status == 303
        assert page.headers["Location"].startswith("/login?next=")
        failed = await client.post("/login", data={"token": "guess", "next": "/instances"})
        assert failed.status == 401 and "Wrong token" in await failed.text()
        assert COOKIE not in client.session.cookie_jar.filter_cookies(client.make_url("/"))
        login = await client.post(
            "/login", data={"token": TOKEN, "next": "/instances"}, allow_redirects=False
        )
        assert login.status == 303 and login.headers["Location"] == "/instances"
        cookie = login.cookies[COOKIE]
        assert TOKEN not in cookie.value  # an HMAC, never the token itself
        assert cookie["httponly"] and cookie["samesite"] == "Strict"
        opened = await client.get("/instances")
        assert opened.status == 200 and "Instances" in await opened.text()


async def test_cookie_sessions_need_the_csrf_header_to_post(
    memory_backend: InMemoryBackend,
) -> None:
    async with dashboard(memory_backend, token=TOKEN) as client:
        await client.post("/login", data={"token": TOKEN, "next": "/"})
        html = await (await client.get("/instances")).text()
        target = "/api/instances/%3Cscript%3Ealert('x')%3C%2Fscript%3E/suspend"
        forged = await client.post(target, json={})
        assert forged.status == 403
        assert CSRF_HEADER in (await forged.json())["error"]["message"]
        allowed = await client.post(target, json={}, headers={CSRF_HEADER: csrf_of(html)})
        assert allowed.status == 200, await allowed.text()


async def test_cross_site_posts_are_refused(memory_backend: InMemoryBackend) -> None:
    async with dashboard(memory_backend) as client:
        foreign = await client.post(
            "/api/instances/x/terminate", json={}, headers={"Origin": "https://evil.example"}
        )
        assert foreign.status == 403
        assert "cross-site" in (await foreign.json())["error"]["message"]
        form = await client.post("/api/instances/x/terminate", data={"a": "b"})
        assert form.status == 415  # a cross-site form cannot send application/json
        same = await client.post(
            "/api/instances/x/terminate",
            json={},
            headers={"Origin": str(client.make_url("")).rstrip("/")},
        )
        assert same.status == 404  # past every check: the instance does not exist


async def test_without_a_token_only_loopback_host_names_are_served(
    memory_backend: InMemoryBackend,
) -> None:
    async with dashboard(memory_backend) as client:
        rebound = await client.get("/api/instances", headers={"Host": "evil.example:8080"})
        assert rebound.status == 403
        lookalike = await client.get("/api/instances", headers={"Host": "127.0.0.1.evil.example"})
        assert lookalike.status == 403
        local = await client.get("/api/instances", headers={"Host": "localhost:8080"})
        assert local.status == 200
        ipv6 = await client.get("/api/instances", headers={"Host": "[::1]:8080"})
        assert ipv6.status == 200


async def test_read_only_refuses_actions_and_hides_them(memory_backend: InMemoryBackend) -> None:
    async with dashboard(memory_backend, read_only=True) as client:
        refused = await client.post("/api/purge", json={"status": ["Completed"]})
        assert refused.status == 403
        assert "read-only" in (await refused.json())["error"]["message"]
        page = await (await client.get("/instances/%3Cscript%3Ealert('x')%3C%2Fscript%3E")).text()
        assert "Terminate" not in page and 'id="actions"' not in page
        assert "read-only" in page


async def test_hostile_ids_and_payloads_are_escaped(memory_backend: InMemoryBackend) -> None:
    async with dashboard(memory_backend) as client:
        for path in ("/instances", "/instances/%3Cscript%3Ealert('x')%3C%2Fscript%3E"):
            html = await (await client.get(path)).text()
            assert HOSTILE not in html and "<b>bold</b>" not in html
            assert "&lt;script&gt;" in html
        detail = await (await client.get("/instances/%3Cscript%3Ealert('x')%3C%2Fscript%3E")).text()
        assert "<img src=x" not in detail and "&lt;img src=x" in detail


async def test_every_response_has_security_headers(memory_backend: InMemoryBackend) -> None:
    async with dashboard(memory_backend) as client:
        for path in ("/", "/api/instances", "/api/missing", "/instances/unknown"):
            response = await client.get(path)
            csp = response.headers["Content-Security-Policy"]
            assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
            assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_an_empty_token_is_refused(memory_backend: InMemoryBackend) -> None:
    with pytest.raises(ValueError, match="token"):
        create_app(memory_backend, token="  ")


@pytest.mark.parametrize(
    "host", ["0.0.0.0", "::", "192.168.1.20", "dashboard.example.org", "127.0.0.1.example.org"]
)
def test_non_loopback_binds_need_a_token(host: str) -> None:
    with pytest.raises(BindRefused, match="--token"):
        check_bind(host, None)
    check_bind(host, TOKEN)


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "localhost", "::1"])
def test_loopback_binds_need_no_token(host: str) -> None:
    check_bind(host, None)


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/instances?x=1", "/instances?x=1"),
        ("//evil.example/", "/"),
        ("https://evil.example", "/"),
        ("/\\evil.example", "/"),
        ("", "/"),
    ],
)
def test_login_redirects_only_to_local_paths(target: str, expected: str) -> None:
    assert safe_next(target) == expected
