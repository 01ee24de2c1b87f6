"""The episode log in the History sentinel: which committed episode consumed which message.

Step 1 of the checkpoint protocol (ARCHITECTURE.md §5) records, with the history, the ids of
the queue messages the episode consumed. A crash before step 4 (their deletion) brings them
back; recovery must then finish *the episode that consumed them* — not merely the last one,
because a later episode of the same instance may have committed meanwhile (another worker
took the partition over while the crashed worker's messages were still invisible).

Each remembered episode is a record: its number, where its events lie in its execution's
history (``first``..``end``), whether it continued as new, the execution it belongs to, when
it committed, and the ids it consumed. Records are kept for ``retention`` (long enough for any
message consumed by them to come back: a crashed holder's messages reappear within one
visibility timeout) and at most ``MAX_REMEMBERED_IDS`` ids in all, newest first.

Stored as the sentinel's ``ConsumedMessageIds`` list: each record is a mark
``~episode:<n>:<first>:<end>:<continued>:<committed_at>:<execution_id>`` followed by its ids.
The earlier format (ids, then one mark ``~episode:<first>:<continued>``) still parses.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta

from durable_azstorage.azure.settings import AzureStorageSettings

MARK = "~episode:"
MAX_REMEMBERED_IDS = 500  # ~20 KiB in the sentinel; a property holds 32 K characters
MIN_RETENTION = timedelta(minutes=10)


def episode_retention(settings: AzureStorageSettings) -> timedelta:
    """How long consumed ids are remembered: far longer than a crashed holder's messages
    take to reappear (one visibility timeout) and be received by the next owner."""
    return max(MIN_RETENTION, 4 * settings.control_queue_visibility_timeout)


@dataclass(frozen=True, slots=True)
class EpisodeRecord:
    """One committed episode, as far as recovery needs it."""

    episode: int
    first: int  # index of its first event in its execution's history
    end: int | None  # one past its last event; None: to the end of the history (old format)
    continued_as_new: bool
    execution_id: str
    committed_at: float  # seconds since the epoch
    message_ids: tuple[str, ...]


def parse_episode_log(
    ids: Sequence[str], *, episode: int, execution_id: str | None
) -> list[EpisodeRecord]:
    """The records stored in ``ids``, newest first. ``episode`` and ``execution_id`` (the
    sentinel's) date a log in the earlier format."""
    if not ids:
        return []
    if not ids[0].startswith(MARK):
        return [_legacy(ids, episode=episode, execution_id=execution_id or "")]
    marks: list[EpisodeRecord] = []
    consumed: list[list[str]] = []
    for value in ids:
        if value.startswith(MARK):
            marks.append(_parse_mark(value))
            consumed.append([])
        else:
            consumed[-1].append(value)
    return [replace(r, message_ids=tuple(i)) for r, i in zip(marks, consumed, strict=False)]


def encode_episode_log(records: Iterable[EpisodeRecord]) -> list[str]:
    out: list[str] = []
    for r in records:
        end = "" if r.end is None else str(r.end)
        out.append(
            f"{MARK}{r.episode}:{r.first}:{end}:{int(r.continued_as_new)}:"
            f"{r.committed_at:.3f}:{r.execution_id}"
        )
        out.extend(r.message_ids)
    return out


def remember(
    new: EpisodeRecord,
    previous: Sequence[EpisodeRecord],
    *,
    retention: float,
    max_ids: int = MAX_REMEMBERED_IDS,
) -> list[EpisodeRecord]:
    """``new`` first, then the previous records still within ``retention`` seconds of
    ``new.committed_at`` while the ids fit in ``max_ids`` (an id consumed again is kept once:
    in ``new``)."""
    kept = [new]
    count = len(new.message_ids)
    taken = set(new.message_ids)
    for record in previous:
        if new.committed_at - record.committed_at > retention:
            break
        ids = tuple(i for i in record.message_ids if i not in taken)
        if count + len(ids) > max_ids:
            break
        if not ids:
            continue
        kept.append(replace(record, message_ids=ids))
        count += len(ids)
        taken.update(ids)
    return kept


def episode_of(records: Sequence[EpisodeRecord], message_id: str) -> EpisodeRecord | None:
    return next((r for r in records if message_id in r.message_ids), None)


def _parse_mark(value: str) -> EpisodeRecord:
    try:
        number, first, end, continued, at, execution_id = value[len(MARK) :].split(":", 5)
        return EpisodeRecord(
            episode=int(number),
            first=int(first),
            end=int(end) if end else None,
            continued_as_new=continued == "1",
            execution_id=execution_id,
            committed_at=float(at),
            message_ids=(),
        )
    except ValueError as exc:
        raise ValueError(f"malformed episode mark {value!r}") from exc


def _legacy(ids: Sequence[str], *, episode: int, execution_id: str) -> EpisodeRecord:
    first, continued = 0, False
    for value in ids:
        if value.startswith(MARK):
            head, _, flag = value[len(MARK) :].partition(":")
            first, continued = int(head), flag == "1"
    return EpisodeRecord(
        episode=episode,
        first=first,
        end=None,
        continued_as_new=continued,
        execution_id=execution_id,
        committed_at=0.0,
        message_ids=tuple(i for i in ids if not i.startswith(MARK)),
    )


__all__ = [
    "MARK",
    "MAX_REMEMBERED_IDS",
    "MIN_RETENTION",
    "EpisodeRecord",
    "episode_retention",
    "encode_episode_log",
    "episode_of",
    "parse_episode_log",
    "remember",
]
