"""The wake-up blob: touches are throttled (with one trailing touch, so no send goes
unsignalled), and an idle watcher wakes on a touch from anyone."""

from __future__ import annotations

import asyncio

from stores_support import Stores

from durable_azstorage.azure.messaging.wakeup import WakeupSignal, WakeupWatcher
from durable_azstorage.model.polling import IdleBackoff
from durable_azstorage.testing.eventually import eventually_async


def _signal(stores: Stores, *, min_touch_interval: float = 0.0) -> WakeupSignal:
    container = stores.clients.container(stores.names.large_messages_container)
    return WakeupSignal(container, stores.clients.retry, min_touch_interval=min_touch_interval)


async def test_touch_changes_the_version_seen_by_another_process(stores: Stores) -> None:
    sender, watcher_side = _signal(stores), _signal(stores)
    assert await watcher_side.version() is None  # nobody touched it yet: not an error

    await sender.touch()
    first = await watcher_side.version()
    await sender.touch()
    second = await watcher_side.version()

    assert first is not None and second is not None and first != second


async def test_touches_are_throttled_to_one_now_and_one_trailing(stores: Stores) -> None:
    sender = _signal(stores, min_touch_interval=60)
    watcher_side = _signal(stores)
    before = stores.clients.counter.snapshot()

    await sender.touch()
    first = await watcher_side.version()
    for _ in range(4):  # inside the throttle window: one trailing touch covers them all
        await sender.touch()
    assert sender.touches == 1
    await sender.flush()  # closing: the trailing touch is written now
    await sender.flush()  # nothing pending any more

    puts = (stores.clients.counter.snapshot() - before).counts.get(("blob", "PutBlob"), 0)
    assert (sender.touches, puts) == (2, 2)
    assert await watcher_side.version() != first


async def test_a_send_inside_the_window_is_signalled_at_its_end(stores: Stores) -> None:
    sender = _signal(stores, min_touch_interval=0.2)
    await sender.touch()
    await sender.touch()  # throttled: scheduled for the end of the window, not dropped

    await eventually_async(
        lambda: sender.touches, until=lambda n: n == 2, what="the trailing touch"
    )


async def test_a_busy_sender_widens_its_window_and_a_quiet_one_narrows_it(stores: Stores) -> None:
    """Touches are blob writes: a client that keeps sending touches ever less often (its
    workers poll fast anyway); one that sends after a quiet spell is signalled at once."""
    now = [0.0]
    container = stores.clients.container(stores.names.large_messages_container)
    sender = WakeupSignal(
        container,
        stores.clients.retry,
        min_touch_interval=0.05,
        max_touch_interval=0.2,
        clock=lambda: now[0],
    )
    await sender.touch()  # the first send: at once
    assert (sender.touches, sender.window) == (1, 0.05)
    windows = []
    for step in range(1, 4):  # sends keep coming inside the window: one trailing touch each
        now[0] += 0.01
        await sender.touch()
        await eventually_async(
            lambda: sender.touches, until=lambda n, s=step: n == s + 1, what="the trailing touch"
        )
        windows.append(sender.window)
    assert windows == [0.1, 0.2, 0.2]  # doubled per trailing touch, up to the widest

    now[0] += 0.5  # a quiet spell: the next send is signalled at once again
    await sender.touch()
    assert (sender.touches, sender.window) == (5, 0.05)


def _backoff(fastest: float) -> IdleBackoff:
    return IdleBackoff(fastest=fastest, slowest=fastest, ratio=1.0)


async def test_idle_watcher_wakes_on_a_touch(stores: Stores) -> None:
    woken = asyncio.Event()
    watcher = WakeupWatcher(
        _signal(stores),
        backoff=_backoff(0.1),
        slowest_poll=lambda: 10.0,
        idle_for=lambda: 60.0,
        on_wake=woken.set,
    )
    watcher.start()
    try:
        # A baseline first: no wake for old touches.
        await eventually_async(
            lambda: watcher.checks,
            until=lambda checks: checks >= 2,
            interval=0.02,
            what="two checks of the signal",
        )
        assert not woken.is_set()
        await _signal(stores).touch()
        await asyncio.wait_for(woken.wait(), timeout=10)
        assert watcher.wakes == 1
    finally:
        await watcher.stop()


async def test_busy_watcher_reads_nothing(stores: Stores) -> None:
    watcher = WakeupWatcher(
        _signal(stores),
        backoff=_backoff(0.05),
        slowest_poll=lambda: 0.05,
        idle_for=lambda: 60.0,
        on_wake=lambda: None,
    )
    before = stores.clients.counter.snapshot()
    watcher.start()
    try:
        await asyncio.sleep(0.5)
    finally:
        await watcher.stop()
    assert watcher.checks == 0
    assert (stores.clients.counter.snapshot() - before).by_service().get("blob", 0) == 0


class Ticks:
    """The watch's back-off clock, moved by hand."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_watch_backs_off_from_the_later_of_the_last_message_and_the_last_change(
    stores: Stores,
) -> None:
    clock = Ticks()
    receivers_idle = [10.0]  # seconds since a control-queue receiver last received a message
    watcher = WakeupWatcher(
        _signal(stores),
        backoff=IdleBackoff(fastest=0.05, slowest=2.0, ratio=0.08, clock=clock),
        slowest_poll=lambda: 10.0,
        idle_for=lambda: receivers_idle[0],
        on_wake=lambda: None,
    )
    clock.now = 30.0  # the signal last changed 30 s ago (when the watch was made)
    assert watcher.interval == 0.8  # 8 % of the 10 s since the last message

    receivers_idle[0] = 60.0
    assert watcher.interval == 2.0  # capped at wakeup_interval

    watcher.backoff.active()  # the signal changed just now
    assert watcher.interval == 0.05
    clock.now += 5
    assert watcher.interval == 0.4
