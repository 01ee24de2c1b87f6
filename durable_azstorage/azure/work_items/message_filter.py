"""Which received control messages become part of an orchestration work item.

Applied to an instance's buffered messages against its committed history (the sentinel):

* an ``ExecutionStarted`` for an instance without history is applied; one for an instance
  with history starts a new execution only if the Instances row names that execution (the
  client replaced the instance), or if the current execution ended and the start comes from
  a parent (a parent's retry policy starts the same child id again; each attempt's start
  carries its own execution id, while a start re-sent by the parent's recovery carries the
  original one, see ``model.outbound.child_execution_id``); otherwise it is a duplicate and
  discarded. A start the instance already ran is never applied again: that is the current
  execution's id, or the id of the first generation of its continue-as-new chain (what a
  parent's re-sent start carries after the child continued as new), or a parent's start of
  an earlier attempt of the task this chain answers (``ExecutionStarted.already_ran``);
* messages addressed to another execution than the live one (zombies of a replaced or
  continued-as-new execution) are discarded, and so is every non-start message for an
  execution that already ended;
* messages for an instance that has no history yet wait (are deferred) while its Instances
  row is Pending — an event raised before the start runs after it — and are discarded when
  the instance does not exist; likewise, messages for an ended instance that a client
  replaced with a new execution not started yet wait for that start. They wait as long as
  the row stays Pending (a start scheduled far ahead is honoured); terminating or purging
  the instance ends the wait.

Every discard is logged by the caller with its reason; nothing here raises for bad input.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from durable_azstorage.azure.messaging.queues import ReceivedMessage
from durable_azstorage.azure.tracking.history_store import Sentinel
from durable_azstorage.model.history import ExecutionStarted, HistoryEvent
from durable_azstorage.model.state import InstanceState
from durable_azstorage.model.status import OrchestrationStatus

RowGetter = Callable[[], Awaitable[InstanceState | None]]
"""Reads the instance's Instances row (at most once per work item)."""

DEFAULT_DEFER = timedelta(seconds=2)


@dataclass(slots=True)
class Filtered:
    """``keep`` goes into the work item (the applied start first); ``discard`` is deleted;
    ``defer`` is hidden for ``defer_delay``. ``fresh``: ``start`` replaces the stored
    execution (its rows are rewritten from index 0)."""

    keep: list[ReceivedMessage] = field(default_factory=list)
    discard: list[tuple[ReceivedMessage, str]] = field(default_factory=list)
    defer: list[ReceivedMessage] = field(default_factory=list)
    defer_delay: timedelta = DEFAULT_DEFER
    fresh: bool = False
    start: ReceivedMessage | None = None


async def filter_messages(
    sentinel: Sentinel,
    messages: list[ReceivedMessage],
    *,
    instance_row: RowGetter,
    max_delay: timedelta,
    history: Sequence[HistoryEvent],
    entity: bool = False,
) -> Filtered:
    """Split ``messages`` (decoded, in delivery order) as the module docstring describes.

    ``history`` is the current execution's committed events (its ``ExecutionStarted`` tells
    which starts this instance already ran). ``entity``: the instance is an entity, which
    exists from its first message on (it has no start message).
    """
    out = Filtered()
    running = next((e for e in history if isinstance(e, ExecutionStarted)), None)
    starts = [m for m in messages if isinstance(event_of(m), ExecutionStarted)]
    others = [m for m in messages if m not in starts]
    current = sentinel.execution_id
    if current is None:
        out.start = starts[0] if starts else None
        if len(starts) > 1:
            row = await instance_row()
            wanted = row.execution_id if row is not None else None
            out.start = next((m for m in starts if execution_of(m) == wanted), starts[0])
    else:
        for candidate in starts:
            if execution_of(candidate) == current:
                continue
            event = event_of(candidate)
            if (
                running is not None
                and isinstance(event, ExecutionStarted)
                and running.already_ran(event)
            ):
                continue  # stale: the start of this chain, or of an earlier attempt
            row = await instance_row()
            if row is not None and row.execution_id == execution_of(candidate):
                out.start, out.fresh = candidate, True
            elif _new_attempt(candidate, sentinel):
                out.start, out.fresh = candidate, True
    for candidate in starts:
        if candidate is not out.start:
            out.discard.append((candidate, "duplicate or superseded ExecutionStarted"))
    if out.start is not None:
        out.keep.append(out.start)
    if current is None and out.start is None:
        if entity:
            out.keep.extend(others)
        elif others:
            await _defer_or_drop(out, others, instance_row, max_delay)
        return out
    live = execution_of(out.start) if out.start is not None else current
    ended = (
        not out.fresh
        and out.start is None
        and sentinel.runtime_status is not None
        and sentinel.runtime_status.is_terminal
    )
    restarting = ended and await _restart_pending(others, current, instance_row)
    for m in others:
        target = execution_of(m)
        if target is not None and target != live:
            out.discard.append((m, f"for execution {target}, current is {live}"))
        elif restarting and target is None:
            out.defer.append(m)  # for the new execution, once its start has run
        elif ended:
            status = sentinel.runtime_status.value if sentinel.runtime_status else "?"
            out.discard.append((m, f"the execution already ended ({status})"))
        else:
            out.keep.append(m)
    return out


async def _restart_pending(
    others: list[ReceivedMessage], current: str | None, instance_row: RowGetter
) -> bool:
    """Whether the ended instance was replaced by a new execution that has not started yet
    (a client restart, maybe scheduled later): messages addressed to the instance wait for
    it instead of being dropped with the ended one."""
    if not any(execution_of(m) is None for m in others):
        return False
    row = await instance_row()
    return (
        row is not None
        and row.runtime_status is OrchestrationStatus.PENDING
        and row.execution_id != current
    )


def _new_attempt(candidate: ReceivedMessage, sentinel: Sentinel) -> bool:
    """A parent's start of another execution of a child whose current execution ended."""
    event = event_of(candidate)
    status = sentinel.runtime_status
    return (
        isinstance(event, ExecutionStarted)
        and event.parent is not None
        and status is not None
        and status.is_terminal
    )


async def _defer_or_drop(
    out: Filtered, others: list[ReceivedMessage], instance_row: RowGetter, max_delay: timedelta
) -> None:
    row = await instance_row()
    if row is None or row.runtime_status is not OrchestrationStatus.PENDING:
        out.discard.extend((m, "no such instance") for m in others)
        return
    out.defer.extend(others)  # wait for the ExecutionStarted
    if row.scheduled_start_time is not None:
        wait = row.scheduled_start_time - datetime.now(timezone.utc)
        out.defer_delay = min(max(wait, DEFAULT_DEFER), max_delay)


def event_of(received: ReceivedMessage) -> HistoryEvent | None:
    return received.message.event if received.message is not None else None


def execution_of(received: ReceivedMessage | None) -> str | None:
    if received is None or received.message is None:
        return None
    return received.message.instance.execution_id


def kind_of(received: ReceivedMessage) -> str:
    event = event_of(received)
    return type(event).__name__ if event is not None else "undecodable"
