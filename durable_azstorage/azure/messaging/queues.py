"""``MessageQueue``: one Azure queue carrying ``TaskMessage`` envelopes.

Messages are the codec's versioned JSON envelope, sent as UTF-8 text with an infinite TTL
(``time_to_live=-1``: a timer due in a year must not expire in the queue). A body above
45 KiB (UTF-8) is gzipped to the large-message container and the queue carries a small
envelope ``{"v": 1, "blob": "<name>"}`` instead; ``receive`` resolves it. Delays are clamped
to ``max_delay`` (Azure caps visibility at 7 days): the provider re-sends a timer that arrives
before its ``fire_at`` (timer chaining).

A message that cannot be decoded (malformed, unknown format version, or a payload blob that
is gone, e.g. purged with its instance while the message was queued) is still returned
(``message`` None, ``error`` set), so the caller moves it alone to the poison store and the
rest of its batch proceeds. A message whose payload cannot be read *now* (a transient error
that outlived the retries) is left out of the batch: it stays hidden and comes back after
its visibility timeout, without holding up its neighbours.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from typing import Any

from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.storage.queue.aio import QueueClient

from durable_azstorage.azure.storage.naming import escape_key
from durable_azstorage.azure.storage.payloads import (
    PayloadNotFoundError,
    PayloadStore,
    needs_message_offload,
)
from durable_azstorage.azure.storage.retry import TransientRetry
from durable_azstorage.model.history import event_type_name
from durable_azstorage.model.messages import TaskMessage
from durable_azstorage.serialization.codec import (
    FORMAT_VERSION,
    decode_message_envelope,
    deferral_count,
    encode_message,
    with_deferral,
)

log = logging.getLogger(__name__)

_UNDECODABLE = (ValueError, TypeError, KeyError, ResourceNotFoundError, PayloadNotFoundError)
"""What makes a message undecodable for good (quarantined), unlike a transient read error."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ReceivedMessage:
    """A received queue message; ``pop_receipt`` proves the receive (delete/update need it).

    ``next_visible_on`` is when the message becomes visible again (the end of its lock),
    computed locally from the request's start: the service reports it in whole seconds.

    ``message`` is None when the body could not be decoded; ``error`` then says why and
    ``raw`` holds the body as received. ``payload_blob`` names the large-message blob the
    body was (or should have been) read from. ``answers`` is the id of the activity request a
    result message answers (see ``checkpoint``). ``carried_for`` names the control queue of a
    result delivered in process, carried by its request's work-item message
    (``activity_locks``); the message then belongs to that queue's partition. ``carrier``
    is set on an item that exists only in this process (an activity dispatched locally, or
    its result): the id of the queue message whose lock is its durable record
    (``local_carriers``); its own ``message_id`` is a name, not a queue message.
    """

    queue_name: str
    message_id: str
    pop_receipt: str
    dequeue_count: int
    inserted_on: datetime | None
    next_visible_on: datetime | None
    raw: str
    message: TaskMessage | None
    sequence_number: int | None = None
    error: str | None = None
    payload_blob: str | None = None
    answers: str | None = None
    carried_for: str | None = None
    deferrals: int = 0
    """Deliveries that were deferrals (``defer``), recorded in the message itself."""
    carrier: str | None = None
    row_etag: str | None = None
    """A client's start: the ETag of the Instances row it inserted (``MessageEnvelope``)."""
    new_instance: bool = False
    """A client's start of an instance it created (no restart): nothing to load at first."""

    @property
    def logged_id(self) -> str:
        """The id an episode log records for this message: a local item's carrier (whose
        redelivery after a crash must find the episode that consumed the item)."""
        return self.carrier or self.message_id

    @property
    def home(self) -> str:
        """The queue whose partition this message belongs to."""
        return self.carried_for or self.queue_name

    @property
    def consumed_as(self) -> tuple[str, ...]:
        """The ids an episode log may have recorded for this message: its own and, for a
        result sent through the queue, that of the request it answers (an episode may have
        consumed the same result delivered in process, carried by the request). None for a
        local item: it is never redelivered, and its carrier is recovered on its own."""
        if self.carrier is not None:
            return ()
        return (self.message_id,) if self.answers is None else (self.message_id, self.answers)

    @property
    def sort_key(self) -> tuple[float, int]:
        """DTFx order: insertion time, then the sender's sequence number."""
        ts = self.inserted_on.timestamp() if self.inserted_on is not None else 0.0
        return (ts, self.sequence_number or 0)


class MessageQueue:
    """Send, receive, delete and re-hide messages of one queue (transient errors retried)."""

    def __init__(
        self,
        client: QueueClient,
        payloads: PayloadStore,
        retry: TransientRetry,
        *,
        max_delay: timedelta,
    ) -> None:
        self.client = client
        self.name: str = client.queue_name
        self._payloads = payloads
        self._retry = retry
        self._max_delay = max_delay

    async def send(
        self,
        message: TaskMessage,
        *,
        delay: timedelta | None = None,
        sequence_number: int | None = None,
        answers: str | None = None,
        row_etag: str | None = None,
        new_instance: bool = False,
    ) -> None:
        """Enqueue ``message``, hidden for ``delay`` (clamped to ``[0, max_delay]``)."""
        text = encode_message(
            message,
            sequence_number=sequence_number,
            answers=answers,
            row_etag=row_etag,
            new_instance=new_instance,
        )
        if needs_message_offload(text):
            kind = event_type_name(message.event)
            blob = f"{escape_key(message.instance.instance_id)}/message-{uuid.uuid4().hex}-{kind}.json.gz"
            blob = await self._payloads.put(blob, text)
            text = json.dumps({"v": FORMAT_VERSION, "blob": blob}, separators=(",", ":"))
        await self.send_text(text, delay=delay)

    async def send_text(self, text: str, *, delay: timedelta | None = None) -> None:
        """Enqueue an already-encoded body (poison replay, re-sent timers)."""
        seconds = 0
        if delay is not None and delay > timedelta(0):
            seconds = int(min(delay, self._max_delay).total_seconds() + 0.999)
        await self._retry.call(
            lambda: self.client.send_message(text, visibility_timeout=seconds, time_to_live=-1)
        )

    async def receive(
        self, max_messages: int, visibility_timeout: timedelta
    ) -> list[ReceivedMessage]:
        """At most ``max_messages`` visible messages (one request), hidden for the timeout."""
        seconds = max(1, int(visibility_timeout.total_seconds()))

        async def one_page() -> list[Any]:
            pager = self.client.receive_messages(
                messages_per_page=max_messages,
                visibility_timeout=seconds,
                max_messages=max_messages,
            )
            async for page in pager.by_page():
                return [m async for m in page]
            return []

        hidden_until = datetime.now(timezone.utc) + timedelta(seconds=seconds)
        raw = await self._retry.call(one_page)
        decoded = await asyncio.gather(
            *(self._decode(m, hidden_until) for m in raw), return_exceptions=True
        )
        batch: list[ReceivedMessage] = []
        for message, result in zip(raw, decoded, strict=False):
            if isinstance(result, ReceivedMessage):
                batch.append(result)
            elif isinstance(result, Exception):
                log.warning(
                    "queue %s: message %s could not be read now (%r); it is retried after "
                    "its visibility timeout",
                    self.name,
                    message.id,
                    result,
                )
            else:
                raise result  # cancellation
        return batch

    async def delete(self, received: ReceivedMessage) -> bool:
        """Delete a received message; False if it was already gone (or re-received)."""
        try:
            await self._retry.call(
                lambda: self.client.delete_message(received.message_id, received.pop_receipt)
            )
        except ResourceNotFoundError:
            return False
        except HttpResponseError as exc:
            if exc.status_code in (400, 404):  # pop receipt mismatch: someone re-received it
                log.info("queue %s: message %s already gone", self.name, received.message_id)
                return False
            raise
        return True

    async def consume(self, received: ReceivedMessage) -> bool:
        """Delete a message that was processed, and then its payload blob if it had one:
        once the message is gone nothing reads the blob again (without this, an eternal
        orchestration's large messages would pile up until purge). False if already gone."""
        deleted = await self.delete(received)
        if deleted and received.payload_blob is not None:
            await self._payloads.discard([received.payload_blob])
        return deleted

    async def set_visibility(
        self, received: ReceivedMessage, timeout: timedelta
    ) -> ReceivedMessage:
        """Hide the message for ``timeout`` from now; returns it with the new pop receipt.

        Raises ``ResourceNotFoundError``/``HttpResponseError`` when the receipt is stale.
        """
        seconds = max(0, int(min(timeout, self._max_delay).total_seconds()))
        hidden_until = datetime.now(timezone.utc) + timedelta(seconds=seconds)
        updated = await self._retry.call(
            lambda: self.client.update_message(
                received.message_id, received.pop_receipt, visibility_timeout=seconds
            )
        )
        return replace(
            received,
            pop_receipt=updated.pop_receipt or received.pop_receipt,
            next_visible_on=hidden_until,
        )

    async def defer(self, received: ReceivedMessage, timeout: timedelta) -> None:
        """Give the message back by choice, visible again after ``timeout``: its text records
        one more deferral (same request as a visibility update), so that whichever process
        receives it next does not count this delivery toward poison."""
        seconds = max(0, int(min(timeout, self._max_delay).total_seconds()))
        content = with_deferral(received.raw)
        await self._retry.call(
            lambda: self.client.update_message(
                received.message_id,
                received.pop_receipt,
                visibility_timeout=seconds,
                content=content,
            )
        )

    async def _decode(self, raw: Any, hidden_until: datetime) -> ReceivedMessage:
        content = raw.content
        text = content.decode("utf-8") if isinstance(content, bytes) else str(content or "")
        message: TaskMessage | None = None
        sequence: int | None = None
        answers: str | None = None
        row_etag: str | None = None
        new_instance = False
        error: str | None = None
        blob: str | None = None
        try:
            body = text
            blob = offloaded_blob(text)
            if blob is not None:
                body = await self._payloads.get(blob)
            envelope = decode_message_envelope(body)
            message, sequence, answers = (
                envelope.message,
                envelope.sequence_number,
                envelope.answers,
            )
            row_etag, new_instance = envelope.row_etag, envelope.new_instance
        except _UNDECODABLE as exc:
            error = f"{type(exc).__name__}: {exc}"
        return ReceivedMessage(
            queue_name=self.name,
            message_id=raw.id,
            pop_receipt=raw.pop_receipt,
            dequeue_count=raw.dequeue_count or 1,
            inserted_on=raw.inserted_on,
            next_visible_on=hidden_until,
            raw=text,
            message=message,
            sequence_number=sequence,
            error=error,
            payload_blob=blob,
            answers=answers,
            row_etag=row_etag,
            new_instance=new_instance,
            deferrals=deferral_count(text),
        )


def offloaded_blob(text: str) -> str | None:
    """The payload blob a queue body refers to (``{"v": 1, "blob": name}``), else None."""
    if '"blob"' not in text[:200]:
        return None
    try:
        doc = json.loads(text)
    except ValueError:
        return None
    if isinstance(doc, dict) and isinstance(doc.get("blob"), str) and "event" not in doc:
        return str(doc["blob"])
    return None
