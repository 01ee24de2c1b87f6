"""Earlier executions' histories on Azure: one gzip blob per (instance, execution).

An episode that ends an execution by continue-as-new, or replaces it by a restart, hands its
history over (``OrchestrationCommit.ended_executions``). ``Checkpoint`` writes the blobs
*before* step 1 and names the kept executions in the sentinel's ``ArchivedExecutions``
(newest first) in step 1 itself, so no extra read is ever needed to know what is kept: a
crash before step 1 leaves a blob the re-run episode overwrites with the same execution's
history, and one after it loses nothing. Executions that fall out of the newest
``archived_executions`` are deleted after step 1 (best effort; a leftover is removed by purge,
which deletes the instance's whole blob folder). Cost: one blob write per archived execution,
one delete per dropped one; nothing for instances that never continue as new or restart.

Blobs live in the large-payload container under the instance's folder
(``{instance}/executions/{execution}.json.gz``), so purge and hub deletion remove them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from durable_azstorage.azure.storage.naming import escape_key
from durable_azstorage.azure.storage.payloads import (
    PayloadNotFoundError,
    PayloadStore,
    instance_prefix,
)
from durable_azstorage.model.archive import EndedExecution, retained
from durable_azstorage.model.history import HistoryEvent
from durable_azstorage.serialization.codec import decode_history, encode_history


def execution_blob_name(instance_id: str, execution_id: str) -> str:
    return f"{instance_prefix(instance_id)}executions/{escape_key(execution_id)}.json.gz"


class ExecutionBlobs:
    """Writes, reads and drops the archive blobs of one task hub's instances."""

    def __init__(self, payloads: PayloadStore, *, limit: int) -> None:
        self._payloads = payloads
        self.limit = limit

    async def store(
        self, instance_id: str, kept: Sequence[str], ended: Sequence[EndedExecution]
    ) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """Write the blobs of ``ended`` that stay among the newest (before step 1).

        ``kept``: the sentinel's list (newest first). Returns the new list for the sentinel
        and the names of the blobs to delete once step 1 committed. Raises ``ValueError``
        before any write if an event cannot be encoded.
        """
        now_kept, dropped = retained(kept, [e.execution_id for e in ended], self.limit)
        texts = {
            e.execution_id: encode_history(e.events) for e in ended if e.execution_id in now_kept
        }
        await asyncio.gather(
            *(
                self._payloads.put(execution_blob_name(instance_id, execution_id), text)
                for execution_id, text in texts.items()
            )
        )
        return now_kept, tuple(execution_blob_name(instance_id, e) for e in dropped)

    async def discard(self, blob_names: Sequence[str]) -> None:
        await self._payloads.discard(blob_names)

    async def read(self, instance_id: str, execution_id: str) -> list[HistoryEvent] | None:
        """The archived history, or None if no blob holds it (one blob read)."""
        try:
            text = await self._payloads.get(execution_blob_name(instance_id, execution_id))
        except PayloadNotFoundError:
            return None
        return decode_history(text)
