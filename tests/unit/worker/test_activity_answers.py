"""Every activity answer names the scheduling it answers, whatever executor produced it."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from durable_azstorage.backend.protocol import ActivityWorkItem
from durable_azstorage.model.history import TaskCompleted, TaskFailed, TaskScheduled
from durable_azstorage.model.messages import TaskMessage
from durable_azstorage.worker.activities import ActivityProcessor

from ..builders import T0, me


class AnswerRecorder:
    """The one Backend method ``ActivityProcessor.process`` calls on success."""

    def __init__(self) -> None:
        self.answers: list[TaskMessage] = []

    async def complete_activity(self, item: ActivityWorkItem, result: TaskMessage) -> None:
        self.answers.append(result)


async def plain_executor(item: ActivityWorkItem) -> TaskCompleted | TaskFailed:
    return TaskCompleted(timestamp=T0, task_scheduled_id=item.task_id, result='"done"')


def _item(schedule_index: int | None, dequeue_count: int = 1) -> ActivityWorkItem:
    request = TaskMessage(
        instance=me(), event=TaskScheduled(event_id=4, name="work", schedule_index=schedule_index)
    )
    return ActivityWorkItem.from_message(request, lock_token=object(), dequeue_count=dequeue_count)


async def _answer(item: ActivityWorkItem) -> Any:
    backend = AnswerRecorder()
    processor = ActivityProcessor(
        backend,
        plain_executor,
        max_dequeue_count=3,
        logger=logging.getLogger("test"),  # type: ignore[arg-type]
        clock=lambda: T0 + timedelta(seconds=1),
    )
    await processor.process(item)
    (answer,) = backend.answers
    return answer.event


async def test_the_answer_carries_the_requests_schedule_index() -> None:
    assert (await _answer(_item(2))).schedule_index == 2
    assert (await _answer(_item(None))).schedule_index is None


async def test_a_poison_failure_carries_it_too() -> None:
    answer = await _answer(_item(1, dequeue_count=4))
    assert isinstance(answer, TaskFailed) and answer.schedule_index == 1
