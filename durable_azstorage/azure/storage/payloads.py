"""Large payloads: gzip blobs in ``{hub}-largemessages`` for what a queue or table cannot hold.

Queue messages above 45 KiB (UTF-8; 64 KiB limit less base64's 4/3) and table properties above
60 KiB (UTF-16, the service's accounting; 64 KiB limit less headroom) are stored here, as in
DTFx (DTFX_REFERENCE.md §4). Every blob of an instance lives under ``{escaped instance id}/``
so that purge deletes them all with one listing; names carry a random part so two writers
racing on the same row (split brain) never overwrite each other's blob.
"""

from __future__ import annotations

import asyncio
import gzip
import logging
import secrets
import uuid
from collections import OrderedDict
from collections.abc import Iterable

from azure.core.exceptions import ResourceNotFoundError
from azure.storage.blob import ContentSettings
from azure.storage.blob.aio import ContainerClient

from durable_azstorage.azure.storage.naming import escape_key, unescape_key
from durable_azstorage.azure.storage.retry import TransientRetry
from durable_azstorage.model.errors import DurableTaskError

MESSAGE_OFFLOAD_BYTES = 45 * 1024
"""Queue messages whose UTF-8 JSON is larger than this go to a blob."""

PROPERTY_OFFLOAD_BYTES = 60 * 1024
"""Table properties whose UTF-16 size is larger than this go to a blob."""

_DELETE_CONCURRENCY = 16
_log = logging.getLogger(__name__)
_CONTENT = ContentSettings(content_type="application/gzip")


class PayloadNotFoundError(DurableTaskError, LookupError):
    """A row or message references a payload blob that does not exist (purged meanwhile?)."""

    def __init__(self, container: str, blob_name: str) -> None:
        super().__init__(
            f"large payload blob {blob_name!r} is missing from container {container!r}"
        )
        self.blob_name = blob_name


def needs_message_offload(text: str) -> bool:
    """True if ``text`` is too large for a queue message (> 45 KiB as UTF-8)."""
    if len(text) > MESSAGE_OFFLOAD_BYTES:
        return True
    if len(text) * 4 <= MESSAGE_OFFLOAD_BYTES:
        return False
    return len(text.encode("utf-8")) > MESSAGE_OFFLOAD_BYTES


def needs_property_offload(text: str) -> bool:
    """True if ``text`` is too large for a table property (> 60 KiB as UTF-16)."""
    if len(text) * 2 > PROPERTY_OFFLOAD_BYTES:
        return True
    if len(text) * 4 <= PROPERTY_OFFLOAD_BYTES:
        return False
    return len(text.encode("utf-16-le")) > PROPERTY_OFFLOAD_BYTES


def instance_prefix(instance_id: str) -> str:
    """The folder holding every payload blob of ``instance_id`` (what purge deletes)."""
    return f"{escape_key(instance_id)}/"


def instance_of_blob(blob_name: str) -> str | None:
    """The instance whose folder holds ``blob_name`` (inverse of ``instance_prefix``), or
    None for a name outside any instance folder."""
    folder, slash, _ = blob_name.partition("/")
    if not slash or not folder:
        return None
    try:
        return unescape_key(folder)
    except ValueError:
        return None


def message_blob_name(instance_id: str, event_type: str) -> str:
    return f"{instance_prefix(instance_id)}message-{uuid.uuid4().hex}-{event_type}.json.gz"


def history_blob_name(instance_id: str, row_key: str, event_type: str, prop: str) -> str:
    return (
        f"{instance_prefix(instance_id)}history-{row_key}-{event_type}-"
        f"{secrets.token_hex(4).upper()}-{prop}.json.gz"
    )


def instance_blob_name(instance_id: str, column: str) -> str:
    return f"{instance_prefix(instance_id)}instance-{secrets.token_hex(4).upper()}-{column}.json.gz"


class BlobLedger:
    """Which payload blobs the stored rows of each instance reference, as far as this process
    saw (bounded LRU). Lets a store delete the blobs a rewrite made unreachable (the previous
    generation after continue-as-new, the previous version of an Instances row) without a
    listing; what it never saw is left for purge.
    """

    def __init__(self, capacity: int = 10_000) -> None:
        self._capacity = capacity
        self._entries: OrderedDict[str, tuple[str | None, frozenset[str]]] = OrderedDict()

    def get(self, instance_id: str, version: str | None = None) -> frozenset[str] | None:
        """The names recorded for ``instance_id`` at ``version`` (an ETag), else None."""
        entry = self._entries.get(instance_id)
        if entry is None or entry[0] != version:
            return None
        self._entries.move_to_end(instance_id)
        return entry[1]

    def record(self, instance_id: str, names: frozenset[str], version: str | None = None) -> None:
        self._entries[instance_id] = (version, names)
        self._entries.move_to_end(instance_id)
        while len(self._entries) > self._capacity:
            self._entries.popitem(last=False)

    def forget(self, instance_id: str) -> None:
        self._entries.pop(instance_id, None)


class PayloadStore:
    """Reads and writes gzip-compressed UTF-8 text blobs in the large-messages container."""

    def __init__(self, container: ContainerClient, *, retry: TransientRetry | None = None) -> None:
        self._container = container
        self._retry = retry if retry is not None else TransientRetry()

    @property
    def container_name(self) -> str:
        return str(self._container.container_name)

    async def put(self, blob_name: str, text: str) -> str:
        """Store ``text`` gzip-compressed under ``blob_name`` (overwriting); returns the name."""
        data = gzip.compress(text.encode("utf-8"), compresslevel=6, mtime=0)
        await self._retry.call(
            lambda: self._container.upload_blob(
                blob_name, data, overwrite=True, content_settings=_CONTENT
            )
        )
        return blob_name

    async def get(self, blob_name: str) -> str:
        """The text stored under ``blob_name``; ``PayloadNotFoundError`` if it is gone."""

        async def download() -> bytes:
            stream = await self._container.download_blob(blob_name)
            return await stream.readall()

        try:
            data = await self._retry.call(download)
        except ResourceNotFoundError:
            raise PayloadNotFoundError(self.container_name, blob_name) from None
        try:
            return gzip.decompress(data).decode("utf-8")
        except (OSError, EOFError, UnicodeDecodeError) as exc:
            raise ValueError(
                f"large payload blob {blob_name!r} is not gzip-compressed UTF-8 text: {exc}"
            ) from exc

    async def delete(self, blob_names: list[str]) -> int:
        """Delete the named blobs (missing ones are fine); returns how many were deleted."""
        gate = asyncio.Semaphore(_DELETE_CONCURRENCY)

        async def delete_one(name: str) -> int:
            async with gate:
                try:
                    await self._retry.call(lambda: self._container.delete_blob(name))
                except ResourceNotFoundError:
                    return 0
                return 1

        return sum(await asyncio.gather(*(delete_one(n) for n in blob_names)))

    async def discard(self, blob_names: Iterable[str]) -> None:
        """Best-effort ``delete`` for garbage: failures are logged, never raised."""
        names = list(blob_names)
        if not names:
            return
        try:
            await self.delete(names)
        except Exception as exc:  # leftovers are removed by purge
            _log.warning("could not delete %d unreferenced payload blob(s): %r", len(names), exc)

    async def delete_prefix(self, prefix: str) -> int:
        """Delete every blob whose name starts with ``prefix``; returns how many were deleted.

        A missing container counts as empty (the hub was deleted).
        """
        if not prefix:
            raise ValueError("prefix: must not be empty (that would delete every payload)")

        async def list_names() -> list[str]:
            return [b.name async for b in self._container.list_blobs(name_starts_with=prefix)]

        try:
            names = await self._retry.call(list_names)
        except ResourceNotFoundError:
            return 0
        return await self.delete(names)


__all__ = [
    "BlobLedger",
    "MESSAGE_OFFLOAD_BYTES",
    "PROPERTY_OFFLOAD_BYTES",
    "PayloadNotFoundError",
    "PayloadStore",
    "history_blob_name",
    "instance_blob_name",
    "instance_prefix",
    "message_blob_name",
    "instance_of_blob",
    "needs_message_offload",
    "needs_property_offload",
]
