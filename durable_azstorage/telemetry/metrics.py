"""OpenTelemetry metrics: what a worker did (counters, histograms) and how the hub looks (gauges).

Instruments come from the global meter provider through OpenTelemetry's proxies, so they may
be created before an application (or ``--metrics-port``) installs its provider. Without the
``otel`` extra every ``record_*`` returns at once.

Work done, recorded where it happens:

* ``durable_azstorage.storage.requests`` {service, operation, outcome}: every storage
  request (the request counter's tally, ``azure.storage.metrics``).
* ``durable_azstorage.orchestration.episodes`` {outcome} and
  ``durable_azstorage.orchestration.episode.duration`` (s): episodes from lock to commit.
* ``durable_azstorage.activity.executions`` {name, outcome} and
  ``durable_azstorage.activity.duration`` (s).
* ``durable_azstorage.poison_messages`` {kind}: work items given up after too many deliveries.

The hub, sampled by ``HubGauges`` (a storage read per sample, so only a process that exposes
metrics runs it): ``durable_azstorage.control_queue.backlog`` and
``durable_azstorage.control_queue.oldest_message_age`` (s) {partition},
``durable_azstorage.work_item_queue.backlog``, ``durable_azstorage.partitions.owned`` {owner}.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from durable_azstorage.model.scale import HubSample
from durable_azstorage.telemetry import otel

_log = logging.getLogger(__name__)


class _Instruments:
    """The counters and histograms, created once on first use."""

    def __init__(self) -> None:
        meter = otel.metrics.get_meter(otel.METER_NAME)
        self.requests = meter.create_counter(
            "durable_azstorage.storage.requests",
            unit="{request}",
            description="Storage requests by service, REST operation and outcome",
        )
        self.episodes = meter.create_counter(
            "durable_azstorage.orchestration.episodes",
            unit="{episode}",
            description="Orchestration episodes by outcome (committed, conflict, abandoned, failed)",
        )
        self.episode_duration = meter.create_histogram(
            "durable_azstorage.orchestration.episode.duration",
            unit="s",
            description="Orchestration episode latency, from lock to commit",
        )
        self.activities = meter.create_counter(
            "durable_azstorage.activity.executions",
            unit="{execution}",
            description="Activity executions by name and outcome (completed, failed, abandoned)",
        )
        self.activity_duration = meter.create_histogram(
            "durable_azstorage.activity.duration",
            unit="s",
            description="Activity execution latency",
        )
        self.poison = meter.create_counter(
            "durable_azstorage.poison_messages",
            unit="{message}",
            description="Work items given up after too many deliveries, by kind",
        )


_instruments: list[_Instruments] = []
_instruments_lock = threading.Lock()


def _get() -> _Instruments:
    if not _instruments:
        with _instruments_lock:
            if not _instruments:
                _instruments.append(_Instruments())
    return _instruments[0]


def record_storage_request(service: str, operation: str, *, failed: bool) -> None:
    if otel.AVAILABLE:
        _get().requests.add(
            1, {"service": service, "operation": operation, "outcome": "failed" if failed else "ok"}
        )


def record_episode(outcome: str, seconds: float) -> None:
    if otel.AVAILABLE:
        instruments = _get()
        instruments.episodes.add(1, {"outcome": outcome})
        instruments.episode_duration.record(seconds, {"outcome": outcome})


def record_activity(name: str, outcome: str, seconds: float) -> None:
    if otel.AVAILABLE:
        instruments = _get()
        attributes = {"name": name, "outcome": outcome}
        instruments.activities.add(1, attributes)
        instruments.activity_duration.record(seconds, attributes)


def record_poison(kind: str) -> None:
    if otel.AVAILABLE:
        _get().poison.add(1, {"kind": kind})


class HubGauges:
    """Observable gauges over the latest ``HubSample``; ``run`` refreshes it periodically."""

    def __init__(
        self, sample: Callable[[], Awaitable[HubSample]], *, interval: float = 10.0
    ) -> None:
        self._sample = sample
        self._interval = interval
        self.latest: HubSample | None = None
        if otel.AVAILABLE:
            meter = otel.metrics.get_meter(otel.METER_NAME)
            meter.create_observable_gauge(
                "durable_azstorage.control_queue.backlog",
                [self._backlog],
                unit="{message}",
                description="Approximate messages in each control queue",
            )
            meter.create_observable_gauge(
                "durable_azstorage.control_queue.oldest_message_age",
                [self._age],
                unit="s",
                description="Age of the oldest visible message in each control queue",
            )
            meter.create_observable_gauge(
                "durable_azstorage.work_item_queue.backlog",
                [self._work_items],
                unit="{message}",
                description="Approximate messages in the work-item queue",
            )
            meter.create_observable_gauge(
                "durable_azstorage.partitions.owned",
                [self._owned],
                unit="{partition}",
                description="Control-queue partitions leased, by owner",
            )

    async def refresh(self) -> HubSample:
        self.latest = await self._sample()
        return self.latest

    async def run(self) -> None:
        """Refresh every ``interval`` seconds until cancelled; a failed look is logged."""
        while True:
            try:
                await self.refresh()
            except asyncio.CancelledError:
                raise
            except Exception:
                _log.warning("could not sample the task hub for metrics", exc_info=True)
            await asyncio.sleep(self._interval)

    def _observations(self, values: Iterable[tuple[float, dict[str, Any]]]) -> list[Any]:
        return [otel.metrics.Observation(value, attributes) for value, attributes in values]

    def _backlog(self, options: Any) -> list[Any]:
        parts = self.latest.partitions if self.latest else ()
        return self._observations((p.messages, {"partition": p.partition}) for p in parts)

    def _age(self, options: Any) -> list[Any]:
        parts = self.latest.partitions if self.latest else ()
        return self._observations(
            (p.oldest_message_age or 0.0, {"partition": p.partition}) for p in parts
        )

    def _work_items(self, options: Any) -> list[Any]:
        return self._observations([] if self.latest is None else [(self.latest.work_items, {})])

    def _owned(self, options: Any) -> list[Any]:
        owners: dict[str, int] = {}
        for p in self.latest.partitions if self.latest else ():
            if p.owner:
                owners[p.owner] = owners.get(p.owner, 0) + 1
        return self._observations((n, {"owner": owner}) for owner, n in owners.items())
