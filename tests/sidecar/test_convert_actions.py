"""An SDK's ``OrchestratorResponse`` as our ``ExecutionResult``, and through ``run_episode``.

The last tests drive ``run_episode`` with an executor that answers like the SDK (protobuf in,
protobuf out): the episode machinery (admission, continue-as-new, termination, messages) is
shared by the local and the remote executor.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta, timezone

from durabletask.internal import orchestrator_service_pb2 as pb

from durable_azstorage.azure.tracking.history_derivation import derive_outbound
from durable_azstorage.model.actions import (
    CompleteOrchestration,
    CreateSubOrchestration,
    CreateTimer,
    ScheduleTask,
    SendEvent,
    TerminateOrchestration,
)
from durable_azstorage.model.failure import FailureDetails
from durable_azstorage.model.history import (
    EventRaised,
    EventSent,
    ExecutionCompleted,
    ExecutionResumed,
    ExecutionStarted,
    ExecutionSuspended,
    ExecutionTerminated,
    HistoryEvent,
    OrchestrationInstance,
    OrchestratorCompleted,
    OrchestratorStarted,
    TaskCompleted,
    TaskFailed,
    TaskScheduled,
    TimerCreated,
    TimerFired,
)
from durable_azstorage.model.messages import TaskMessage
from durable_azstorage.model.status import OrchestrationStatus
from durable_azstorage.model.termination import TERMINATION_REQUEST, TerminationRequest
from durable_azstorage.replay.episode import run_episode
from durable_azstorage.replay.executor import ExecutionResult
from durable_azstorage.sidecar.convert_actions import execution_result_from_pb
from durable_azstorage.sidecar.convert_failure import failure_to_pb
from durable_azstorage.sidecar.convert_history import history_event_to_pb

T = datetime(2026, 5, 6, 7, 8, 9, 123456, tzinfo=timezone.utc)
ME = OrchestrationInstance(instance_id="i", execution_id="e")
START = ExecutionStarted(timestamp=T, name="orch", instance=ME)


def _action(aid: int, **kind: object) -> pb.OrchestratorAction:
    return pb.OrchestratorAction(id=aid, **kind)  # type: ignore[arg-type]


def _result(
    *actions: pb.OrchestratorAction,
    custom: str | None = None,
    past: Sequence[HistoryEvent] = (START,),
    new: Sequence[HistoryEvent] = (OrchestratorStarted(timestamp=T),),
) -> ExecutionResult:
    response = pb.OrchestratorResponse(instanceId="i", actions=list(actions))
    if custom is not None:
        response.customStatus.value = custom
    return execution_result_from_pb(response, past_events=past, new_events=new)


def test_every_supported_action_maps_to_ours() -> None:
    task = _action(1, scheduleTask=pb.ScheduleTaskAction(name="act", tags={"k": "v"}))
    task.scheduleTask.input.value = "1"
    task.scheduleTask.version.value = "2"
    sub = _action(
        2, createSubOrchestration=pb.CreateSubOrchestrationAction(name="child", instanceId="c")
    )
    sub.createSubOrchestration.input.value = '"x"'
    timer = _action(3, createTimer=pb.CreateTimerAction())
    timer.createTimer.fireAt.FromDatetime(T + timedelta(seconds=5))
    send = _action(
        4,
        sendEvent=pb.SendEventAction(
            name="ping", instance=pb.OrchestrationInstance(instanceId="o")
        ),
    )
    result = _result(task, sub, timer, send, custom='"busy"')
    assert result.actions == (
        ScheduleTask(id=1, name="act", input="1", version="2", tags={"k": "v"}),
        CreateSubOrchestration(id=2, name="child", instance_id="c", input='"x"'),
        CreateTimer(id=3, fire_at=T + timedelta(seconds=5)),
        SendEvent(id=4, instance_id="o", name="ping"),
    )
    assert result.custom_status == '"busy"' and result.status is OrchestrationStatus.RUNNING


def test_completions_keep_result_failure_version_and_carried_events() -> None:
    done = _action(
        5,
        completeOrchestration=pb.CompleteOrchestrationAction(
            orchestrationStatus=pb.ORCHESTRATION_STATUS_COMPLETED
        ),
    )
    done.completeOrchestration.result.value = "42"
    assert _result(done).completion == CompleteOrchestration(
        id=5, status=OrchestrationStatus.COMPLETED, result="42"
    )

    details = FailureDetails(
        message="m",
        error_type="app.E",
        stack_trace="st",
        inner_failure=FailureDetails(message="i", error_type="app.I"),
    )
    failed = _action(
        6,
        completeOrchestration=pb.CompleteOrchestrationAction(
            orchestrationStatus=pb.ORCHESTRATION_STATUS_FAILED,
            failureDetails=failure_to_pb(details),
        ),
    )
    assert _result(failed).completion == CompleteOrchestration(
        id=6, status=OrchestrationStatus.FAILED, failure_details=details
    )

    carried = pb.HistoryEvent(
        eventId=-1, eventRaised=pb.EventRaisedEvent(name="item")
    )  # SDK: no timestamp
    carried.eventRaised.input.value = '"c"'
    stamped = history_event_to_pb(EventRaised(timestamp=T - timedelta(hours=1), name="old"))
    again = _action(
        7,
        completeOrchestration=pb.CompleteOrchestrationAction(
            orchestrationStatus=pb.ORCHESTRATION_STATUS_CONTINUED_AS_NEW,
            carryoverEvents=[carried, stamped],
        ),
    )
    again.completeOrchestration.result.value = "[1]"
    again.completeOrchestration.newVersion.value = "v2"
    now = T + timedelta(minutes=1)
    result = _result(again, new=(OrchestratorStarted(timestamp=now),))
    assert result.completion == CompleteOrchestration(
        id=7,
        status=OrchestrationStatus.CONTINUED_AS_NEW,
        result="[1]",
        new_version="v2",
        carryover_events=(
            EventRaised(timestamp=now, name="item", input='"c"'),
            EventRaised(timestamp=T - timedelta(hours=1), name="old"),
        ),
    )


def test_unsupported_actions_fail_the_orchestration_naming_them() -> None:
    for action, named in (
        (_action(1, sendEntityMessage=pb.SendEntityMessageAction()), "sendEntityMessage"),
        (_action(3, rewindOrchestration=pb.RewindOrchestrationAction()), "rewindOrchestration"),
        (_action(4), "no type"),
        (
            _action(
                5,
                completeOrchestration=pb.CompleteOrchestrationAction(
                    orchestrationStatus=pb.ORCHESTRATION_STATUS_RUNNING
                ),
            ),
            "Running",
        ),
        (
            _action(
                6,
                completeOrchestration=pb.CompleteOrchestrationAction(
                    orchestrationStatus=pb.ORCHESTRATION_STATUS_CANCELED
                ),
            ),
            "CANCELED",
        ),
    ):
        result = _result(_action(0, scheduleTask=pb.ScheduleTaskAction(name="a")), action)
        completion = result.completion
        assert completion is not None and completion.status is OrchestrationStatus.FAILED
        assert result.actions == (completion,)  # nothing else is acted upon
        assert (
            completion.failure_details is not None and named in completion.failure_details.message
        )
        assert completion.failure_details.is_non_retriable


def test_an_invalid_child_id_or_event_target_fails_the_orchestration_naming_the_rule() -> None:
    for action, named in (
        (
            _action(
                1, createSubOrchestration=pb.CreateSubOrchestrationAction(name="c", instanceId="..")
            ),
            "sub-orchestration instance id '..'",
        ),
        (
            _action(
                2,
                sendEvent=pb.SendEventAction(
                    name="e", instance=pb.OrchestrationInstance(instanceId="$poison")
                ),
            ),
            "send_event target instance id '$poison'",
        ),
    ):
        completion = _result(action).completion
        assert completion is not None and completion.status is OrchestrationStatus.FAILED
        assert (
            completion.failure_details is not None and named in completion.failure_details.message
        )
        assert (
            completion.failure_details.error_type
            == "durable_azstorage.model.errors.InvalidIdentifierError"
        )


def test_suspension_follows_the_history() -> None:
    assert _result(
        new=(OrchestratorStarted(timestamp=T), ExecutionSuspended(timestamp=T))
    ).suspended
    assert not _result(
        past=(START, ExecutionSuspended(timestamp=T)),
        new=(OrchestratorStarted(timestamp=T), ExecutionResumed(timestamp=T)),
    ).suspended
    assert (
        _result(past=(START, ExecutionSuspended(timestamp=T))).status
        is OrchestrationStatus.SUSPENDED
    )


def test_termination_wins_and_drops_other_decisions() -> None:
    # The SDK keeps actions decided earlier in the batch and may have completed first.
    done = _action(
        2,
        completeOrchestration=pb.CompleteOrchestrationAction(
            orchestrationStatus=pb.ORCHESTRATION_STATUS_COMPLETED
        ),
    )
    result = _result(
        _action(1, scheduleTask=pb.ScheduleTaskAction(name="a")),
        done,
        new=(OrchestratorStarted(timestamp=T), ExecutionTerminated(timestamp=T, input='"why"')),
    )
    assert result.actions == (
        CompleteOrchestration(id=2, status=OrchestrationStatus.TERMINATED, result='"why"'),
    )


# --- through run_episode ----------------------------------------------------------------------
class SdkLike:
    """An executor that answers with protobuf, as the remote one does, from a script."""

    def __init__(
        self,
        answer: Callable[
            [Sequence[HistoryEvent], Sequence[HistoryEvent]], list[pb.OrchestratorAction]
        ],
    ):
        self.answer = answer
        self.calls: list[tuple[list[str], list[str]]] = []

    def execute(
        self, instance_id: str, past: Sequence[HistoryEvent], new: Sequence[HistoryEvent]
    ) -> ExecutionResult:
        self.calls.append(([type(e).__name__ for e in past], [type(e).__name__ for e in new]))
        response = pb.OrchestratorResponse(instanceId=instance_id, actions=self.answer(past, new))
        return execution_result_from_pb(response, past_events=past, new_events=new)


def _msg(event: HistoryEvent) -> TaskMessage:
    return TaskMessage(instance=ME, event=event)


def test_a_task_retried_under_its_own_id_accepts_the_new_answer() -> None:
    """The Python SDK schedules a retry under the original task id; the retry's answer must
    reach the code (not be dropped as a duplicate of the failed attempt's)."""
    history = [
        OrchestratorStarted(timestamp=T),
        START,
        TaskScheduled(event_id=1, timestamp=T, name="flaky"),
        OrchestratorCompleted(timestamp=T),
        OrchestratorStarted(timestamp=T),
        TaskFailed(
            timestamp=T,
            task_scheduled_id=1,
            failure_details=FailureDetails(message="x", error_type="E"),
        ),
        TimerCreated(event_id=2, timestamp=T, fire_at=T),
        OrchestratorCompleted(timestamp=T),
        OrchestratorStarted(timestamp=T),
        TimerFired(timestamp=T, timer_id=2, fire_at=T),
        TaskScheduled(event_id=1, timestamp=T, name="flaky"),
        OrchestratorCompleted(timestamp=T),
    ]
    done = _action(
        3,
        completeOrchestration=pb.CompleteOrchestrationAction(
            orchestrationStatus=pb.ORCHESTRATION_STATUS_COMPLETED
        ),
    )
    sdk = SdkLike(lambda past, new: [done])
    episode = run_episode(
        sdk,
        "i",
        history,
        [_msg(TaskCompleted(timestamp=T, task_scheduled_id=1, result="1"))],
        now=T,
    )
    assert episode.discarded == ()
    assert sdk.calls[0][1] == ["OrchestratorStarted", "TaskCompleted"]
    assert (
        episode.state is not None and episode.state.runtime_status is OrchestrationStatus.COMPLETED
    )


def test_continue_as_new_generations_each_run_through_the_executor() -> None:
    def answer(
        past: Sequence[HistoryEvent], new: Sequence[HistoryEvent]
    ) -> list[pb.OrchestratorAction]:
        started = next(e for e in [*past, *new] if isinstance(e, ExecutionStarted))
        n = int(started.input or "0")
        status = (
            pb.ORCHESTRATION_STATUS_CONTINUED_AS_NEW if n < 2 else pb.ORCHESTRATION_STATUS_COMPLETED
        )
        action = _action(
            1, completeOrchestration=pb.CompleteOrchestrationAction(orchestrationStatus=status)
        )
        action.completeOrchestration.result.value = str(n + 1)
        return [action]

    sdk = SdkLike(answer)
    start = ExecutionStarted(timestamp=T, name="count", instance=ME, input="0")
    episode = run_episode(sdk, "i", [], [_msg(start)], now=T)
    assert len(sdk.calls) == 3  # one execute call per generation, all in one episode
    assert all(past == [] for past, _new in sdk.calls)
    assert episode.new_execution and episode.state is not None
    assert (
        episode.state.runtime_status is OrchestrationStatus.COMPLETED
        and episode.state.output == "3"
    )
    assert episode.state.generation == 2
    completed = [e for e in episode.new_events if isinstance(e, ExecutionCompleted)]
    assert [c.result for c in completed] == ["3"]


def _terminate(aid: int, target: str, *, recurse: bool) -> pb.OrchestratorAction:
    action = _action(
        aid,
        terminateOrchestration=pb.TerminateOrchestrationAction(instanceId=target, recurse=recurse),
    )
    action.terminateOrchestration.reason.value = '"why"'
    return action


def test_terminate_orchestration_maps_to_ours_and_is_dropped_once_recorded() -> None:
    assert _result(_terminate(3, "other", recurse=True)).actions == (
        TerminateOrchestration(id=3, instance_id="other", reason='"why"', recurse=True),
    )
    recorded = EventSent(event_id=3, timestamp=T, instance_id="other", name=TERMINATION_REQUEST)
    again = _result(_terminate(3, "other", recurse=True), past=(START, recorded))
    assert again.actions == ()  # the SDK sent it again; it was recorded by an earlier episode


def test_a_terminate_action_is_recorded_and_recovery_derives_the_same_message() -> None:
    """The termination is an event of the episode, so the checkpoint's recovery (which
    re-derives messages from committed events) re-sends exactly what the episode sent."""
    history = [OrchestratorStarted(timestamp=T), START, OrchestratorCompleted(timestamp=T)]
    sdk = SdkLike(lambda past, new: [_terminate(1, "other", recurse=False)])
    episode = run_episode(sdk, "i", history, [_msg(EventRaised(timestamp=T, name="go"))], now=T)
    sent = [e for e in episode.new_events if isinstance(e, EventSent)]
    assert [(e.event_id, e.instance_id, e.name) for e in sent] == [
        (1, "other", TERMINATION_REQUEST)
    ]
    assert TerminationRequest.decode(sent[0].input) == TerminationRequest(
        reason='"why"', recurse=False
    )
    expected = TaskMessage(
        instance=OrchestrationInstance(instance_id="other"),
        event=ExecutionTerminated(timestamp=T, input='"why"', recurse=False),
        sender=ME,
    )
    assert episode.orchestrator_messages == (expected,)
    committed = [*history, *episode.new_events]
    recovered = derive_outbound(committed, len(history), continued_as_new=False)
    assert recovered.orchestrator == [expected]
    assert sdk.calls[0][0] == ["OrchestratorStarted", "ExecutionStarted", "OrchestratorCompleted"]
