"""The worker adapts to what a backend offers beyond the protocol (``backend.protocol``'s
optional capabilities), and falls back to defaults when it offers nothing more."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import pytest

from durable_azstorage.backend.clock import FakeClock
from durable_azstorage.backend.memory import InMemoryBackend
from durable_azstorage.worker.engine import DEFAULT_MAX_DEQUEUE_COUNT, engine_limits
from durable_azstorage.worker.worker import backend_clock, renew_interval_for

from ..builders import at
from .fake_backend import FakeBackend


def test_locks_are_renewed_at_a_third_of_the_backends_lock_timeout() -> None:
    backend = InMemoryBackend(lock_timeout=timedelta(seconds=3))
    assert renew_interval_for(backend, None) == 1.0
    assert renew_interval_for(backend, timedelta(seconds=2)) == 2.0  # configured wins


def test_a_backend_without_a_lock_timeout_gets_the_default_renew_interval() -> None:
    assert renew_interval_for(FakeBackend(), None) == 10.0  # type: ignore[arg-type]


def test_episodes_are_stamped_with_the_backends_own_clock() -> None:
    clock = FakeClock(at(0))
    stamp = backend_clock(InMemoryBackend(clock=clock))
    assert stamp is not None
    clock.advance(5)
    assert stamp() == at(5)
    assert backend_clock(FakeBackend()) is None  # type: ignore[arg-type]


@dataclass(frozen=True)
class Tuned:
    max_dequeue_count: int


def test_the_poison_threshold_comes_from_the_call_then_the_settings_then_the_default() -> None:
    limits = {"max_concurrent_orchestrations": 1, "max_concurrent_activities": 1}
    assert engine_limits(**limits, max_dequeue_count=4, settings=Tuned(7)) == 4
    assert engine_limits(**limits, max_dequeue_count=None, settings=Tuned(7)) == 7
    assert (
        engine_limits(**limits, max_dequeue_count=None, settings=None) == DEFAULT_MAX_DEQUEUE_COUNT
    )
    with pytest.raises(ValueError, match="max_dequeue_count must be >= 1, got 0"):
        engine_limits(**limits, max_dequeue_count=None, settings=Tuned(0))
