"""The scale advice's rules on hand-made latency samples (``model.scale``)."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest

from durable_azstorage.model.scale import (
    SAMPLES,
    HubSample,
    PartitionSample,
    ScaleAction,
    ScaleAdvisor,
)


def sample(work_age: float | None, *control_ages: float | None, poll: float = 1.0) -> HubSample:
    return HubSample(
        partitions=tuple(
            PartitionSample(partition=i, messages=0 if a is None else 1, oldest_message_age=a)
            for i, a in enumerate(control_ages)
        ),
        work_items=0 if work_age is None else 1,
        work_item_age=work_age,
        max_poll_interval=timedelta(seconds=poll),
    )


def advisor(*samples: HubSample, rng: random.Random | None = None) -> ScaleAdvisor:
    advice = ScaleAdvisor(rng=rng or random.Random(1), random_scale_in=rng is not None)
    for s in samples:
        advice.add(s)
    return advice


def test_a_hub_with_work_and_no_worker_gets_its_first_one_at_once() -> None:
    advice = advisor(sample(None, 0.5, None)).recommend(0)
    assert advice.action is ScaleAction.ADD_WORKER and "first worker" in advice.reason


def test_no_judgement_before_every_queue_has_enough_samples() -> None:
    partial = advisor(*[sample(2.0, 2.0)] * (SAMPLES - 1))
    assert partial.samples_needed == 1
    advice = partial.recommend(1)
    assert advice.action is ScaleAction.NONE and "not enough samples" in advice.reason
    assert advice.keep_workers_alive


def test_an_idle_hub_lets_every_worker_go() -> None:
    idle = advisor(*[sample(None, None, None)] * SAMPLES)
    advice = idle.recommend(3)
    assert advice.action is ScaleAction.REMOVE_WORKER and not advice.keep_workers_alive
    assert advice.reason == "task hub is idle"
    assert idle.recommend(0).action is ScaleAction.NONE


def test_high_work_item_latency_adds_a_worker() -> None:
    advice = advisor(*[sample(1.5, 0.0, 0.0)] * SAMPLES).recommend(4)
    assert (
        advice.action is ScaleAction.ADD_WORKER
        and "work-item queue latency 1500 ms" in advice.reason
    )


def test_after_an_idle_sample_only_a_full_poll_interval_counts_as_high() -> None:
    # 0.5 s after a zero: an idle worker polling every 2 s explains it.
    slow_poll = advisor(*[sample(0.0, 0.0)] * (SAMPLES - 1), sample(0.5, 0.0, poll=2.0))
    assert slow_poll.recommend(1).action is not ScaleAction.ADD_WORKER
    waited = advisor(*[sample(0.0, 0.0)] * (SAMPLES - 1), sample(2.0, 0.0, poll=2.0))
    assert waited.recommend(1).action is ScaleAction.ADD_WORKER


def test_orchestration_work_never_gets_more_workers_than_partitions() -> None:
    busy_control = advisor(*[sample(None, 1.2, 1.3)] * SAMPLES)
    assert busy_control.recommend(1).action is ScaleAction.ADD_WORKER
    assert "2 busy partitions, 1 workers" in busy_control.recommend(1).reason
    assert busy_control.recommend(2).action is ScaleAction.NONE
    advice = busy_control.recommend(3)
    assert (
        advice.action is ScaleAction.REMOVE_WORKER
        and "more workers than partitions" in advice.reason
    )


def test_idle_control_queues_and_work_items_shrink_to_the_busy_partitions() -> None:
    one_busy = advisor(*[sample(None, 0.05, None, None)] * SAMPLES)
    advice = one_busy.recommend(2)
    assert (
        advice.action is ScaleAction.REMOVE_WORKER and "2 of 3 control queues idle" in advice.reason
    )
    assert one_busy.recommend(1).action is ScaleAction.NONE


def test_healthy_queues_keep_the_count_and_sometimes_try_one_less() -> None:
    steady = [sample(0.05, 0.05, 0.05)] * SAMPLES
    assert advisor(*steady).recommend(2).action is ScaleAction.NONE  # random scale-in off
    actions = {advisor(*steady, rng=random.Random(seed)).recommend(2).action for seed in range(60)}
    assert actions == {ScaleAction.NONE, ScaleAction.REMOVE_WORKER}


def test_fewer_partitions_than_before_forget_the_extra_histories() -> None:
    shrinking = advisor(sample(None, 1.0, 1.0, 1.0), sample(None, 1.0))
    assert len(shrinking.control) == 1


def test_a_negative_worker_count_is_refused_naming_it() -> None:
    with pytest.raises(ValueError, match="current_worker_count must be >= 0"):
        advisor(sample(None)).recommend(-1)
