"""Who should own which control-queue partition: pure decisions over the lease rows.

``decide(rows, me, now, ...)`` looks at every lease row, this worker's identity and the time
(an injected clock, so tests need no waiting) and returns the writes this worker should make.
It never performs I/O; ``manager.PartitionManager`` executes the actions with
ETag-conditional writes and re-reads on any conflict, so decisions taken on a stale view are
harmless: they lose the race and are taken again on fresh rows.

The rules, and where they improve on the .NET table partition manager (DTFX_REFERENCE.md §6.1):

* **Claim** a row that is free, whose lease expired, or that its owner released *to me*
  (``NextOwner == me``). Free and expired rows are claimed only up to this worker's fair
  share ``ceil(partitions / members)``, so the survivors of a crash split the orphans instead
  of the fastest one taking all of them and handing them over again.
* **Renew** owned rows (``ExpiresAt = now + lease_interval``).
* **Hand-over, never theft.** A worker owning at least two fewer partitions than the busiest
  member asks for one of its rows (``NextOwner = me``), repeatedly, until counts differ by at
  most one — the most backlogged rows first, when queue lengths are known (DTFx picks
  blindly, so a new worker may take idle partitions while the busy ones stay put). The owner stops dequeuing, marks the row draining, waits for its in-flight work
  (``PartitionDrainer``), and releases the row *to* the requester, who claims it. A live
  owner is replaced only through expiry.
* **A release to a requester is a reservation that expires.** The released row keeps
  ``ExpiresAt = release + lease_interval``: if the requester died meanwhile, anybody may
  claim the row after that. (In DTFx a row released to a vanished ``NextOwner`` can stay
  unowned for a long time, a reported pain.)
* **Stop dequeuing before the lease can expire.** ``may_dequeue`` is false from
  ``ExpiresAt - skew_margin`` on (``ExpiresAt`` was written by the owner's own clock), while
  another worker claims only at ``now >= ExpiresAt`` by *its* clock. If the clocks differ by
  less than ``skew_margin``, the two dequeue windows never overlap, even when the owner is
  cut off from storage and cannot learn that it lost the lease.
* **Shutdown** drains and releases every owned row; rows a stopping owner marks draining
  without a requester are requested at once by the others (who poll fast while waiting), so
  the hand-over completes within the fast interval, not after an acquire interval or expiry.
* **Membership** is read off the rows: live owners with at least one row not draining, and
  requesters. A worker owning nothing and requesting nothing needs nothing and is invisible.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from durable_azstorage.azure.partitioning.lease_table import LeaseRow
from durable_azstorage.azure.storage.naming import fnv1a32


@dataclass(frozen=True, slots=True)
class LeasePolicy:
    """The timing rules of the leases.

    ``skew_margin``: how much earlier than ``ExpiresAt`` an owner stops dequeuing; it must
    exceed the worst clock difference between workers, and be smaller than
    ``lease_interval - renew_interval`` or leases lapse between healthy renewals.
    """

    lease_interval: timedelta
    skew_margin: timedelta

    def __post_init__(self) -> None:
        if self.lease_interval <= timedelta(0):
            raise ValueError(f"lease_interval: must be positive, got {self.lease_interval}")
        if not timedelta(0) <= self.skew_margin < self.lease_interval:
            raise ValueError(
                f"skew_margin: must be in [0, lease_interval), got {self.skew_margin} "
                f"with lease_interval {self.lease_interval}"
            )


class ActionKind(enum.Enum):
    CLAIM = "claim"  # take a free, expired or released-to-me row
    RENEW = "renew"  # extend my lease
    REQUEST = "request"  # ask the owner to hand the row over to me (NextOwner = me)
    DRAIN = "drain"  # stop dequeuing, mark draining (renewed), then drain and release
    WITHDRAW = "withdraw"  # on shutdown: drop my pending request or reservation


@dataclass(frozen=True, slots=True)
class Action:
    """Write ``row`` (its ``etag`` is the condition) for ``kind``."""

    kind: ActionKind
    row: LeaseRow

    @property
    def partition(self) -> int:
        return self.row.partition


@dataclass(frozen=True, slots=True)
class Decision:
    """What to write now; ``fast`` asks for a quick re-read (a hand-over is in progress)."""

    actions: tuple[Action, ...] = ()
    fast: bool = False
    members: frozenset[str] = field(default_factory=frozenset)


def is_expired(row: LeaseRow, now: datetime) -> bool:
    """True when the row's lease (or reservation) no longer protects it at ``now``."""
    return row.expires_at is None or now >= row.expires_at


def may_dequeue(row: LeaseRow, me: str, now: datetime, policy: LeasePolicy) -> bool:
    """May ``me`` receive from this partition's queue at ``now`` (its own clock)?"""
    return (
        row.current_owner == me
        and not row.is_draining
        and row.expires_at is not None
        and now < row.expires_at - policy.skew_margin
    )


def claimed(row: LeaseRow, me: str, now: datetime, policy: LeasePolicy) -> LeaseRow:
    return row.but(
        current_owner=me,
        next_owner=None,
        owned_since=now,
        last_renewal=now,
        expires_at=now + policy.lease_interval,
        is_draining=False,
    )


def renewed(row: LeaseRow, now: datetime, policy: LeasePolicy) -> LeaseRow:
    return row.but(last_renewal=now, expires_at=now + policy.lease_interval)


def released(row: LeaseRow, now: datetime, policy: LeasePolicy) -> LeaseRow:
    """The row after its owner drained it: free, or reserved for the requester for one lease
    interval (then free for anybody)."""
    reserved_until = now + policy.lease_interval if row.next_owner else None
    return row.but(
        current_owner=None,
        owned_since=None,
        is_draining=False,
        last_renewal=now,
        expires_at=reserved_until,
    )


def decide(
    rows: Mapping[int, LeaseRow],
    me: str,
    now: datetime,
    policy: LeasePolicy,
    *,
    draining: frozenset[int] = frozenset(),
    acquire: bool = True,
    renew: bool = True,
    stopping: bool = False,
    backlog: Mapping[int, int] | None = None,
) -> Decision:
    """The actions ``me`` should take given all lease ``rows`` at ``now``.

    ``draining``: partitions this worker is already draining (no new DRAIN for them).
    ``acquire``: claim free/expired rows and request hand-overs (every acquire interval);
    rows released to ``me`` are claimed regardless. ``renew``: renew owned rows.
    ``stopping``: graceful shutdown, drain everything, claim nothing, withdraw requests.
    ``backlog``: approximate queue lengths, if known; a hand-over request then picks the
    victim's most backlogged partition, so the idle worker takes the waiting work.
    """
    view = _View(rows, me, now)
    actions: dict[int, Action] = {}

    for p, row in rows.items():
        if row.current_owner == me:
            if p not in draining and (stopping or row.is_draining or _requested(row, me)):
                actions[p] = Action(
                    ActionKind.DRAIN, renewed(row, now, policy).but(is_draining=True)
                )
            elif renew or is_expired(row, now):
                # a row being drained stays marked draining even if the first mark was lost
                again = renewed(row, now, policy).but(
                    is_draining=row.is_draining or p in draining,
                    next_owner=None if row.next_owner == me else row.next_owner,
                )
                actions[p] = Action(ActionKind.RENEW, again)
        elif stopping and row.next_owner == me:
            withdrawn = row.but(next_owner=None)
            if row.current_owner is None:
                withdrawn = withdrawn.but(expires_at=None)
            actions[p] = Action(ActionKind.WITHDRAW, withdrawn)
        elif not stopping and view.reserved_for(row) == me:
            actions[p] = Action(ActionKind.CLAIM, claimed(row, me, now, policy))

    if stopping:
        return Decision(
            tuple(actions[p] for p in sorted(actions)), fast=False, members=view.members
        )

    counts = view.counts()
    cap = math.ceil(len(rows) / max(1, len(view.members)))
    for p in _rotated(sorted(rows), me):
        row = rows[p]
        if p in actions or counts[me] >= cap:
            continue
        if acquire and view.claimable(row):
            actions[p] = Action(ActionKind.CLAIM, claimed(row, me, now, policy))
            counts[me] += 1
        elif view.leaving(row):  # a shutdown in progress: ask at once, not at the next acquire
            actions[p] = Action(ActionKind.REQUEST, row.but(next_owner=me))
            counts[me] += 1
    if acquire:
        _request_hand_overs(rows, view, counts, actions, me, backlog or {})

    fast = any(
        (row.next_owner == me and row.current_owner != me and p not in actions) or view.leaving(row)
        for p, row in rows.items()
    ) or any(a.kind is ActionKind.REQUEST for a in actions.values())
    return Decision(tuple(actions[p] for p in sorted(actions)), fast=fast, members=view.members)


def _requested(row: LeaseRow, me: str) -> bool:
    return row.next_owner is not None and row.next_owner != me


def _request_hand_overs(
    rows: Mapping[int, LeaseRow],
    view: _View,
    counts: dict[str, int],
    actions: dict[int, Action],
    me: str,
    backlog: Mapping[int, int],
) -> None:
    """Ask the busiest members for rows until no member has 2+ more than ``me``."""
    while True:
        others = [m for m in counts if m != me]
        if not others:
            return
        victim = max(others, key=lambda m: (counts[m], m))
        if counts[victim] - counts[me] < 2:
            return
        candidates = [
            p
            for p in sorted(rows)
            if p not in actions
            and view.live_owner(rows[p]) == victim
            and rows[p].next_owner is None
            and not rows[p].is_draining
        ]
        if not candidates:
            return
        # the most backlogged; on ties the victim keeps its low partitions (stable choices)
        p = max(candidates, key=lambda c: (backlog.get(c, 0), c))
        actions[p] = Action(ActionKind.REQUEST, rows[p].but(next_owner=me))
        counts[victim] -= 1
        counts[me] += 1


def _rotated(partitions: list[int], me: str) -> list[int]:
    """Start the scan at a worker-specific offset so simultaneous claimers collide less."""
    if not partitions:
        return partitions
    start = fnv1a32(me.encode("utf-8")) % len(partitions)
    return partitions[start:] + partitions[:start]


class _View:
    """Derived facts about the rows at one instant, from one worker's point of view."""

    def __init__(self, rows: Mapping[int, LeaseRow], me: str, now: datetime) -> None:
        self.rows = rows
        self.me = me
        self.now = now
        active = {
            r.current_owner
            for r in rows.values()
            if self.live_owner(r) is not None and not r.is_draining
        }
        requesters = {
            r.next_owner
            for r in rows.values()
            if r.next_owner is not None and not is_expired(r, now)
        }
        self.members = frozenset({me} | {m for m in active | requesters if m is not None})

    def live_owner(self, row: LeaseRow) -> str | None:
        if row.current_owner is not None and not is_expired(row, self.now):
            return row.current_owner
        return None

    def reserved_for(self, row: LeaseRow) -> str | None:
        """The requester a row was released to, while the reservation lasts."""
        if (
            row.current_owner is None
            and row.next_owner is not None
            and not is_expired(row, self.now)
        ):
            return row.next_owner
        return None

    def claimable(self, row: LeaseRow) -> bool:
        """Free (no live owner, no live reservation) — not released to someone else."""
        return self.live_owner(row) is None and self.reserved_for(row) in (None, self.me)

    def leaving(self, row: LeaseRow) -> bool:
        """Owned by a worker that drains it for shutdown, with nobody asking for it yet."""
        owner = self.live_owner(row)
        return owner is not None and owner != self.me and row.is_draining and row.next_owner is None

    def counts(self) -> dict[str, int]:
        """Rows per member, counting a row whose hand-over is pending for its requester."""
        counts = dict.fromkeys(self.members, 0)
        for row in self.rows.values():
            holder = self.reserved_for(row)
            owner = self.live_owner(row)
            if owner is not None and row.next_owner is not None:
                holder = row.next_owner
            elif owner is not None and not row.is_draining:
                holder = owner
            if holder is not None and holder in counts:
                counts[holder] += 1
        return counts


__all__ = [
    "Action",
    "ActionKind",
    "Decision",
    "LeasePolicy",
    "claimed",
    "decide",
    "is_expired",
    "may_dequeue",
    "released",
    "renewed",
]
