"""History events and failure details <-> the portable SDK's protobufs: every type, round trips."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from durabletask.internal import orchestrator_service_pb2 as pb
from google.protobuf import json_format, struct_pb2

from durable_azstorage.model.failure import FailureDetails
from durable_azstorage.model.history import (
    EVENT_TYPES,
    ContinueAsNew,
    EventRaised,
    EventSent,
    ExecutionCompleted,
    ExecutionResumed,
    ExecutionStarted,
    ExecutionSuspended,
    ExecutionTerminated,
    GenericEvent,
    HistoryEvent,
    OrchestrationInstance,
    OrchestratorCompleted,
    OrchestratorStarted,
    ParentInstance,
    SubOrchestrationInstanceCompleted,
    SubOrchestrationInstanceCreated,
    SubOrchestrationInstanceFailed,
    TaskCompleted,
    TaskFailed,
    TaskScheduled,
    TimerCreated,
    TimerFired,
)
from durable_azstorage.model.status import OrchestrationStatus
from durable_azstorage.sidecar.convert_failure import failure_from_pb, failure_to_pb
from durable_azstorage.sidecar.convert_history import (
    history_event_from_pb,
    history_event_to_pb,
    status_from_pb,
    status_to_pb,
)

T = datetime(2026, 3, 4, 5, 6, 7, 891234, tzinfo=timezone.utc)
FIRE = T + timedelta(minutes=5, microseconds=17)


def _failure() -> FailureDetails:
    try:
        try:
            raise KeyError("inner")
        except KeyError as exc:
            raise ValueError("outer message") from exc
    except ValueError as exc:
        return FailureDetails.from_exception(exc, non_retriable=True)


def _every_event() -> list[HistoryEvent]:
    me = OrchestrationInstance(instance_id="i-1", execution_id="e-1")
    parent = ParentInstance(
        name="parent",
        instance=OrchestrationInstance(instance_id="p", execution_id="pe"),
        task_scheduled_id=4,
        version="2.0",
    )
    return [
        ExecutionStarted(
            event_id=-1,
            timestamp=T,
            name="orch",
            instance=me,
            input='{"a": 1}',
            version="1.0",
            parent=parent,
            scheduled_start_time=FIRE,
            tags={"team": "x", "env": "test"},
        ),
        ExecutionStarted(
            timestamp=T, name="bare", instance=OrchestrationInstance(instance_id="i-2")
        ),
        ExecutionCompleted(timestamp=T, status=OrchestrationStatus.COMPLETED, result='"done"'),
        ExecutionCompleted(
            timestamp=T, status=OrchestrationStatus.FAILED, failure_details=_failure()
        ),
        ExecutionTerminated(timestamp=T, input='"stop"', recurse=False),
        ExecutionTerminated(timestamp=T),
        ExecutionSuspended(timestamp=T, reason="pause"),
        ExecutionSuspended(timestamp=T),
        ExecutionResumed(timestamp=T, reason="go"),
        ContinueAsNew(timestamp=T, result="7"),
        OrchestratorStarted(timestamp=T),
        OrchestratorCompleted(timestamp=T),
        TaskScheduled(
            event_id=0, timestamp=T, name="act", input='""', version="3", tags={"k": "v"}
        ),
        TaskScheduled(event_id=1, timestamp=T, name="act"),
        TaskCompleted(timestamp=T, task_scheduled_id=0, result="null"),
        TaskCompleted(timestamp=T, task_scheduled_id=1),
        TaskFailed(timestamp=T, task_scheduled_id=1, failure_details=_failure()),
        SubOrchestrationInstanceCreated(
            event_id=2, timestamp=T, name="child", instance_id="c", input="1", version="v"
        ),
        SubOrchestrationInstanceCompleted(timestamp=T, task_scheduled_id=2, result="2"),
        SubOrchestrationInstanceFailed(
            timestamp=T, task_scheduled_id=2, failure_details=_failure()
        ),
        TimerCreated(event_id=3, timestamp=T, fire_at=FIRE),
        TimerFired(timestamp=FIRE, timer_id=3, fire_at=FIRE),
        EventRaised(timestamp=T, name="Approval", input='{"ok": true}'),
        EventRaised(timestamp=T, name="empty"),
        EventSent(event_id=5, timestamp=T, instance_id="other", name="ping", input="1"),
        GenericEvent(timestamp=T, data="rewind: because"),
        GenericEvent(timestamp=T),
    ]


def test_the_fixture_covers_every_event_type() -> None:
    assert {type(e) for e in _every_event()} == set(EVENT_TYPES)


@pytest.mark.parametrize("event", _every_event(), ids=lambda e: type(e).__name__)
def test_every_event_round_trips(event: HistoryEvent) -> None:
    message = history_event_to_pb(event)
    assert message.eventId == event.event_id
    assert message.timestamp.ToDatetime(tzinfo=timezone.utc) == event.timestamp
    # The wire form parses back (the SDK receives bytes, not our objects).
    wire = pb.HistoryEvent.FromString(message.SerializeToString())
    assert history_event_from_pb(wire) == event


def test_fields_the_sdk_reads_are_where_it_looks() -> None:
    started = history_event_to_pb(_every_event()[0]).executionStarted
    assert started.name == "orch"
    assert started.orchestrationInstance.instanceId == "i-1"
    assert started.orchestrationInstance.executionId.value == "e-1"
    assert started.input.value == '{"a": 1}'
    assert started.version.value == "1.0"
    assert started.parentInstance.orchestrationInstance.instanceId == "p"
    assert started.parentInstance.taskScheduledId == 4
    assert started.parentInstance.name.value == "parent"
    assert started.scheduledStartTimestamp.ToDatetime(tzinfo=timezone.utc) == FIRE
    assert dict(started.tags) == {"team": "x", "env": "test"}
    # Absent optional values stay absent (the SDK tests HasField, not emptiness).
    bare = history_event_to_pb(_every_event()[1]).executionStarted
    assert (
        not bare.HasField("input")
        and not bare.HasField("parentInstance")
        and not bare.HasField("version")
    )
    assert (
        history_event_to_pb(OrchestratorStarted(timestamp=T)).WhichOneof("eventType")
        == "orchestratorStarted"
    )


def test_generation_has_no_protobuf_field_and_reads_back_as_zero() -> None:
    event = ExecutionStarted(
        timestamp=T, name="o", instance=OrchestrationInstance(instance_id="i"), generation=3
    )
    assert history_event_from_pb(history_event_to_pb(event)) == ExecutionStarted(
        timestamp=T, name="o", instance=OrchestrationInstance(instance_id="i"), generation=0
    )


def test_naive_timestamps_are_taken_as_utc() -> None:
    naive = datetime(2026, 1, 1, 12, 0, 0, 5)
    back = history_event_from_pb(history_event_to_pb(OrchestratorStarted(timestamp=naive)))
    assert back.timestamp == naive.replace(tzinfo=timezone.utc)
    assert back.timestamp.tzinfo is not None


def test_other_timezones_are_converted_to_utc() -> None:
    local = datetime(2026, 1, 1, 14, 0, 0, 123456, tzinfo=timezone(timedelta(hours=2)))
    back = history_event_from_pb(history_event_to_pb(OrchestratorStarted(timestamp=local)))
    assert back.timestamp == local and back.timestamp.utcoffset() == timedelta(0)


def test_unknown_event_types_are_refused_by_name() -> None:
    class Strange(HistoryEvent):
        pass

    with pytest.raises(TypeError, match="Strange"):
        history_event_to_pb(Strange())
    entity = pb.HistoryEvent(
        eventId=1, entityOperationCalled=pb.EntityOperationCalledEvent(operation="add")
    )
    with pytest.raises(ValueError, match="entityOperationCalled"):
        history_event_from_pb(entity)
    with pytest.raises(ValueError, match="no event type"):
        history_event_from_pb(pb.HistoryEvent(eventId=1))


def test_statuses_map_both_ways_and_canceled_is_refused() -> None:
    for status in OrchestrationStatus:
        assert status_from_pb(status_to_pb(status)) is status
    assert status_to_pb(OrchestrationStatus.SUSPENDED) == pb.ORCHESTRATION_STATUS_SUSPENDED
    with pytest.raises(ValueError, match="ORCHESTRATION_STATUS_CANCELED"):
        status_from_pb(pb.ORCHESTRATION_STATUS_CANCELED)


# --- failure details --------------------------------------------------------------------------
def test_failure_details_round_trip_with_the_inner_chain() -> None:
    details = _failure()
    message = failure_to_pb(details)
    assert message.errorType == "builtins.ValueError"
    assert message.errorMessage == "outer message"
    assert "raise ValueError" in message.stackTrace.value
    assert message.isNonRetriable
    assert message.innerFailure.errorType == "builtins.KeyError"
    assert not message.innerFailure.HasField("innerFailure")
    assert failure_from_pb(pb.TaskFailureDetails.FromString(message.SerializeToString())) == details


def test_failure_without_stack_trace_keeps_it_absent() -> None:
    details = FailureDetails(message="m", error_type="app.Err")
    message = failure_to_pb(details)
    assert not message.HasField("stackTrace") and not message.HasField("innerFailure")
    assert failure_from_pb(message) == details


def test_sdk_failure_details_read_as_ours() -> None:
    sdk = pb.TaskFailureDetails(errorType="ZeroDivisionError", errorMessage="division by zero")
    sdk.stackTrace.value = "Traceback ..."
    sdk.innerFailure.errorType = "OSError"
    assert failure_from_pb(sdk) == FailureDetails(
        message="division by zero",
        error_type="ZeroDivisionError",
        stack_trace="Traceback ...",
        inner_failure=FailureDetails(message="", error_type="OSError"),
    )
    assert failure_from_pb(pb.TaskFailureDetails(errorMessage="x")).error_type == "Exception"


def test_failure_properties_cross_the_boundary_both_ways() -> None:
    properties: dict[str, object] = {
        "code": "E42",
        "retryable": False,
        "limits": {"max": 3.0},
        "none": None,
    }
    sdk = pb.TaskFailureDetails(errorType="CardDeclined", errorMessage="no")
    for name, value in properties.items():
        sdk.properties[name].CopyFrom(json_format.ParseDict(value, struct_pb2.Value()))
    ours = failure_from_pb(pb.TaskFailureDetails.FromString(sdk.SerializeToString()))
    assert ours.properties == properties
    assert failure_from_pb(failure_to_pb(ours)) == ours
    assert failure_from_pb(pb.TaskFailureDetails(errorType="E")).properties is None
