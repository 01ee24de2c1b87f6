"""Who may see the dashboard and how state-changing requests are kept same-site.

* **Token.** With a token, every page and API call needs it: ``Authorization: Bearer T``
  (scripts) or the session cookie that ``POST /login`` sets (browsers). The cookie holds an
  HMAC of the token, never the token; it is HttpOnly and SameSite=Strict.
* **Host check.** Without a token the dashboard answers only requests whose ``Host`` is a
  loopback name (or one of ``allowed_hosts``): a web page cannot reach it through DNS
  rebinding, and mounting it on a public address without a token serves nobody.
* **Cross-site requests.** Only POST changes anything. A POST must carry
  ``Content-Type: application/json`` (a cross-site form or ``no-cors`` fetch cannot), an
  ``Origin``, if any, equal to the dashboard's own, and, when it comes with the session
  cookie, the page's CSRF token in ``X-CSRF-Token``. ``curl`` on loopback needs nothing else.
* **Read-only.** Every POST except ``/login`` is refused with 403.
* Responses carry a strict Content-Security-Policy (scripts and styles only from
  ``/static/``), so even a payload that slipped past escaping could not run.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from urllib.parse import quote

from aiohttp import web
from aiohttp.typedefs import Middleware

from durable_azstorage.dashboard.errors import ApiError

COOKIE = "durable_dashboard"
CSRF_HEADER = "X-CSRF-Token"
OPEN_PATHS = ("/login", "/static/")
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (``127.0.0.0/8``, ``::1``) only: a name
    such as ``127.0.0.1.example.org`` is not one (it could resolve anywhere)."""
    name = host.strip().lower().strip("[]")
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class Security:
    token: str | None = None
    read_only: bool = False
    allowed_hosts: frozenset[str] = frozenset()
    secret: bytes = field(default_factory=lambda: secrets.token_bytes(32))

    @property
    def csrf_token(self) -> str:
        return hmac.new(self.secret, b"csrf", hashlib.sha256).hexdigest()

    @property
    def session_value(self) -> str:
        token = (self.token or "").encode("utf-8")
        return hmac.new(self.secret, b"session:" + token, hashlib.sha256).hexdigest()

    def token_matches(self, candidate: str) -> bool:
        return self.token is not None and hmac.compare_digest(
            candidate.encode("utf-8"), self.token.encode("utf-8")
        )

    def has_session(self, request: web.Request) -> bool:
        cookie = request.cookies.get(COOKIE, "")
        return bool(cookie) and hmac.compare_digest(cookie, self.session_value)

    def has_bearer(self, request: web.Request) -> bool:
        scheme, _, credential = request.headers.get("Authorization", "").partition(" ")
        return scheme.lower() == "bearer" and self.token_matches(credential.strip())

    def authenticated(self, request: web.Request) -> bool:
        return self.token is None or self.has_bearer(request) or self.has_session(request)

    def host_allowed(self, request: web.Request) -> bool:
        if self.token is not None:
            return True
        host = _host_name(request.host)
        return is_loopback(host) or host in self.allowed_hosts

    def check_post(self, request: web.Request) -> None:
        """Refuse a POST that could come from another site (see the module docstring)."""
        origin = request.headers.get("Origin")
        if origin is not None and origin != f"{request.scheme}://{request.host}":
            raise ApiError(403, "cross-site request refused (Origin does not match)")
        if request.path == "/login":
            return
        if self.read_only:
            raise ApiError(403, "the dashboard is read-only (--read-only)")
        if request.content_type != "application/json":
            raise ApiError(415, "POST bodies must be JSON (Content-Type: application/json)")
        if self.has_session(request) and not hmac.compare_digest(
            request.headers.get(CSRF_HEADER, ""), self.csrf_token
        ):
            raise ApiError(403, f"missing or wrong {CSRF_HEADER} header")

    def login_cookie(self, response: web.StreamResponse, *, secure: bool) -> None:
        response.set_cookie(
            COOKIE,
            self.session_value,
            httponly=True,
            samesite="Strict",
            path="/",
            secure=secure,
        )


def _host_name(host: str) -> str:
    """``example.org:8080`` → ``example.org``; ``[::1]:8080`` → ``::1``."""
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def guard(
    security: Security, refuse: Callable[[web.Request, ApiError], web.StreamResponse]
) -> Middleware:
    """The middleware applying ``security`` to every request; ``refuse`` renders an error."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not security.host_allowed(request):
            return refuse(
                request,
                ApiError(
                    403, "this dashboard has no token, so it answers only loopback host names"
                ),
            )
        is_open = request.path.startswith(OPEN_PATHS)
        if not is_open and not security.authenticated(request):
            if request.path.startswith("/api/") or request.method != "GET":
                return refuse(request, ApiError(401, "a token is needed (Authorization: Bearer)"))
            raise web.HTTPSeeOther(f"/login?next={quote(request.path_qs, safe='')}")
        if request.method not in ("GET", "HEAD"):
            try:
                security.check_post(request)
            except ApiError as exc:
                return refuse(request, exc)
        return await handler(request)

    return middleware


def safe_next(target: str) -> str:
    """A post-login redirect target: a local path only (never ``//host`` or a URL)."""
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


async def harden(request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare`` hook: security headers on every response, errors included."""
    for name, value in (
        ("Content-Security-Policy", CSP),
        ("X-Content-Type-Options", "nosniff"),
        ("X-Frame-Options", "DENY"),
        ("Referrer-Policy", "same-origin"),
        ("Cache-Control", "no-store"),
    ):
        response.headers.setdefault(name, value)
