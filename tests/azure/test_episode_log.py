"""The sentinel's episode log and outbox, and the record of self-caused deliveries (no storage)."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timezone

import pytest

from durable_azstorage.azure.messaging.deliveries import SelfCausedDeliveries
from durable_azstorage.azure.messaging.queues import ReceivedMessage
from durable_azstorage.azure.tracking.episode_log import (
    EpisodeRecord,
    encode_episode_log,
    episode_of,
    parse_episode_log,
    remember,
)
from durable_azstorage.azure.tracking.outbox import Outbox


def _record(episode: int, at: float, *ids: str, execution: str = "x1") -> EpisodeRecord:
    return EpisodeRecord(
        episode=episode,
        first=episode * 3,
        end=episode * 3 + 3,
        continued_as_new=False,
        execution_id=execution,
        committed_at=at,
        message_ids=ids,
    )


def test_records_round_trip_newest_first() -> None:
    records = [_record(3, 30.0, "c"), _record(2, 20.0, "a", "b"), _record(1, 10.0)]
    encoded = encode_episode_log(records)
    assert parse_episode_log(encoded, episode=3, execution_id="x1") == records
    assert episode_of(records, "b") == records[1]
    assert episode_of(records, "zzz") is None
    assert {i: episode_of(records, i) for i in ("a", "b", "c")} == {
        "a": records[1],
        "b": records[1],
        "c": records[0],
    }


def test_an_execution_id_with_colons_survives() -> None:
    record = _record(1, 1.5, "m", execution="a:b:c")
    assert parse_episode_log(encode_episode_log([record]), episode=1, execution_id=None) == [record]


def test_the_earlier_format_parses_as_one_record_of_the_sentinels_episode() -> None:
    (legacy,) = parse_episode_log(["m1", "m2", "~episode:7:1"], episode=4, execution_id="x9")
    assert (legacy.episode, legacy.first, legacy.end, legacy.continued_as_new) == (4, 7, None, True)
    assert (legacy.execution_id, legacy.message_ids) == ("x9", ("m1", "m2"))


def test_a_malformed_mark_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="malformed episode mark"):
        parse_episode_log(["~episode:1:2:x:0:1:e"], episode=1, execution_id="e")


def test_remember_keeps_recent_episodes_within_the_id_budget() -> None:
    old = [_record(2, 100.0, "b1", "b2"), _record(1, 10.0, "a1")]
    new = _record(3, 200.0, "c1", "b2")  # b2 consumed again (redelivered, applied once)
    kept = remember(new, old, retention=150.0)
    assert [r.episode for r in kept] == [3, 2]  # episode 1 is older than the retention
    assert kept[1].message_ids == ("b1",)
    assert [r.episode for r in remember(new, old, retention=1000.0, max_ids=3)] == [3, 2]
    assert [r.episode for r in remember(new, old, retention=1000.0, max_ids=2)] == [3]


def test_outbox_round_trip_and_pruning() -> None:
    box = Outbox({1: ("m1", "m2"), 2: "blob-2", 3: ("m3",)})
    assert Outbox.parse(box.encode()) == box
    kept, dropped = box.keep_only([1, 3])
    assert set(kept.entries) == {1, 3} and dropped == ["blob-2"]
    assert Outbox.parse("") == Outbox({})
    with pytest.raises(ValueError, match="neither a blob name nor a list"):
        Outbox.parse('{"1": 5}')


def _received(message_id: str, dequeue_count: int) -> ReceivedMessage:
    return ReceivedMessage(
        queue_name="q",
        message_id=message_id,
        pop_receipt="p",
        dequeue_count=dequeue_count,
        inserted_on=datetime.now(timezone.utc),
        next_visible_on=None,
        raw="",
        message=None,
    )


def test_self_caused_deliveries_do_not_count() -> None:
    deliveries = SelfCausedDeliveries(capacity=2)
    deliveries.caused("a")
    deliveries.caused("a")
    assert deliveries.failed_deliveries(_received("a", 3)) == 1
    assert deliveries.failed_deliveries(_received("a", 5)) == 3
    assert deliveries.failed_deliveries(_received("b", 4)) == 4
    deliveries.caused("b")
    deliveries.caused("c")  # over capacity: the oldest ("a") is forgotten first
    assert len(deliveries) == 2
    assert deliveries.failed_deliveries(_received("a", 3)) == 3
    deliveries.forget("b")
    assert deliveries.failed_deliveries(dataclasses.replace(_received("b", 1))) == 1
