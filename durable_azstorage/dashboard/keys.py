"""Typed keys of what ``create_app`` stores in the aiohttp application."""

from __future__ import annotations

from aiohttp import web

from durable_azstorage.dashboard.hub import Hub
from durable_azstorage.dashboard.rendering import Renderer
from durable_azstorage.dashboard.security import Security

HUB = web.AppKey("hub", Hub)
SECURITY = web.AppKey("security", Security)
RENDERER = web.AppKey("renderer", Renderer)
