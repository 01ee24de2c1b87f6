"""``eventually`` / ``eventually_async``: return the first accepted value, fail explaining why.

Time is real but short: each waiting test needs well under a second.
"""

from __future__ import annotations

import asyncio
import itertools

import pytest

from durable_azstorage.testing.eventually import EventuallyTimeout, eventually, eventually_async


def test_returns_the_first_truthy_value() -> None:
    values = iter([None, 0, "", "ready", "later"])
    assert eventually(lambda: next(values), interval=0.001) == "ready"


def test_until_decides_and_the_value_is_returned() -> None:
    counter = itertools.count()
    assert eventually(lambda: next(counter), until=lambda n: n >= 3, interval=0.001) == 3


def test_timeout_names_what_was_awaited_and_the_last_value() -> None:
    counter = itertools.count()
    with pytest.raises(EventuallyTimeout) as caught:
        eventually(
            lambda: {"status": "Running", "n": next(counter)},
            until=lambda s: False,
            timeout=0.1,
            interval=0.01,
            what="i-1 to complete",
        )
    message = str(caught.value)
    assert "waiting for i-1 to complete" in message
    assert "last value: {'status': 'Running', 'n': " in message
    last = int(message.rsplit("'n': ", 1)[1].rstrip("}"))
    assert last >= 2  # probed repeatedly, and the message shows the latest probe
    assert isinstance(caught.value, AssertionError)  # pytest reports it as a failed assertion


def test_probe_errors_propagate_instead_of_being_retried() -> None:
    calls = []

    def probe() -> bool:
        calls.append(1)
        raise KeyError("broken probe")

    with pytest.raises(KeyError, match="broken probe"):
        eventually(probe, timeout=5)
    assert len(calls) == 1


def test_a_zero_timeout_still_probes_once() -> None:
    assert eventually(lambda: "now", timeout=0) == "now"


async def test_async_flavour_awaits_async_probes() -> None:
    counter = itertools.count()

    async def probe() -> int:
        await asyncio.sleep(0)
        return next(counter)

    assert await eventually_async(probe, until=lambda n: n == 2, interval=0.001) == 2


async def test_async_flavour_lets_the_loop_make_the_condition_true() -> None:
    done = asyncio.Event()
    asyncio.get_running_loop().call_later(0.05, done.set)
    assert await eventually_async(done.is_set, timeout=5, interval=0.01) is True


async def test_async_timeout_message() -> None:
    with pytest.raises(EventuallyTimeout, match=r"waiting for the queue to drain .*last value: 7"):
        await eventually_async(
            lambda: 7,
            until=lambda n: n == 0,
            timeout=0.05,
            interval=0.01,
            what="the queue to drain",
        )
