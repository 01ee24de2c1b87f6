"""The sentinel's outbox: outbound messages that the stored history can no longer re-derive.

No outbox is written for an ordinary episode: its messages follow from its committed events
(``model.outbound``), which stay in History. Two cases lose those events, so their messages
are kept here, per episode, for as long as the episode log remembers the episode:

* a continue-as-new episode that ran several generations commits only the last one; the
  messages the earlier generations sent (an event, a fire-and-forget activity, a child start
  issued just before ``continue_as_new``) are not implied by anything stored;
* a commit that replaces the execution (continue-as-new, a restart) overwrites the events of
  the episodes before it, whose consumed messages may still come back.

Stored as the sentinel's ``Outbox`` column, JSON ``{"<episode>": [message text, ...]}``; an
episode whose messages are large is stored as ``{"<episode>": "<blob name>"}`` in the
large-message container instead, so the sentinel row stays small.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from durable_azstorage.azure.storage.naming import escape_key
from durable_azstorage.azure.storage.payloads import PayloadStore
from durable_azstorage.model.messages import TaskMessage
from durable_azstorage.serialization.codec import decode_message_envelope, encode_message

INLINE_LIMIT = 8 * 1024  # characters of one episode's messages kept in the sentinel row

Entry = tuple[str, ...] | str  # message texts, or the name of the blob holding them


@dataclass(frozen=True, slots=True)
class Outbox:
    """Kept messages by episode number."""

    entries: Mapping[int, Entry]

    @classmethod
    def parse(cls, text: str | None) -> Outbox:
        if not text:
            return EMPTY_OUTBOX
        doc = json.loads(text)
        if not isinstance(doc, dict):
            raise ValueError("Outbox is not a JSON object")
        entries: dict[int, Entry] = {}
        for key, value in doc.items():
            if isinstance(value, str):
                entries[int(key)] = value
            elif isinstance(value, list) and all(isinstance(v, str) for v in value):
                entries[int(key)] = tuple(value)
            else:
                raise ValueError(f"Outbox entry {key!r} is neither a blob name nor a list")
        return cls(entries)

    def encode(self) -> str:
        if not self.entries:
            return ""
        doc = {str(k): (v if isinstance(v, str) else list(v)) for k, v in self.entries.items()}
        return json.dumps(doc, separators=(",", ":"))

    def keep_only(self, episodes: Iterable[int]) -> tuple[Outbox, list[str]]:
        """The entries of ``episodes``, and the blob names of the dropped entries."""
        wanted = set(episodes)
        kept = {k: v for k, v in self.entries.items() if k in wanted}
        dropped = [v for k, v in self.entries.items() if k not in wanted and isinstance(v, str)]
        return Outbox(kept), dropped

    def with_entry(self, episode: int, entry: Entry) -> Outbox:
        return Outbox({**self.entries, episode: entry})

    def __contains__(self, episode: object) -> bool:
        return episode in self.entries


EMPTY_OUTBOX = Outbox({})


async def make_entry(
    instance_id: str, messages: Sequence[TaskMessage], payloads: PayloadStore
) -> Entry:
    """The outbox entry for ``messages``: inline when small, else one blob."""
    texts = tuple(encode_message(m) for m in messages)
    if sum(len(t) for t in texts) <= INLINE_LIMIT:
        return texts
    name = f"{escape_key(instance_id)}/outbox-{uuid.uuid4().hex}.json.gz"
    return await payloads.put(name, json.dumps(list(texts), separators=(",", ":")))


async def entry_messages(entry: Entry, payloads: PayloadStore) -> list[TaskMessage]:
    texts: Sequence[str]
    if isinstance(entry, str):
        loaded = json.loads(await payloads.get(entry))
        if not isinstance(loaded, list):
            raise ValueError(f"outbox blob {entry!r} does not hold a list")
        texts = [str(t) for t in loaded]
    else:
        texts = entry
    return [decode_message_envelope(t).message for t in texts]


__all__ = ["EMPTY_OUTBOX", "INLINE_LIMIT", "Entry", "Outbox", "entry_messages", "make_entry"]
