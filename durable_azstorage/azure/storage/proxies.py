"""HTTP proxies for the storage endpoints, resolved once per client instead of per request.

aiohttp's ``trust_env=True`` looks the proxy up for every request (environment, then
``~/.netrc`` through ``pathlib`` in a worker thread): about 10 % of a busy worker's CPU. The
session is created with ``trust_env=False`` and each client gets the proxy the environment
names for its endpoint (``HTTPS_PROXY``/``HTTP_PROXY``, honouring ``NO_PROXY``), once.
"""

from __future__ import annotations

import urllib.request
from urllib.parse import urlsplit


def proxies_for(url: str) -> dict[str, str] | None:
    """The ``proxies`` mapping azure-core's ``ProxyPolicy`` takes for ``url``; None when the
    environment names no proxy for it."""
    parts = urlsplit(url)
    configured = urllib.request.getproxies()
    proxy = configured.get(parts.scheme or "https")
    if not proxy or not parts.hostname:
        return None
    if urllib.request.proxy_bypass(parts.netloc or parts.hostname):
        return None
    return {parts.scheme or "https": proxy}


__all__ = ["proxies_for"]
