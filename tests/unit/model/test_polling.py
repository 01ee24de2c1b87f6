"""The idle poll back-off (``model.polling``) on a fake clock: no real time passes."""

from __future__ import annotations

import math

import pytest

from durable_azstorage.model.polling import IdleBackoff


class Ticks:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def backoff(
    clock: Ticks, *, fastest: float = 0.05, slowest: float = 2.0, ratio: float = 0.08
) -> IdleBackoff:
    return IdleBackoff(fastest=fastest, slowest=slowest, ratio=ratio, clock=clock)


def test_fastest_right_after_work_then_a_fraction_of_the_idle_time_then_capped() -> None:
    clock = Ticks()
    policy = backoff(clock)

    seen = []
    for idle in (0.0, 0.5, 10.0, 20.0, 25.0, 3600.0):
        clock.now = 1000.0 + idle
        seen.append(round(policy.interval(), 6))

    assert seen == [0.05, 0.05, 0.8, 1.6, 2.0, 2.0]


def test_work_restarts_the_back_off_from_the_fastest_interval() -> None:
    clock = Ticks()
    policy = backoff(clock)
    clock.now += 60
    assert policy.interval() == 2.0

    policy.active()

    assert (policy.idle_for(), policy.interval()) == (0.0, 0.05)
    clock.now += 10
    assert policy.idle_for() == 10.0
    assert policy.interval() == pytest.approx(0.8)


def test_ratio_one_is_doubling_per_empty_poll() -> None:
    """Polling each time the interval says so reproduces the receivers' old schedule: 50 ms,
    100 ms, 200 ms, ... up to the cap."""
    clock = Ticks()
    policy = backoff(clock, slowest=10.0, ratio=1.0)
    waits = []
    for _ in range(10):
        wait = policy.interval()
        waits.append(round(wait, 6))
        clock.now += wait

    assert waits == [0.05, 0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 10.0]


def test_polls_within_matches_polling_step_by_step() -> None:
    """The cost estimate is the number of polls the schedule really makes in that time."""
    clock = Ticks()
    policy = backoff(clock)
    polls = 0
    while policy.idle_for() < 60:
        clock.now += policy.interval()
        polls += 1

    estimate = policy.polls_within(60)
    assert abs(polls - estimate) <= 0.05 * estimate  # the integral vs whole polls
    assert policy.polls_within(0.5) == pytest.approx(10)  # all at the fastest interval
    assert policy.polls_within(3600) - policy.polls_within(60) == pytest.approx(1770)


def test_a_quiet_period_costs_a_logarithm_of_its_length() -> None:
    policy = backoff(Ticks())
    to_the_cap = policy.polls_within(25)  # 0.08 x 25 s = the 2 s cap
    assert to_the_cap == pytest.approx(0.625 / 0.05 + math.log(40) / 0.08)  # ≈ 58.6
    assert policy.polls_within(60) == pytest.approx(to_the_cap + 35 / 2)


@pytest.mark.parametrize(
    ("fastest", "slowest", "ratio", "named"),
    [
        (0.0, 1.0, 0.5, "fastest"),
        (-1.0, 1.0, 0.5, "fastest"),
        (math.nan, 1.0, 0.5, "fastest"),
        (0.5, 0.1, 0.5, "slowest"),
        (0.05, math.inf, 0.5, "slowest"),
        (0.05, 1.0, 0.0, "ratio"),
        (0.05, 1.0, math.inf, "ratio"),
    ],
)
def test_bad_parameters_are_refused_by_name(
    fastest: float, slowest: float, ratio: float, named: str
) -> None:
    with pytest.raises(ValueError, match=f"^{named}: "):
        IdleBackoff(fastest=fastest, slowest=slowest, ratio=ratio)
