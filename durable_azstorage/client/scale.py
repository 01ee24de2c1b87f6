"""``get_scale_recommendation``: sample the hub's queues until the advice has enough samples.

The .NET provider's monitor is called every few seconds by a scale controller and keeps its
samples between calls; so does this one (one ``ScaleAdvice`` per client). A first call, or
one after a pause, takes the samples it lacks ``sample_interval`` apart; a caller that
polls regularly pays one sample (two queue requests per queue) per call.
"""

from __future__ import annotations

import asyncio

from durable_azstorage.backend.protocol import Backend, QueueSampling
from durable_azstorage.model.errors import InvalidOperationError
from durable_azstorage.model.scale import ScaleAdvisor, ScaleRecommendation


class ScaleAdvice:
    def __init__(self, backend: Backend, advisor: ScaleAdvisor | None = None) -> None:
        self._backend = backend
        self.advisor = advisor or ScaleAdvisor()

    async def recommend(
        self, current_worker_count: int, *, sample_interval: float
    ) -> ScaleRecommendation:
        if current_worker_count < 0:
            raise ValueError(f"current_worker_count must be >= 0, got {current_worker_count}")
        if sample_interval < 0:
            raise ValueError(f"sample_interval must be >= 0 seconds, got {sample_interval}")
        queues = self._backend
        if not isinstance(queues, QueueSampling):
            raise InvalidOperationError(
                f"{type(queues).__name__} cannot sample its queues (QueueSampling), so it gets no scale advice"
            )
        self.advisor.add(await queues.sample_queues())
        while self.advisor.samples_needed > 0:
            await asyncio.sleep(sample_interval)
            self.advisor.add(await queues.sample_queues())
        return self.advisor.recommend(current_worker_count)
