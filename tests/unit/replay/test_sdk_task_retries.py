"""Portable-SDK retries reuse the task id: a late answer to an earlier attempt is stale.

Activities and sub-orchestrations alike.

The portable SDKs schedule a retry under the original task id. Before ``schedule_index``,
scheduling the id again cleared "answered", so a redelivered failure of attempt 1 was taken
as attempt 2's answer (the code retried once more) and attempt 2's real answer was then
dropped as a duplicate. No storage here: ``run_episode`` with an executor that behaves like
the SDK (plain Python, no gRPC).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import timedelta

from durable_azstorage.model.actions import (
    CompleteOrchestration,
    CreateSubOrchestration,
    OrchestratorAction,
    ScheduleTask,
)
from durable_azstorage.model.failure import FailureDetails
from durable_azstorage.model.history import (
    ExecutionStarted,
    HistoryEvent,
    SubOrchestrationInstanceCompleted,
    SubOrchestrationInstanceCreated,
    SubOrchestrationInstanceFailed,
    TaskCompleted,
    TaskFailed,
    TaskScheduled,
)
from durable_azstorage.model.messages import TaskMessage
from durable_azstorage.model.status import OrchestrationStatus
from durable_azstorage.replay.episode import Episode, run_episode
from durable_azstorage.replay.executor import ExecutionResult
from durable_azstorage.replay.ledger import Ledger

from ..builders import IID, T0, me, msg, parent_of, started

FAILURE = FailureDetails(message="boom", error_type="app.Boom")


@dataclasses.dataclass(frozen=True)
class SdkLikeRetries:
    """Schedules ``action``; on each failure schedules it again under the same id (the SDK's
    retry); completes with the first success it sees. Activities by default."""

    action: OrchestratorAction = ScheduleTask(id=1, name="flaky")
    scheduled: type[HistoryEvent] = TaskScheduled
    failed: type[HistoryEvent] = TaskFailed
    succeeded: type[TaskCompleted | SubOrchestrationInstanceCompleted] = TaskCompleted

    def execute(
        self,
        instance_id: str,
        past_events: Sequence[HistoryEvent],
        new_events: Sequence[HistoryEvent],
    ) -> ExecutionResult:
        done = [e for e in (*past_events, *new_events) if isinstance(e, self.succeeded)]
        if done:
            completion = CompleteOrchestration(
                id=2, status=OrchestrationStatus.COMPLETED, result=done[0].result
            )
            return ExecutionResult(actions=(completion,), custom_status=None, suspended=False)
        fresh_failure = any(isinstance(e, self.failed) for e in new_events)
        first_run = not any(isinstance(e, self.scheduled) for e in past_events)
        actions = (self.action,) if first_run or fresh_failure else ()
        return ExecutionResult(actions=actions, custom_status=None, suspended=False)


CHILD_RETRIES = SdkLikeRetries(
    action=CreateSubOrchestration(id=1, name="kid", instance_id="kid"),
    scheduled=SubOrchestrationInstanceCreated,
    failed=SubOrchestrationInstanceFailed,
    succeeded=SubOrchestrationInstanceCompleted,
)


def _episode(history: list[HistoryEvent], *messages: TaskMessage, minute: int) -> Episode:
    return run_episode(
        SdkLikeRetries(), IID, history, list(messages), now=T0 + timedelta(minutes=minute)
    )


def test_a_redelivered_failure_of_attempt_1_is_not_taken_for_attempt_2s_answer() -> None:
    first = _episode([], msg(started("flaky_orch")), minute=1)
    (request_1,) = first.activity_messages
    assert isinstance(request_1.event, TaskScheduled) and request_1.event.schedule_index is None
    history = list(first.new_events)

    failed_1 = TaskFailed(timestamp=T0, task_scheduled_id=1, failure_details=FAILURE)
    retry = _episode(history, msg(failed_1), minute=2)
    (request_2,) = retry.activity_messages
    assert isinstance(request_2.event, TaskScheduled) and request_2.event.schedule_index == 1
    history += retry.new_events

    answer_2 = TaskCompleted(timestamp=T0, task_scheduled_id=1, result='"ok"', schedule_index=1)
    final = _episode(history, msg(failed_1), msg(answer_2), minute=3)

    assert [reason for _, reason in final.discarded] == [
        "stale answer to scheduling 0 of task 1; it was scheduled again (scheduling 1)"
    ]
    assert final.activity_messages == (), "the stale failure must not cause another retry"
    assert final.state is not None and final.state.runtime_status is OrchestrationStatus.COMPLETED
    assert final.state.output == '"ok"'


def test_histories_written_before_schedule_index_still_accept_the_retry_answer() -> None:
    # Stored before the field existed: both schedulings and the answer carry no index.
    history: list[HistoryEvent] = [
        started("flaky_orch"),
        TaskScheduled(event_id=1, name="flaky"),
        TaskFailed(task_scheduled_id=1, failure_details=FAILURE),
        TaskScheduled(event_id=1, name="flaky"),
    ]
    ledger = Ledger(history)
    assert (
        ledger.refusal(TaskMessage(instance=me(), event=TaskCompleted(task_scheduled_id=1)), T0)
        is None
    )
    answered = Ledger([*history, TaskCompleted(task_scheduled_id=1)])
    duplicate = answered.refusal(
        TaskMessage(instance=me(), event=TaskCompleted(task_scheduled_id=1)), T0
    )
    assert duplicate == "duplicate task response for id 1"


def test_a_redelivered_failure_of_child_attempt_1_is_not_taken_for_attempt_2s_answer() -> None:
    sdk = CHILD_RETRIES
    first = run_episode(sdk, IID, [], [msg(started("parent_orch"))], now=T0)
    (start_1,) = first.orchestrator_messages
    history = list(first.new_events)
    failed_1 = SubOrchestrationInstanceFailed(
        timestamp=T0, task_scheduled_id=1, failure_details=FAILURE
    )
    retry = run_episode(sdk, IID, history, [msg(failed_1)], now=T0 + timedelta(minutes=1))
    (start_2,) = retry.orchestrator_messages
    for start, index in ((start_1, None), (start_2, 1)):
        assert isinstance(start.event, ExecutionStarted) and start.event.parent is not None
        assert start.event.parent.schedule_index == index  # the child returns it with its notice
    assert start_1.instance.execution_id != start_2.instance.execution_id
    history += retry.new_events

    answer_2 = SubOrchestrationInstanceCompleted(
        timestamp=T0, task_scheduled_id=1, result='"ok"', schedule_index=1
    )
    final = run_episode(
        sdk, IID, history, [msg(failed_1), msg(answer_2)], now=T0 + timedelta(minutes=2)
    )

    assert [reason for _, reason in final.discarded] == [
        "stale answer to scheduling 0 of sub 1; it was scheduled again (scheduling 1)"
    ]
    assert final.orchestrator_messages == ()
    assert final.state is not None and final.state.output == '"ok"'


def test_a_child_answers_with_the_schedule_index_it_was_started_with() -> None:
    parent = dataclasses.replace(parent_of(1), schedule_index=2)
    done = run_episode(
        SdkLikeRetries(),
        "kid",
        [],
        [msg(started("k", instance_id="kid", parent=parent), instance_id="kid")],
        now=T0,
    )
    history = list(done.new_events)
    answered = TaskCompleted(timestamp=T0, task_scheduled_id=1, result='"r"')
    final = run_episode(
        SdkLikeRetries(), "kid", history, [msg(answered, instance_id="kid")], now=T0
    )
    (notice,) = final.orchestrator_messages
    assert isinstance(notice.event, SubOrchestrationInstanceCompleted)
    assert (notice.event.task_scheduled_id, notice.event.schedule_index) == (1, 2)
