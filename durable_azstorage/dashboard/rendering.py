"""HTML rendering: the Jinja2 environment (autoescape always on) and its filters.

Jinja2 comes with the ``dashboard`` extra; importing this module without it raises an
``ImportError`` that names the extra.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

from aiohttp import web

try:
    import jinja2
except ImportError as exc:  # pragma: no cover - exercised by the CLI test without the extra
    raise ImportError(
        'the dashboard needs the "dashboard" extra: pip install "durable-azstorage[dashboard]"',
        name=exc.name,
    ) from exc


def _when(value: datetime | str | None) -> str:
    if value is None:
        return "-"
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.strftime("%Y-%m-%d %H:%M:%S")


def _duration(value: timedelta | None) -> str:
    if value is None:
        return "running"
    seconds = value.total_seconds()
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    return f"{seconds / 60:.1f} min"


def _pretty(value: Any) -> str:
    """A decoded payload for a <pre>: JSON indented, text as is (escaped by the template)."""
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    return json.dumps(value, indent=2, ensure_ascii=False)


def _segment(value: str) -> str:
    """An id as one URL path segment (``/`` and everything else percent-encoded)."""
    return quote(value, safe="")


class Renderer:
    def __init__(self, globals_: dict[str, Any]) -> None:
        self._env = jinja2.Environment(
            loader=jinja2.PackageLoader("durable_azstorage.dashboard", "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self._env.filters.update(when=_when, duration=_duration, pretty=_pretty, segment=_segment)
        self._env.globals.update(globals_)

    def page(self, template: str, *, status: int = 200, **context: Any) -> web.Response:
        html = self._env.get_template(template).render(**context)
        return web.Response(text=html, status=status, content_type="text/html", charset="utf-8")
