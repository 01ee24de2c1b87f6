"""The sentinel's record of activities dispatched in process: which carrier stands for which.

A worker that commits an episode may run the episode's activities itself instead of sending
their requests through the work-item queue (``work_items.local_carriers``). Their durable
record is then the committed ``TaskScheduled`` events plus one queue message the worker
keeps hidden, the *carrier* (a message the episode consumed). If the worker dies, the carrier
reappears; its recovery must re-send a request for every task dispatched under it that has no
result yet. Step 1 records which tasks those are, in the same write as the events (free):

    sentinel column ``LocalTasks``: JSON ``{"<carrier message id>": [task id, ...]}``

An entry loses a task when a result for it is committed, and the column is emptied by a new
execution (results for an ended execution are never applied). The carrier id doubles as the
key by which triage recognises a redelivered carrier even after the episode log forgot it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from durable_azstorage.model.history import HistoryEvent, TaskCompleted, TaskFailed

MAX_CARRIERS = 16
"""Entries kept (newest first): an old entry only matters while its crashed holder's carrier
is on its way back, which takes one visibility timeout."""


@dataclass(frozen=True, slots=True)
class LocalTasks:
    """Task ids without a committed result, by the id of the carrier that stands for them."""

    by_carrier: Mapping[str, tuple[int, ...]]

    @classmethod
    def parse(cls, text: str) -> LocalTasks:
        """The column's value ("" for none); ``ValueError`` naming what is malformed."""
        if not text:
            return EMPTY
        value = json.loads(text)
        if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(v, list) and all(isinstance(t, int) for t in v)
            for k, v in value.items()
        ):
            raise ValueError(f"LocalTasks is not a map of carrier ids to task ids: {text[:80]!r}")
        return cls({k: tuple(v) for k, v in value.items()})

    def encode(self) -> str:
        if not self.by_carrier:
            return ""
        return json.dumps({k: list(v) for k, v in self.by_carrier.items()}, separators=(",", ":"))

    @property
    def carriers(self) -> frozenset[str]:
        return frozenset(self.by_carrier)

    def tasks_of(self, carrier_ids: Iterable[str]) -> set[int]:
        """The task ids the carriers among ``carrier_ids`` stand for."""
        return {t for c in carrier_ids for t in self.by_carrier.get(c, ())}

    def after(
        self,
        new_events: Sequence[HistoryEvent],
        *,
        new_execution: bool,
        carrier: str | None = None,
        dispatched: Iterable[int] = (),
    ) -> LocalTasks:
        """The record step 1 writes: tasks answered by ``new_events`` dropped (everything on
        a new execution), then ``dispatched`` added under ``carrier`` (newest first)."""
        answered = answered_tasks(new_events)
        kept: dict[str, tuple[int, ...]] = {}
        added = tuple(dispatched)
        if carrier is not None and added:
            earlier = () if new_execution else self.by_carrier.get(carrier, ())
            kept[carrier] = tuple(t for t in earlier if t not in answered) + added
        if not new_execution:
            for key, tasks in self.by_carrier.items():
                remaining = tuple(t for t in tasks if t not in answered)
                if key not in kept and remaining:
                    kept[key] = remaining
        return LocalTasks(dict(list(kept.items())[:MAX_CARRIERS]))


def answered_tasks(events: Iterable[HistoryEvent]) -> set[int]:
    """The task ids a result (TaskCompleted, TaskFailed) among ``events`` answers."""
    return {e.task_scheduled_id for e in events if isinstance(e, TaskCompleted | TaskFailed)}


EMPTY = LocalTasks({})

__all__ = ["EMPTY", "MAX_CARRIERS", "LocalTasks", "answered_tasks"]
