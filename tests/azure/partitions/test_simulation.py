"""Several ``PartitionManager``s on one 8-partition hub on real Azurite, in one process.

Intervals: lease 3 s, renew 1 s, acquire 1 s, fast 0.2 s, skew margin 1 s (the default
``min(5 s, (lease - renew) / 2)``); each fake drain takes 0.3 s of "in-flight work".
Exclusivity is checked continuously: ``Timeline`` flags any partition gained while another
manager holds or drains it, and ``Fleet.sample`` cross-checks every manager's ``owned()``
with the lease rows. The measured durations are printed (run with ``-s`` to see them).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta, timezone

import pytest
from fault_proxy import Fault, fault_proxy, proxied_connection_string
from sim_support import ACQUIRE, LEASE, PARTITIONS, RENEW, Fleet, utc, wait_until

from durable_azstorage.azure.partitioning.lease_table import LeaseRow, LeaseTable
from durable_azstorage.azure.partitioning.manager import PartitionManager
from durable_azstorage.azure.settings import AzureStorageSettings
from durable_azstorage.azure.storage import naming
from durable_azstorage.azure.storage.clients import StorageClients
from durable_azstorage.azure.tracking.taskhub import (
    INFO_PARTITION_KEY,
    INFO_ROW_KEY,
    TaskHubResources,
)

# One lease-fleet test at a time across xdist workers (see conftest.lease_fleet_alone).
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("lease_fleet_alone")]

BALANCE_TIMEOUT = 30.0


@pytest.fixture
async def fleet(
    hub8: StorageClients, fast_settings: Callable[..., AzureStorageSettings]
) -> AsyncIterator[Fleet]:
    fleet = Fleet.on(hub8, fast_settings)
    names = hub8.settings.names
    info = await hub8.table(names.partitions_table).get_entity(INFO_PARTITION_KEY, INFO_ROW_KEY)
    stop = asyncio.Event()
    sampler = asyncio.ensure_future(fleet.sample(stop))
    try:
        yield fleet
    finally:
        stop.set()
        samples = await sampler
        await fleet.close()
    assert samples > 3  # the cross-check did run
    after = await hub8.table(names.partitions_table).get_entity(INFO_PARTITION_KEY, INFO_ROW_KEY)
    assert after.metadata["etag"] == info.metadata["etag"]  # the hub-info row is never written


def owners(rows: dict[int, LeaseRow]) -> dict[int, str | None]:
    return {p: r.current_owner for p, r in rows.items()}


async def test_balance_graceful_hand_over_join_and_crash(fleet: Fleet) -> None:
    measured: dict[str, float] = {}
    await asyncio.gather(*(fleet.start(n) for n in ("a", "b", "c")))
    measured["initial balance"] = await wait_until(
        fleet.balanced, BALANCE_TIMEOUT, "3 managers balanced"
    )
    assert sorted(len(m.owned()) for m in fleet.running().values()) == [2, 3, 3]

    # graceful stop: drained, released and claimed long before the leases could expire
    before = await fleet.rows()
    leaving = {p: r.expires_at for p, r in before.items() if r.current_owner == "a"}
    earlier = len(fleet.members["a"].drainer.drained)  # hand-overs while converging
    start = time.monotonic()
    await fleet.stop("a")
    measured["graceful stop() returned"] = time.monotonic() - start
    measured["graceful hand-over"] = (
        await wait_until(fleet.balanced, BALANCE_TIMEOUT, "b and c own everything")
        + measured["graceful stop() returned"]
    )
    after = await fleet.rows()
    assert set(owners(after).values()) == {"b", "c"}
    for p, expiry in leaving.items():
        taken = after[p].owned_since
        assert taken is not None and expiry is not None
        assert taken < expiry, f"partition {p} waited for expiry"
    assert sorted(fleet.members["a"].drainer.drained[earlier:]) == sorted(leaving)
    assert fleet.members["a"].manager.owned() == frozenset()

    # a new manager receives its share, through hand-overs (drains by b or c)
    drains_before = fleet.timeline.count("drained")
    await fleet.start("d")
    measured["join to balanced"] = await wait_until(
        fleet.balanced, BALANCE_TIMEOUT, "d gets its share"
    )
    assert 2 <= len(fleet.members["d"].manager.owned()) <= 3
    assert fleet.timeline.count("drained") - drains_before == len(
        fleet.members["d"].manager.owned()
    )

    # crash (no release): the partitions move only after their leases expired
    before = await fleet.rows()
    crashed = {p: r.expires_at for p, r in before.items() if r.current_owner == "b"}
    drains_before = fleet.timeline.count("drained")
    await fleet.stop("b", graceful=False)
    measured["crash to resumed"] = await wait_until(
        fleet.balanced, BALANCE_TIMEOUT, "b's partitions taken"
    )
    after = await fleet.rows()
    for p, expiry in crashed.items():
        taken = after[p].owned_since
        assert taken is not None and expiry is not None
        assert taken >= expiry, f"partition {p} taken before b's lease expired"
    assert fleet.timeline.count("drained") == drains_before  # orphans need no hand-over
    assert sorted(len(m.owned()) for m in fleet.running().values()) == [4, 4]

    assert fleet.timeline.violations == []
    assert [p for m in fleet.members.values() for p in m.drainer.problems] == []
    print("\nmeasured (s):", {k: round(v, 2) for k, v in measured.items()})


async def test_cut_off_worker_stops_dequeuing_before_its_leases_expire(
    fleet: Fleet, azure_settings: AzureStorageSettings
) -> None:
    """c loses its connection to the table (every request 503) and its clock lags 0.5 s
    (inside the 1 s margin): it must drop its partitions before a and b may take them."""
    async with fault_proxy(azure_settings.connection_string or "") as proxy:
        lag = timedelta(seconds=0.5)
        await fleet.start("a")
        await fleet.start("b")
        c = await fleet.start(
            "c",
            proxied_connection_string(azure_settings.connection_string or "", proxy),
            clock=utc(-lag),
        )
        await wait_until(fleet.balanced, BALANCE_TIMEOUT, "3 managers balanced")
        held = set(c.owned())
        lost_at: dict[int, datetime] = {}

        def record(owned: frozenset[int]) -> None:
            for p in held - owned - set(lost_at):
                lost_at[p] = datetime.now(timezone.utc)

        c.subscribe(record)
        proxy.add(Fault(match=lambda r: True, status=503, times=10**9))
        fleet.members["c"].running = False  # not expected to own anything while cut off
        start = time.monotonic()
        took = await wait_until(fleet.balanced, BALANCE_TIMEOUT, "a and b take c's partitions")
        after = await fleet.rows()
        for p in held:
            taken = after[p].owned_since
            # c stopped dequeuing by itself before a or b could claim (only after expiry)
            assert p in lost_at and taken is not None
            assert lost_at[p] < taken, f"c still dequeued {p} when it was taken over"
            assert after[p].current_owner in ("a", "b")
        assert c.owned() == frozenset()
        print(f"\nmeasured (s): cut-off to resumed elsewhere {took:.2f}")

        proxy.faults.clear()  # connection back: c rejoins and gets its share again
        fleet.members["c"].running = True
        rejoin = await wait_until(fleet.balanced, BALANCE_TIMEOUT, "c rejoins")
        print(
            f"measured (s): rejoin to balanced {rejoin:.2f} (cut off for {time.monotonic() - start:.1f})"
        )
        await fleet.stop("c", graceful=False)  # before the proxy goes away
    assert fleet.timeline.violations == []


async def test_five_managers_starting_at_once_converge_and_hand_back(
    fleet: Fleet,
) -> None:
    """All managers start at the same instant (everybody claims, most lose ETag races)."""
    await asyncio.gather(*(fleet.start(n) for n in ("p", "q", "r", "s", "t")))
    took = await wait_until(fleet.balanced, BALANCE_TIMEOUT, "5 managers balanced")
    assert sum(len(m.owned()) for m in fleet.running().values()) == PARTITIONS
    start = time.monotonic()
    await asyncio.gather(*(fleet.stop(n) for n in ("p", "q", "r", "s")))
    stopped = time.monotonic() - start
    rest = await wait_until(fleet.balanced, BALANCE_TIMEOUT, "t owns everything")
    print(f"\nmeasured (s): 5 at once balanced {took:.2f}; 4 stop() {stopped:.2f} + {rest:.2f}")
    assert fleet.members["t"].manager.owned() == frozenset(range(PARTITIONS))
    assert fleet.timeline.violations == []


async def test_64_partitions_hold_up_once_the_limit_is_raised(
    monkeypatch: pytest.MonkeyPatch,
    azure_settings: AzureStorageSettings,
) -> None:
    """The manager itself has no 16-partition limit (``naming`` has). With the
    limit raised to 64, three managers converge, hand over and report their request cost.

    Intervals twice the other fleet tests': three managers renewing 21–22 leases each on one
    event loop, beside a loaded suite, missed 3 s leases (lease rounds timed out, a lease
    expired while its holder still drained it). Exclusivity is checked all the same."""
    monkeypatch.setattr(naming, "MAX_PARTITIONS", 64)
    lease, renew, acquire = 2 * LEASE, 2 * RENEW, 2 * ACQUIRE

    def make(worker_id: str, connection_string: str | None = None) -> AzureStorageSettings:
        return dataclasses.replace(
            azure_settings,
            partition_count=64,
            worker_id=worker_id,
            lease_interval=lease,
            lease_renew_interval=renew,
            lease_acquire_interval=acquire,
        )

    async with StorageClients(make("creator")) as clients:
        hub = TaskHubResources(clients)
        await hub.create_if_not_exists()
        names = clients.settings.names
        fleet = Fleet(
            make,
            LeaseTable(clients.table(names.partitions_table), names, clients.retry),
            partitions=64,
        )
        try:
            await asyncio.gather(*(fleet.start(n) for n in ("a", "b", "c")))
            took = await wait_until(fleet.balanced, 60, "3 managers balanced on 64 partitions")
            assert sorted(len(m.owned()) for m in fleet.running().values()) == [21, 21, 22]
            counters = {n: m.clients.counter for n, m in fleet.members.items()}
            before = {n: c.snapshot() for n, c in counters.items()}
            await asyncio.sleep(5 * renew.total_seconds())
            per_second = {  # renew interval 2 s (jittered down to 1.7 s), acquire 2 s
                n: (c.snapshot() - before[n]).total / (5 * renew.total_seconds())
                for n, c in counters.items()
            }
            start = time.monotonic()
            await fleet.stop("a")
            handover = await wait_until(fleet.balanced, 60, "b and c own all 64")
            handover += time.monotonic() - start
            print(
                f"\nmeasured 64 partitions: balance {took:.2f} s, graceful hand-over "
                f"{handover:.2f} s, storage requests per second per manager {per_second}"
            )
            assert fleet.timeline.violations == []
        finally:
            await fleet.close()
            await hub.delete()


async def test_a_clock_far_from_the_storage_clock_is_reported(
    fleet: Fleet,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Lease safety assumes clocks within the skew margin; a worker 10 s off says so."""
    good = await fleet.start("good")
    await wait_until(fleet.balanced, BALANCE_TIMEOUT, "good owns everything")
    assert good.clock_skew is not None and abs(good.clock_skew) < timedelta(seconds=2)
    with caplog.at_level(logging.WARNING, logger="durable_azstorage.azure.partitioning.manager"):
        off = await fleet.start("off", clock=utc(timedelta(seconds=10)))
        await wait_until(fleet.balanced, BALANCE_TIMEOUT, "off gets its share")
    assert off.clock_skew is not None
    assert timedelta(seconds=8) < off.clock_skew < timedelta(seconds=12)
    warnings = [r.getMessage() for r in caplog.records if "skew margin" in r.getMessage()]
    assert len(warnings) == 1 and "off" in warnings[0] and "NTP" in warnings[0]


async def test_a_newcomer_takes_the_backlogged_partitions_first(
    fleet: Fleet,
    hub8: StorageClients,
) -> None:
    """a owns all 8 partitions and two of them have a backlog: b, joining, must ask for
    those two (plus two idle ones) rather than for four idle ones."""
    await fleet.start("a")
    await wait_until(fleet.balanced, BALANCE_TIMEOUT, "a owns everything")
    names = hub8.settings.names
    for p, count in ((1, 12), (2, 5)):
        queue = hub8.queue(names.control_queues[p])
        await asyncio.gather(*(queue.send_message(f"m{i}") for i in range(count)))
    await fleet.start("b")
    await wait_until(fleet.balanced, BALANCE_TIMEOUT, "a and b share")
    assert {1, 2} <= fleet.members["b"].manager.owned()
    assert len(fleet.members["b"].manager.owned()) == 4
    assert fleet.timeline.violations == []


class StuckDrainer:
    """Partition 0's work never finishes; partition 1's drain crashes; others drain at once."""

    def __init__(self) -> None:
        self.calls: list[int] = []

    async def drain(self, partition: int) -> None:
        self.calls.append(partition)
        if partition == 0:
            await asyncio.Event().wait()
        if partition == 1:
            raise RuntimeError("provider bug")


async def test_a_stuck_or_failing_drain_still_releases_after_the_drain_timeout(
    hub8: StorageClients,
    fast_settings: Callable[..., AzureStorageSettings],
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with StorageClients(fast_settings("solo")) as clients:
        drainer = StuckDrainer()
        manager = PartitionManager(
            fast_settings("solo"), clients, drainer, drain_timeout=timedelta(seconds=0.5)
        )
        await manager.start()
        try:
            await wait_until(lambda: _true(len(manager.owned()) == PARTITIONS), 10, "solo owns all")
            logger = "durable_azstorage.azure.partitioning.manager"
            with caplog.at_level(logging.WARNING, logger=logger):
                await manager.stop()
        finally:
            await manager.stop(graceful=False)
    assert sorted(drainer.calls) == list(range(PARTITIONS))
    names = hub8.settings.names
    rows = await LeaseTable(hub8.table(names.partitions_table), names, hub8.retry).read_all()
    # released by stop() (an expired lease would still name its owner)
    assert all(r.current_owner is None and not r.is_draining for r in rows.values())
    text = caplog.text
    assert "draining partition 0 took over" in text and "drain of 1 failed" in text


async def _true(value: bool) -> bool:
    return value
