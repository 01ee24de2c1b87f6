"""Scale advice: should an autoscaler add a worker, remove one, or keep the count?

The judgement follows the .NET provider's ``DisconnectedPerformanceMonitor``: look at each
queue's *latency* (the age of its oldest visible message) over the last few samples, not at
its length, because a long queue that is drained fast needs no help and a short one whose
head waits for seconds does. Rules, in order:

* a hub with work and no worker needs its first one;
* no judgement until every queue has ``SAMPLES`` samples;
* a hub whose queues were empty in every sample is idle: remove workers (none need stay up);
* a work-item queue with high latency adds a worker (activities scale with it);
* more workers than partitions while activities are idle: remove one (orchestration work
  never uses more workers than partitions);
* more control queues with high latency than workers: add one;
* more workers than busy control queues while activities are idle: remove one;
* otherwise keep, except that one time in ten, when every queue is fast, remove one (a
  slow scale-in that corrects itself if latency rises again).

"High" is at least ``min(max poll interval, 1 s)``; right after an idle sample (latency 0)
only a full max poll interval counts, since an idle worker polls that slowly. Pure: the
samples come from the backend (``backend.protocol.QueueSampling``), the chance from ``rng``.
"""

from __future__ import annotations

import enum
import random
from collections import deque
from dataclasses import dataclass
from datetime import timedelta

SAMPLES = 5
"""Samples per queue before advice is given."""

LOW_LATENCY_MS = 200
"""Latency below which a queue counts as not busy (for the random scale-in)."""


@dataclass(frozen=True, slots=True)
class PartitionSample:
    """One control queue: approximate length, oldest visible message's age, lease owner."""

    partition: int
    messages: int
    oldest_message_age: float | None
    owner: str | None = None


@dataclass(frozen=True, slots=True)
class HubSample:
    """One look at the hub's queues and leases. Ages are seconds (None: nothing visible);
    ``max_poll_interval`` is how long an idle worker waits between polls."""

    partitions: tuple[PartitionSample, ...]
    work_items: int
    work_item_age: float | None = None
    max_poll_interval: timedelta = timedelta(seconds=1)


class ScaleAction(enum.Enum):
    ADD_WORKER = "add"
    REMOVE_WORKER = "remove"
    NONE = "keep"


@dataclass(frozen=True, slots=True)
class ScaleRecommendation:
    """``action`` with its ``reason``; ``keep_workers_alive`` False means the hub is idle
    and every worker may go (scale to zero)."""

    action: ScaleAction
    keep_workers_alive: bool
    reason: str


class LatencyHistory:
    """The last ``SAMPLES`` latencies (ms) of one queue."""

    def __init__(self) -> None:
        self._values: deque[int] = deque(maxlen=SAMPLES)

    def add(self, milliseconds: int) -> None:
        self._values.append(max(0, milliseconds))

    @property
    def values(self) -> list[int]:
        """Oldest first."""
        return list(self._values)

    @property
    def count(self) -> int:
        return len(self._values)

    @property
    def full(self) -> bool:
        return len(self._values) == SAMPLES

    @property
    def latest(self) -> int:
        return self._values[-1] if self._values else 0

    @property
    def previous(self) -> int:
        return self._values[-2] if len(self._values) > 1 else 0

    @property
    def idle(self) -> bool:
        return all(v == 0 for v in self._values)

    def all_below(self, milliseconds: int) -> bool:
        return all(v < milliseconds for v in self._values)

    def __repr__(self) -> str:
        return f"LatencyHistory({list(self._values)})"


def _ms(age: float | None) -> int:
    return 0 if age is None else int(age * 1000)


class ScaleAdvisor:
    """Keeps the latency samples of one hub's queues and judges them (see the module doc)."""

    def __init__(self, *, rng: random.Random | None = None, random_scale_in: bool = True) -> None:
        self.work_items = LatencyHistory()
        self.control: list[LatencyHistory] = []
        self._rng = rng or random.Random()
        self._random_scale_in = random_scale_in
        self._max_poll_ms = 1000
        self.latest: HubSample | None = None

    @property
    def samples_needed(self) -> int:
        """Samples still missing before every queue has a full history."""
        if self.latest is None:
            return SAMPLES
        return SAMPLES - min(h.count for h in (self.work_items, *self.control))

    def add(self, sample: HubSample) -> None:
        self.latest = sample
        self._max_poll_ms = max(1, int(sample.max_poll_interval.total_seconds() * 1000))
        self.work_items.add(_ms(sample.work_item_age))
        count = len(sample.partitions)
        del self.control[count:]  # fewer partitions than before: forget the extra queues
        while len(self.control) < count:
            self.control.append(LatencyHistory())
        for history, partition in zip(self.control, sample.partitions, strict=False):
            history.add(_ms(partition.oldest_message_age))

    @property
    def high_latency_ms(self) -> int:
        return min(self._max_poll_ms, 1000)

    def _high(self, history: LatencyHistory) -> bool:
        if history.previous == 0:
            return history.latest >= self._max_poll_ms  # may be an idle worker's slow poll
        return history.latest >= self.high_latency_ms

    def recommend(self, worker_count: int) -> ScaleRecommendation:
        if worker_count < 0:
            raise ValueError(f"current_worker_count must be >= 0, got {worker_count}")
        work, control = self.work_items, self.control
        partitions = len(control)
        idle = work.idle and all(h.idle for h in control)
        if worker_count == 0 and not idle:
            return ScaleRecommendation(
                ScaleAction.ADD_WORKER, True, "first worker: the hub has work"
            )
        if not work.full or not all(h.full for h in control):
            return ScaleRecommendation(
                ScaleAction.NONE, not idle, f"not enough samples yet ({SAMPLES} per queue needed)"
            )
        if idle:
            action = ScaleAction.REMOVE_WORKER if worker_count > 0 else ScaleAction.NONE
            return ScaleRecommendation(action, False, "task hub is idle")
        if self._high(work):
            return ScaleRecommendation(
                ScaleAction.ADD_WORKER,
                True,
                f"work-item queue latency {work.latest} ms >= {self.high_latency_ms} ms",
            )
        if worker_count > partitions and work.idle:
            return ScaleRecommendation(
                ScaleAction.REMOVE_WORKER,
                True,
                f"work items idle and more workers than partitions ({worker_count} > {partitions})",
            )
        busy = [i for i, h in enumerate(control) if self._high(h)]
        if worker_count < len(busy):
            return ScaleRecommendation(
                ScaleAction.ADD_WORKER,
                True,
                f"control queue {busy[0]} latency {control[busy[0]].latest} ms >= "
                f"{self.high_latency_ms} ms ({len(busy)} busy partitions, {worker_count} workers)",
            )
        active = sum(1 for h in control if not h.idle)
        if worker_count > active and work.idle:
            return ScaleRecommendation(
                ScaleAction.REMOVE_WORKER,
                any(h.idle for h in control),
                f"work items idle and {partitions - active} of {partitions} control queues idle",
            )
        if worker_count > 1 and self._random_scale_in and self._rng.randrange(10) == 0:
            fast = all(h.latest <= LOW_LATENCY_MS and h.previous <= LOW_LATENCY_MS for h in control)
            if fast and work.all_below(LOW_LATENCY_MS):
                return ScaleRecommendation(
                    ScaleAction.REMOVE_WORKER,
                    True,
                    "no queue is busy (an occasional trial scale-in)",
                )
        return ScaleRecommendation(ScaleAction.NONE, True, "queue latencies are healthy")
