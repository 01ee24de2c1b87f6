"""A synchronous azure-identity credential, usable by the backend's async (``.aio``) clients.

Users of the synchronous ``TaskHubClient`` naturally hold a sync credential
(``azure.identity.DefaultAzureCredential()``); the backend always talks to storage through
the ``.aio`` clients, whose authentication policy awaits ``get_token``. This adapter runs the
sync credential's token requests on a worker thread, so a slow token fetch (a managed-identity
endpoint, the Azure CLI) never blocks the event loop. Async credentials are used as given.
"""

from __future__ import annotations

import asyncio
import inspect
from typing import Any


class AsyncFromSyncCredential:
    """``get_token`` (and ``get_token_info`` when the wrapped one has it) awaited off-loop."""

    def __init__(self, credential: Any) -> None:
        self._credential = credential
        if callable(getattr(credential, "get_token_info", None)):
            self.get_token_info = self._get_token_info

    @staticmethod
    def wraps(credential: Any) -> bool:
        """True for a credential with a synchronous ``get_token`` (it needs this adapter)."""
        get_token = getattr(credential, "get_token", None)
        return callable(get_token) and not inspect.iscoroutinefunction(get_token)

    async def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        return await asyncio.to_thread(self._credential.get_token, *scopes, **kwargs)

    async def _get_token_info(self, *scopes: str, options: Any = None) -> Any:
        return await asyncio.to_thread(self._credential.get_token_info, *scopes, options=options)

    async def close(self) -> None:
        """The wrapped credential belongs to the caller: it is not closed here."""

    async def __aenter__(self) -> AsyncFromSyncCredential:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


__all__ = ["AsyncFromSyncCredential"]
