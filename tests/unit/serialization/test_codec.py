"""The storage codec round-trips every model value and rejects bad input by naming the field."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from durable_azstorage.model import history as h
from durable_azstorage.model.failure import FailureDetails
from durable_azstorage.model.messages import TaskMessage
from durable_azstorage.model.state import InstanceState
from durable_azstorage.model.status import OrchestrationStatus
from durable_azstorage.serialization import codec
from durable_azstorage.serialization.codec import (
    FORMAT_VERSION,
    decode_datetime,
    decode_event,
    decode_failure,
    decode_history,
    decode_message,
    decode_message_envelope,
    decode_state,
    encode_datetime,
    encode_event,
    encode_failure,
    encode_history,
    encode_message,
    encode_state,
)

# --- strategies ---------------------------------------------------------------------------

texts = st.text(max_size=20)
opt_texts = st.none() | texts
ints = st.integers(min_value=-1, max_value=2**40)
utc_datetimes = st.datetimes(
    min_value=datetime(1970, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(timezone.utc)
)
offset_datetimes = st.builds(
    lambda d, minutes: d.astimezone(timezone(timedelta(minutes=minutes))),
    utc_datetimes.filter(lambda d: d.year > 1970),
    st.integers(min_value=-12 * 60, max_value=14 * 60),
)
tags = st.none() | st.dictionaries(texts, texts, max_size=3)
statuses = st.sampled_from(list(OrchestrationStatus))
instances = st.builds(h.OrchestrationInstance, instance_id=texts, execution_id=opt_texts)
failures: st.SearchStrategy[FailureDetails] = st.deferred(
    lambda: st.builds(
        FailureDetails,
        message=texts,
        error_type=texts,
        stack_trace=opt_texts,
        inner_failure=st.none() | failures,
        is_non_retriable=st.booleans(),
    )
)
parents = st.builds(
    h.ParentInstance, name=texts, instance=instances, task_scheduled_id=ints, version=opt_texts
)
base = {"event_id": ints, "timestamp": utc_datetimes}

EVENT_STRATEGIES: dict[type[h.HistoryEvent], st.SearchStrategy[Any]] = {
    h.ExecutionStarted: st.builds(
        h.ExecutionStarted,
        name=texts,
        instance=instances,
        input=opt_texts,
        version=opt_texts,
        parent=st.none() | parents,
        scheduled_start_time=st.none() | utc_datetimes,
        tags=tags,
        generation=ints,
        **base,
    ),
    h.ExecutionCompleted: st.builds(
        h.ExecutionCompleted,
        status=statuses,
        result=opt_texts,
        failure_details=st.none() | failures,
        **base,
    ),
    h.ExecutionTerminated: st.builds(
        h.ExecutionTerminated, input=opt_texts, recurse=st.booleans(), **base
    ),
    h.ExecutionSuspended: st.builds(h.ExecutionSuspended, reason=opt_texts, **base),
    h.ExecutionResumed: st.builds(h.ExecutionResumed, reason=opt_texts, **base),
    h.ContinueAsNew: st.builds(h.ContinueAsNew, result=opt_texts, **base),
    h.OrchestratorStarted: st.builds(h.OrchestratorStarted, **base),
    h.OrchestratorCompleted: st.builds(h.OrchestratorCompleted, **base),
    h.TaskScheduled: st.builds(
        h.TaskScheduled, name=texts, input=opt_texts, version=opt_texts, tags=tags, **base
    ),
    h.TaskCompleted: st.builds(h.TaskCompleted, task_scheduled_id=ints, result=opt_texts, **base),
    h.TaskFailed: st.builds(h.TaskFailed, task_scheduled_id=ints, failure_details=failures, **base),
    h.SubOrchestrationInstanceCreated: st.builds(
        h.SubOrchestrationInstanceCreated,
        name=texts,
        instance_id=texts,
        input=opt_texts,
        version=opt_texts,
        **base,
    ),
    h.SubOrchestrationInstanceCompleted: st.builds(
        h.SubOrchestrationInstanceCompleted, task_scheduled_id=ints, result=opt_texts, **base
    ),
    h.SubOrchestrationInstanceFailed: st.builds(
        h.SubOrchestrationInstanceFailed, task_scheduled_id=ints, failure_details=failures, **base
    ),
    h.TimerCreated: st.builds(h.TimerCreated, fire_at=utc_datetimes, **base),
    h.TimerFired: st.builds(h.TimerFired, timer_id=ints, fire_at=utc_datetimes, **base),
    h.EventRaised: st.builds(h.EventRaised, name=texts, input=opt_texts, **base),
    h.EventSent: st.builds(h.EventSent, instance_id=texts, name=texts, input=opt_texts, **base),
    h.GenericEvent: st.builds(h.GenericEvent, data=opt_texts, **base),
}
events = st.one_of(*EVENT_STRATEGIES.values())
messages = st.builds(
    TaskMessage,
    instance=instances,
    event=events,
    sender=st.none() | instances,
    episode=st.none() | ints,
)
states = st.builds(
    InstanceState,
    instance_id=texts,
    name=texts,
    runtime_status=statuses,
    created_at=utc_datetimes,
    last_updated_at=utc_datetimes,
    execution_id=opt_texts,
    completed_at=st.none() | utc_datetimes,
    input=opt_texts,
    output=opt_texts,
    custom_status=opt_texts,
    failure_details=st.none() | failures,
    version=opt_texts,
    tags=tags,
    parent_instance_id=opt_texts,
    scheduled_start_time=st.none() | utc_datetimes,
    generation=ints,
)


# --- round trips --------------------------------------------------------------------------


def test_every_event_type_has_a_strategy() -> None:
    assert set(EVENT_STRATEGIES) == set(h.EVENT_TYPES)


@pytest.mark.parametrize("event_type", h.EVENT_TYPES, ids=lambda t: t.__name__)
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_event_round_trips_through_json(event_type: type[h.HistoryEvent], data: Any) -> None:
    event = data.draw(EVENT_STRATEGIES[event_type])
    encoded = encode_event(event)
    assert encoded["type"] == event_type.__name__
    assert decode_event(json.loads(json.dumps(encoded))) == event


@settings(max_examples=60, deadline=None)
@given(message=messages, seq=st.none() | ints, etag=st.none() | st.text(min_size=1, max_size=40))
def test_message_round_trips_with_its_envelope(
    message: TaskMessage, seq: int | None, etag: str | None
) -> None:
    new = etag is not None
    text = encode_message(
        message, sequence_number=seq, answers=etag, row_etag=etag, new_instance=new
    )
    assert json.loads(text)["v"] == FORMAT_VERSION
    assert decode_message(text) == message
    envelope = decode_message_envelope(text.encode("utf-8"))
    assert envelope.message == message
    assert envelope.sequence_number == seq
    assert envelope.answers == etag and envelope.row_etag == etag
    assert envelope.new_instance is new


@settings(max_examples=60, deadline=None)
@given(state=states)
def test_state_round_trips(state: InstanceState) -> None:
    assert decode_state(encode_state(state)) == state


@settings(max_examples=40, deadline=None)
@given(failure=failures)
def test_failure_round_trips_with_nested_inner_failures(failure: FailureDetails) -> None:
    assert decode_failure(encode_failure(failure)) == failure


@settings(max_examples=20, deadline=None)
@given(history=st.lists(events, max_size=8))
def test_history_document_round_trips_in_order(history: list[h.HistoryEvent]) -> None:
    assert decode_history(encode_history(history)) == history


def test_deeply_nested_failure_survives() -> None:
    failure = FailureDetails(message="leaf", error_type="builtins.KeyError")
    for depth in range(30):
        failure = FailureDetails(message=f"level {depth}", error_type="x.E", inner_failure=failure)
    assert decode_failure(encode_failure(failure)) == failure


@settings(max_examples=40, deadline=None)
@given(value=offset_datetimes)
def test_datetimes_are_stored_as_utc_with_microseconds(value: datetime) -> None:
    text = encode_datetime(value)
    assert text.endswith("Z") and len(text) == len("2026-01-02T03:04:05.000006Z")
    decoded = decode_datetime(text)
    assert decoded == value and decoded.utcoffset() == timedelta(0)


def test_datetime_text_is_stable() -> None:
    value = datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=timezone.utc)
    assert encode_datetime(value) == "2026-01-02T03:04:05.000006Z"
    assert decode_datetime("2026-01-02T04:04:05.000006+01:00") == value


def test_none_fields_are_omitted_to_keep_messages_small() -> None:
    encoded = encode_event(h.TaskCompleted(task_scheduled_id=3))
    assert "result" not in encoded
    assert decode_event(encoded) == h.TaskCompleted(task_scheduled_id=3)


def test_an_execution_started_stored_before_first_execution_id_still_decodes() -> None:
    old = {
        "type": "ExecutionStarted",
        "name": "child",
        "generation": 1,
        "instance": {"instance_id": "c", "execution_id": "x2"},
    }
    event = decode_event(old)
    assert isinstance(event, h.ExecutionStarted) and event.first_execution_id is None
    again = h.ExecutionStarted(
        name="child", instance=h.OrchestrationInstance(instance_id="c", execution_id="x2")
    )
    other = h.ExecutionStarted(
        name="child", instance=h.OrchestrationInstance(instance_id="c", execution_id="x1")
    )
    assert event.already_ran(again) and not event.already_ran(other)


def test_message_text_is_compact_json() -> None:
    message = TaskMessage(
        instance=h.OrchestrationInstance(instance_id="i1", execution_id="e1"),
        event=h.EventRaised(name="Approval", input='"yes"'),
    )
    text = encode_message(message)
    assert " " not in text
    assert json.loads(text)["event"]["type"] == "EventRaised"


def test_non_ascii_text_round_trips() -> None:
    event = h.EventRaised(name="événement", input='"日本語 🎉"')
    assert (
        decode_message(
            encode_message(
                TaskMessage(instance=h.OrchestrationInstance(instance_id="ü"), event=event)
            )
        ).event
        == event
    )


# --- bad input ----------------------------------------------------------------------------


def _message_doc(**changes: Any) -> dict[str, Any]:
    message = TaskMessage(
        instance=h.OrchestrationInstance(instance_id="i1"),
        event=h.TaskFailed(
            task_scheduled_id=2,
            failure_details=FailureDetails(
                message="outer",
                error_type="x.Outer",
                inner_failure=FailureDetails(message="inner", error_type="x.Inner"),
            ),
        ),
    )
    doc: dict[str, Any] = json.loads(encode_message(message))
    doc.update(changes)
    return doc


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda d: d.update(v=2), r"message\.v: unsupported format version 2"),
        (lambda d: d.update(v="1"), r"message\.v: unsupported format version '1'"),
        (lambda d: d.pop("v"), r"message\.v: missing format version"),
        (lambda d: d.pop("event"), r"message\.event: missing required field"),
        (lambda d: d.pop("instance"), r"message\.instance: missing required field"),
        (lambda d: d.update(episode="3"), r"message\.episode: expected int, got str"),
        (lambda d: d.update(episode=True), r"message\.episode: expected int, got bool"),
        (lambda d: d.update(colour="red"), r"message: unknown field\(s\) 'colour'"),
        (lambda d: d["event"].update(type="Nope"), r"message\.event\.type: unknown history event"),
        (lambda d: d["event"].pop("type"), r"message\.event\.type: missing"),
        (
            lambda d: d["event"]["failure_details"]["inner_failure"].update(message=5),
            r"message\.event\.failure_details\.inner_failure\.message: expected str, got int",
        ),
        (
            lambda d: d["event"].pop("task_scheduled_id"),
            r"message\.event\.task_scheduled_id: missing required field",
        ),
        (lambda d: d["event"].update(timestamp="yesterday"), r"message\.event\.timestamp: not an"),
        (
            lambda d: d["event"].update(timestamp="2026-01-01T00:00:00"),
            r"message\.event\.timestamp: datetime .* has no UTC offset",
        ),
        (lambda d: d.update(sequence_number="x"), r"message\.sequence_number: expected an integer"),
        (lambda d: d.update(row_etag=3), r"message\.row_etag: expected a string"),
        (lambda d: d.update(new_instance="yes"), r"message\.new_instance: expected a boolean"),
        (lambda d: d["instance"].update(instance_id=None), r"message\.instance\.instance_id"),
    ],
)
def test_bad_message_is_rejected_naming_the_field(mutate: Any, expected: str) -> None:
    doc = _message_doc()
    mutate(doc)
    with pytest.raises(ValueError, match=expected):
        decode_message(json.dumps(doc))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{not json", r"message: not valid JSON"),
        ("[1, 2]", r"message: expected a JSON object, got list"),
        (b"\xff\xfe", r"message: not valid JSON"),
    ],
)
def test_unparseable_message_is_rejected(text: str | bytes, expected: str) -> None:
    with pytest.raises(ValueError, match=expected):
        decode_message(text)


def test_unknown_status_names_the_allowed_values() -> None:
    doc = encode_event(h.ExecutionCompleted(status=OrchestrationStatus.COMPLETED))
    doc["status"] = "Done"
    with pytest.raises(
        ValueError, match=r"event\.status: unknown OrchestrationStatus 'Done'.*Running"
    ):
        decode_event(doc)


def test_state_with_unknown_version_is_rejected() -> None:
    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    state = InstanceState(
        instance_id="i",
        name="n",
        runtime_status=OrchestrationStatus.PENDING,
        created_at=now,
        last_updated_at=now,
    )
    doc = json.loads(encode_state(state))
    doc["v"] = 99
    with pytest.raises(ValueError, match=r"state\.v: unsupported format version 99"):
        decode_state(json.dumps(doc))


def test_tags_must_be_strings() -> None:
    doc = encode_event(h.TaskScheduled(name="a", tags={"k": "v"}))
    doc["tags"] = {"k": 1}
    with pytest.raises(ValueError, match=r"event\.tags: expected an object of strings"):
        decode_event(doc)


def test_history_entries_are_named_by_index() -> None:
    doc = json.loads(encode_history([h.OrchestratorStarted(), h.TaskScheduled(name="a")]))
    del doc["events"][1]["name"]
    with pytest.raises(ValueError, match=r"history\.events\[1\]\.name: missing required field"):
        decode_history(json.dumps(doc))


def test_encoding_refuses_naive_datetimes() -> None:
    with pytest.raises(ValueError, match=r"event\.fire_at: naive datetime"):
        encode_event(h.TimerCreated(fire_at=datetime(2026, 1, 1)))


def test_encoding_refuses_wrongly_typed_fields() -> None:
    with pytest.raises(ValueError, match=r"event\.name: expected str, got int"):
        encode_event(h.EventRaised(name=5))  # type: ignore[arg-type]


def test_encoding_refuses_unknown_event_classes() -> None:
    class Custom(h.HistoryEvent):
        pass

    with pytest.raises(ValueError, match="cannot encode .*Custom, not a history event"):
        encode_event(Custom())


def test_deferrals_are_counted_in_the_queue_text_and_ignored_by_the_decoder() -> None:
    message = TaskMessage(
        instance=h.OrchestrationInstance(instance_id="i", execution_id="e"),
        event=h.EventRaised(name="go", input='{"deferred": 7}'),
    )
    text = codec.encode_message(message)
    assert codec.deferral_count(text) == 0  # a payload's own "deferred" key is not ours
    twice = codec.with_deferral(codec.with_deferral(text))
    assert codec.deferral_count(twice) == 2
    assert codec.decode_message(twice) == message
    blob_ref = '{"v":1,"blob":"hub/abc"}'
    assert codec.deferral_count(codec.with_deferral(blob_ref)) == 1
    assert codec.with_deferral("not json") == "not json"


def test_failure_properties_round_trip_and_must_be_json() -> None:
    details = FailureDetails(
        message="m", error_type="E", properties={"code": 42, "tags": ["a"], "x": None}
    )
    assert decode_failure(json.loads(json.dumps(encode_failure(details)))) == details
    with pytest.raises(ValueError, match="properties: not JSON values"):
        encode_failure(
            FailureDetails(message="m", error_type="E", properties={"when": datetime.now()})
        )
    with pytest.raises(ValueError, match="properties: expected an object"):
        decode_failure({"message": "m", "error_type": "E", "properties": [1]})
