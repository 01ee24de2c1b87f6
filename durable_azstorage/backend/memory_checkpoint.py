"""The in-memory backend's record of committed episodes, so a crash between checkpoint steps
can be finished later exactly as ARCHITECTURE.md §5 promises.

Step 1 of a commit (the ETag-guarded history write) files a ``CommittedEpisode``: the ids of
the queue messages it consumed, its exact outbox (the messages it must send) and the state it
must leave. Steps 2–4 send, write the state and delete the consumed messages. A process that
dies in between leaves its consumed messages queued; when one of them is delivered again the
backend finds its episode here (``episode_of``) and finishes *that* episode instead of handing
the message to a worker: it sends the outbox if it was not sent, writes the state unless a
newer episode already did, and deletes the message.

An entry lives exactly as long as one of its consumed messages is still queued (that is as
long as it can be redelivered), so no id is ever forgotten early and nothing grows without
bound. Azure cannot keep an exact outbox cheaply and re-derives the messages from history;
in memory the outbox is free and lets recovery send each message exactly once.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime

from durable_azstorage.backend.memory_activities import ActivityQueue
from durable_azstorage.backend.memory_control import ControlQueues
from durable_azstorage.backend.memory_queues import Lock, LockToken, StoredMessage
from durable_azstorage.backend.protocol import OrchestrationCommit
from durable_azstorage.model.history import HistoryEvent
from durable_azstorage.model.messages import TaskMessage
from durable_azstorage.model.state import InstanceState
from durable_azstorage.serialization.codec import (
    decode_event,
    decode_message,
    decode_state,
    encode_event,
    encode_message,
    encode_state,
)

log = logging.getLogger(__name__)

CheckpointHook = Callable[[str, str], Awaitable[None]]
"""``hook(step, instance_id)`` awaited after each checkpoint step (``history``, ``messages``,
``instance``), the same seam as the Azure backend's. A hook that raises stands for the process
dying (or a storage call failing) right there: nothing after it happens and the lock is kept."""

DeleteAudit = Callable[[str, str, object, str], None]
"""``audit(instance_id, message_text, lock_token, reason)`` for every control message the
backend deletes: ``consumed`` (step 4), ``recovered`` (a redelivery finished its episode) or
``dropped`` (no such instance), ``void`` (a carried result whose request was received again)
or ``answered`` (a result of a request whose earlier result a committed episode applied, found
by recovery). ``lock_token`` is the token of the consuming work item, or None. Test harnesses check it against the episodes they saw commit."""


@dataclass(slots=True, eq=False)
class InstanceRecord:
    """Stored data of one instance id: the current execution's history and its state.

    ``state_episode`` orders state writes: a late write of an older episode is skipped."""

    history: list[HistoryEvent] = field(default_factory=list)
    state: InstanceState | None = None
    state_episode: int = 0


@dataclass(slots=True, eq=False)
class CommittedEpisode:
    """One episode past step 1. ``record`` is the instance record it wrote into (compared by
    identity: a purge or a replacing create makes its state repair moot). An episode that
    did not change the history (every message discarded) writes no state: its state is a copy
    of the stored one, possibly stale after a crash, and the history did not move."""

    number: int
    instance_id: str
    token: LockToken
    record: InstanceRecord
    state: InstanceState
    outbox: tuple[TaskMessage, ...]
    changed_history: bool = True
    sent: bool = False
    pending: set[int] = field(default_factory=set)


def validated(
    commit: OrchestrationCommit, instance_id: str
) -> tuple[list[HistoryEvent], InstanceState, tuple[TaskMessage, ...]]:
    """Copies of the commit's events, state and outbox, each through the codec, so that a
    commit that cannot be stored fails before the first write (and changes nothing)."""
    events = [decode_event(encode_event(e)) for e in commit.new_events]
    state = decode_state(encode_state(commit.state))
    commit.check_for(instance_id)
    outbox = tuple(decode_message(encode_message(m)) for m in commit.outbound_messages)
    return events, state, outbox


class Checkpoints:
    """Committed episodes by the id of each consumed message that is still queued, and the
    steps 2–4 that finish an episode (run by the commit itself, or by a recovery).

    Callers hold the backend's mutex.
    """

    def __init__(
        self,
        *,
        instances: dict[str, InstanceRecord],
        control: ControlQueues,
        activities: ActivityQueue,
        enqueue: Callable[[TaskMessage, datetime], None],
        now: Callable[[], datetime],
        audit: Callable[[], DeleteAudit | None],
    ) -> None:
        self._instances = instances
        self._control = control
        self._activities = activities
        self._enqueue = enqueue
        self._now = now
        self._audit = audit
        self._numbers = itertools.count(1)
        self._by_message: dict[int, CommittedEpisode] = {}

    def next_number(self) -> int:
        """Episode numbers increase across the whole backend, so they order every state write
        of an instance id (also across a purge and a re-create)."""
        return next(self._numbers)

    def record(self, episode: CommittedEpisode, consumed: Iterable[StoredMessage]) -> None:
        """Step 1 happened: remember which messages ``episode`` consumed."""
        for message in consumed:
            ids = [message.id]
            if message.carrier is not None:  # its request may come back and run again
                ids.append(message.carrier.request.id)
            for message_id in ids:
                episode.pending.add(message_id)
                self._by_message[message_id] = episode

    def send_outbox(self, episode: CommittedEpisode) -> None:
        """Step 2, once per episode."""
        if episode.sent:
            return
        now = self._now()
        for message in episode.outbox:
            self._enqueue(message, now)
        episode.sent = True

    def write_state(self, episode: CommittedEpisode) -> None:
        """Step 3: write the episode's state unless the instance was replaced or purged since,
        or a newer episode already wrote its own (the state never goes backwards)."""
        record = self._instances.get(episode.instance_id)
        if not episode.changed_history:
            return
        if record is episode.record and record.state_episode < episode.number:
            record.state = episode.state
            record.state_episode = episode.number

    def delete(
        self, instance_id: str, messages: list[StoredMessage], token: object, reason: str
    ) -> None:
        """Step 4 (or a drop): delete those of ``messages`` still queued and forget them."""
        audit = self._audit()
        for message in self._control.delete(instance_id, messages):
            forget = [message.id]
            if message.carrier is not None:
                self._activities.drop_carrier(message.carrier)
                forget.append(message.carrier.request.id)
            if message.answers is not None:
                forget.append(message.answers)
            for message_id in forget:
                if message_id != message.id and self._activities.has_request(message_id):
                    continue  # being run again: its result may still come back
                episode = self._by_message.pop(message_id, None)
                if episode is not None:
                    episode.pending.discard(message_id)
            if audit is not None:
                audit(instance_id, message.text, token, reason)

    def recover(self, instance_id: str, lock: Lock) -> bool:
        """Finish the committed episodes whose consumed messages ``lock`` received again.

        Returns False when there were none (the lock is a fresh work item). Otherwise the
        redelivered messages are deleted and any others are given back undelivered (their
        ``dequeue_count`` restored), so that the caller picks work again from scratch.
        """
        found = [(m, e) for m in lock.messages if (e := self._episode_of(m)) is not None]
        if not found:
            return False
        for episode in sorted({id(e): e for _, e in found}.values(), key=lambda e: e.number):
            log.warning(
                "orchestration %r: consumed message(s) of committed episode %d redelivered; "
                "finishing that episode (outbox %s, state repaired if newest)",
                instance_id,
                episode.number,
                "already sent" if episode.sent else "sent now",
            )
            self.send_outbox(episode)
            self.write_state(episode)
            mine = [m for m, e in found if e is episode]
            consumed = [m for m in mine if m.id in self._by_message]
            answers = [m for m in mine if m.id not in self._by_message]
            self.delete(instance_id, consumed, episode.token, "recovered")
            self.delete(instance_id, answers, episode.token, "answered")
        redelivered = {m.id for m, _ in found}
        lock.messages = [m for m in lock.messages if m.id not in redelivered]
        for message in lock.messages:
            message.dequeue_count -= 1  # this delivery never reached a worker
        self._control.release(instance_id, lock, self._now())
        return True

    def _episode_of(self, message: StoredMessage) -> CommittedEpisode | None:
        """The committed episode that consumed ``message``, or an earlier result of the
        request ``message`` answers or is carried by (as Azure finds it by the request's id)."""
        found = self._by_message.get(message.id)
        if found is None and message.answers is not None:
            found = self._by_message.get(message.answers)
        if found is None and message.carrier is not None:
            found = self._by_message.get(message.carrier.request.id)
        return found

    def __len__(self) -> int:
        return len(self._by_message)
