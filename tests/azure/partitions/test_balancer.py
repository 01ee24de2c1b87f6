"""The pure balancing rules (``balancer.decide``), with an injected clock and no storage.

Direct tests pin each rule; ``LeaseModel`` runs several workers against a versioned table
(ETag semantics) to check convergence from many starting states and that no partition is
ever dequeued by two workers, under random scheduling, pauses and bounded clock skew.
"""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lease_model import POLICY, T0, LeaseModel

from durable_azstorage.azure.partitioning.balancer import (
    ActionKind,
    LeasePolicy,
    claimed,
    decide,
    may_dequeue,
    released,
)
from durable_azstorage.azure.partitioning.lease_table import LeaseRow

S = timedelta(seconds=1)


def rows_owned(owners: list[str | None], expires: timedelta = 10 * S) -> dict[int, LeaseRow]:
    return {
        p: LeaseRow(
            partition=p,
            queue=f"hub-control-{p:02d}",
            current_owner=o,
            expires_at=T0 + expires if o else None,
            etag=f"e{p}",
        )
        for p, o in enumerate(owners)
    }


def kinds(decision_actions: tuple[object, ...]) -> list[tuple[str, int]]:
    return [(a.kind.value, a.partition) for a in decision_actions]  # type: ignore[attr-defined]


# ----------------------------------------------------------------------------- single rules


def test_claims_every_free_row_when_alone_and_renews_own() -> None:
    decision = decide(rows_owned([None] * 4), "a", T0, POLICY)
    assert kinds(decision.actions) == [("claim", p) for p in range(4)]
    row = decision.actions[0].row
    assert (row.current_owner, row.owned_since, row.expires_at) == ("a", T0, T0 + 3 * S)
    assert row.etag == "e0"  # the write is conditional on the row that was read

    decision = decide(rows_owned(["a"] * 4), "a", T0, POLICY)
    assert kinds(decision.actions) == [("renew", p) for p in range(4)]
    assert decide(rows_owned(["a"] * 4), "a", T0, POLICY, renew=False).actions == ()


def test_claims_free_rows_only_up_to_its_fair_share() -> None:
    rows = rows_owned(["b", "b", None, None, None, None])
    decision = decide(rows, "a", T0, POLICY)
    assert len([a for a in decision.actions if a.kind is ActionKind.CLAIM]) == 3  # ceil(6/2)


def test_expired_lease_is_taken_only_at_expiry() -> None:
    rows = rows_owned(["dead", "b"], expires=5 * S)
    before = decide(rows, "a", T0 + 5 * S - timedelta(milliseconds=1), POLICY)
    assert ActionKind.CLAIM not in {a.kind for a in before.actions}
    at = decide(rows, "a", T0 + 5 * S, POLICY)
    assert [(a.kind, a.partition) for a in at.actions] == [
        (ActionKind.CLAIM, 0),
        (ActionKind.CLAIM, 1),
    ]


def test_owner_stops_dequeuing_a_skew_margin_before_expiry() -> None:
    row = rows_owned(["a"], expires=3 * S)[0]
    assert may_dequeue(row, "a", T0 + 2 * S - timedelta(microseconds=1), POLICY)
    assert not may_dequeue(row, "a", T0 + 2 * S, POLICY)  # ExpiresAt - skew_margin
    assert not may_dequeue(row, "b", T0, POLICY)
    assert not may_dequeue(row.but(is_draining=True), "a", T0, POLICY)


def test_skew_below_the_margin_never_overlaps_and_above_it_can() -> None:
    """Owner clock behind the claimer's: safe while the difference is below the margin."""
    lease = rows_owned(["owner"], expires=3 * S)[0]
    for behind, overlaps in ((timedelta(milliseconds=999), False), (2 * S, True)):
        overlap = False
        for ms in range(0, 6000, 10):
            real = T0 + timedelta(milliseconds=ms)
            claimer_may_take = any(
                a.kind is ActionKind.CLAIM
                for a in decide({0: lease}, "thief", real, POLICY).actions
            )
            owner_dequeues = may_dequeue(lease, "owner", real - behind, POLICY)
            overlap |= claimer_may_take and owner_dequeues
        assert overlap is overlaps


def test_hand_over_request_drain_release_claim() -> None:
    rows = rows_owned(["a", "a", "a", "a"])
    # b owns nothing: it asks a for two rows (a's highest), so counts become 2/2
    request = decide(rows, "b", T0, POLICY)
    assert kinds(request.actions) == [("request", 2), ("request", 3)]
    assert request.fast
    for a in request.actions:
        rows[a.partition] = a.row

    # a sees the requests: drain those two (marked draining and renewed), renew the others
    drain = decide(rows, "a", T0 + S, POLICY)
    assert kinds(drain.actions) == [("renew", 0), ("renew", 1), ("drain", 2), ("drain", 3)]
    for a in drain.actions:
        rows[a.partition] = a.row
        assert may_dequeue(a.row, "a", T0 + S, POLICY) == (a.kind is ActionKind.RENEW)
    # while draining, b waits (fast) and nobody else may claim
    assert decide(rows, "b", T0 + S, POLICY).actions == ()
    assert not [a for a in decide(rows, "c", T0 + S, POLICY).actions if a.partition in (2, 3)]
    # a keeps renewing the draining rows without starting a second drain
    again = decide(rows, "a", T0 + 2 * S, POLICY, draining=frozenset({2, 3}))
    assert all(
        a.kind is ActionKind.RENEW and (a.row.is_draining == (a.partition >= 2))
        for a in again.actions
    )

    rows[2] = released(rows[2], T0 + 2 * S, POLICY)
    assert (rows[2].current_owner, rows[2].next_owner) == (None, "b")
    # a third worker must not take a row released to b while the reservation lasts
    assert 2 not in [a.partition for a in decide(rows, "c", T0 + 2 * S, POLICY).actions]
    take = decide(rows, "b", T0 + 2 * S, POLICY, acquire=False)
    assert kinds(take.actions) == [("claim", 2)]
    assert take.actions[0].row.next_owner is None


def test_hand_over_requests_pick_the_most_backlogged_partitions() -> None:
    rows = rows_owned(["a"] * 6)
    blind = decide(rows, "b", T0, POLICY)
    assert kinds(blind.actions) == [("request", 3), ("request", 4), ("request", 5)]
    informed = decide(rows, "b", T0, POLICY, backlog={0: 50, 2: 7, 4: 900})
    assert kinds(informed.actions) == [("request", 0), ("request", 2), ("request", 4)]


def test_reservation_for_a_vanished_requester_expires() -> None:
    row = released(rows_owned(["a"])[0].but(next_owner="gone"), T0, POLICY)
    assert decide({0: row}, "c", T0 + 3 * S - timedelta(microseconds=1), POLICY).actions == ()
    late = decide({0: row}, "c", T0 + 3 * S, POLICY)
    assert kinds(late.actions) == [("claim", 0)]


def test_no_requests_when_counts_differ_by_one() -> None:
    assert decide(rows_owned(["a", "a", "b"]), "b", T0, POLICY).actions[-1].kind is ActionKind.RENEW
    assert not [a for a in decide(rows_owned(["a", "b", "c"]), "d", T0, POLICY).actions]


def test_shutdown_drains_everything_and_withdraws_requests() -> None:
    rows = rows_owned(["a", "a", "b", None])
    rows[2] = rows[2].but(next_owner="a")
    rows[3] = released(rows_owned(["x"])[0].but(partition=3, next_owner="a"), T0, POLICY)
    decision = decide(rows, "a", T0, POLICY, stopping=True)
    assert kinds(decision.actions) == [("drain", 0), ("drain", 1), ("withdraw", 2), ("withdraw", 3)]
    assert decision.actions[3].row.expires_at is None  # free at once, not reserved

    for a in decision.actions:
        rows[a.partition] = a.row
    # the others request the leaving rows at once and poll fast for the release
    other = decide(rows, "b", T0, POLICY)
    assert [(a.kind, a.partition) for a in other.actions if a.partition < 2] == [
        (ActionKind.REQUEST, 0),
        (ActionKind.REQUEST, 1),
    ]
    assert other.fast


def test_lease_policy_rejects_a_margin_as_long_as_the_lease() -> None:
    with pytest.raises(ValueError, match="skew_margin"):
        LeasePolicy(lease_interval=3 * S, skew_margin=3 * S)
    with pytest.raises(ValueError, match="lease_interval"):
        LeasePolicy(lease_interval=timedelta(0), skew_margin=timedelta(0))


def test_claimed_row_resets_the_hand_over_fields() -> None:
    row = claimed(rows_owned([None])[0].but(next_owner="a", is_draining=True), "a", T0, POLICY)
    assert (row.current_owner, row.next_owner, row.is_draining) == ("a", None, False)


# ----------------------------------------------------------------------------- the model


@pytest.mark.parametrize("partitions", [1, 4, 7, 8, 16, 64])
@pytest.mark.parametrize("workers", [1, 2, 3, 5])
def test_fresh_hub_converges_to_balanced(partitions: int, workers: int) -> None:
    model = LeaseModel(partitions)
    for i in range(workers):
        model.add(f"w{i}")
    model.run(400)
    assert model.settled(), (model.counts(), model.table)


def test_crashed_worker_loses_partitions_after_expiry_and_newcomer_gets_share() -> None:
    model = LeaseModel(8)
    for name in ("a", "b", "c"):
        model.add(name)
    model.run(300)
    assert model.settled()
    crashed = model.workers["b"]
    crashed.alive = False
    lost = {p: r.expires_at for p, r in model.table.items() if r.current_owner == "b"}
    assert lost
    model.run(60)
    assert model.settled() and set(model.counts()) == {"a", "c"}
    # taken over only once b's lease had expired (by the taker's clock; no skew here)
    assert all(model.table[p].owned_since >= expiry for p, expiry in lost.items())  # type: ignore[operator]

    model.add("d")
    model.run(300)
    assert model.settled() and sorted(model.counts().values()) == [2, 3, 3]


def test_graceful_stop_hands_over_before_expiry() -> None:
    model = LeaseModel(8)
    for name in ("a", "b", "c"):
        model.add(name)
    model.run(300)
    leaving = model.workers["a"]
    leaving.stopping = True
    stop_time = model.now
    model.run(30)
    assert leaving.gone
    assert model.settled() and set(model.counts()) == {"b", "c"}
    assert max(r.owned_since for r in model.table.values()) < stop_time + POLICY.lease_interval  # type: ignore[operator, type-var]


_owner = st.sampled_from([None, "a", "b", "c", "dead1", "dead2"])
_row = st.tuples(_owner, _owner, st.integers(-4, 4), st.booleans())


@settings(max_examples=100, deadline=None)
@given(
    start=st.lists(_row, min_size=1, max_size=12),
    workers=st.integers(1, 3),
    seed=st.integers(0, 2**32),
    skews=st.lists(st.floats(-0.45, 0.45), min_size=3, max_size=3),
)
def test_any_starting_state_converges_and_stays_exclusive(
    start: list[tuple[str | None, str | None, int, bool]],
    workers: int,
    seed: int,
    skews: list[float],
) -> None:
    model = LeaseModel(len(start))
    for p, (owner, next_owner, expires_in, draining) in enumerate(start):
        model.put(
            LeaseRow(
                partition=p,
                queue=f"hub-control-{p:02d}",
                current_owner=owner,
                next_owner=next_owner,
                expires_at=T0 + timedelta(seconds=expires_in),
                is_draining=draining and owner is not None,
            )
        )
    for i, name in enumerate("abc"[:workers]):
        model.add(name, skew=skews[i])
    rng = random.Random(seed)
    model.run(200, rng=rng)  # random schedule: pauses, bursts, stale decisions
    model.run(300)  # then everybody runs regularly
    assert model.settled(), (model.counts(), model.table)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32), partitions=st.integers(2, 10))
def test_churn_never_lets_two_workers_dequeue_one_partition(seed: int, partitions: int) -> None:
    """Workers join, pause, crash and stop at random; exclusivity is checked at every step."""
    rng = random.Random(seed)
    model = LeaseModel(partitions, drain_steps=rng.randint(1, 4))
    for i in range(3):
        model.add(f"w{i}", skew=rng.uniform(-0.45, 0.45))
    for round_ in range(8):
        model.run(40, rng=rng)
        event = rng.choice(["join", "crash", "stop", "none"])
        live = [w for w in model.workers.values() if w.alive and not w.stopping]
        if event == "join" or len(live) < 2:
            model.add(f"n{round_}", skew=rng.uniform(-0.45, 0.45))
        elif event == "crash":
            rng.choice(live).alive = False
        elif event == "stop":
            rng.choice(live).stopping = True
    model.run(400)
    assert model.settled(), (model.counts(), model.table)


def test_the_model_detects_overlap_when_skew_exceeds_the_margin() -> None:
    """The exclusivity check has teeth: an owner whose clock lags by more than the margin
    keeps dequeuing after a paused-owner takeover."""
    model = LeaseModel(1)
    owner, thief = model.add("a", skew=-1.5), model.add("b", skew=0.5)
    model.turn(owner)
    assert model.dequeuers(0) == {"a"}
    with pytest.raises(AssertionError, match="dequeued by"):
        for _ in range(40):  # the owner is paused (never scheduled again)
            model.now += timedelta(milliseconds=100)
            model.turn(thief)
            model.assert_exclusive()
