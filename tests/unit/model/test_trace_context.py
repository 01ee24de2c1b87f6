"""W3C trace context on the events that start work: validation, derivation, storage format."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from durable_azstorage.model.actions import CreateSubOrchestration, ScheduleTask, SendEvent
from durable_azstorage.model.history import (
    EventSent,
    ExecutionStarted,
    OrchestrationInstance,
    SubOrchestrationInstanceCreated,
    TaskScheduled,
)
from durable_azstorage.model.outbound import Outbound
from durable_azstorage.model.trace import TraceContext
from durable_azstorage.replay.apply import apply_actions
from durable_azstorage.serialization.codec import (
    decode_event,
    decode_message,
    encode_event,
    encode_message,
)

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
PARENT = TraceContext(
    trace_parent="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", trace_state="k=v"
)


def _started(trace: TraceContext | None) -> ExecutionStarted:
    return ExecutionStarted(
        timestamp=NOW,
        name="orch",
        instance=OrchestrationInstance(instance_id="i", execution_id="e1"),
        trace_context=trace,
    )


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331",
        "ff-" + "1" * 32 + "-" + "2" * 16 + "-01",
        "00-" + "0" * 32 + "-" + "2" * 16 + "-01",
        "00-" + "1" * 32 + "-" + "0" * 16 + "-01",
        "00-" + "G" * 32 + "-" + "2" * 16 + "-01",
    ],
)
def test_a_malformed_traceparent_is_refused_naming_the_field(bad: str) -> None:
    with pytest.raises(ValueError, match="trace_parent"):
        TraceContext(trace_parent=bad)


def test_derived_spans_keep_the_trace_and_depend_only_on_their_names() -> None:
    a = PARENT.derive("activity", "e1", 3, 0)
    assert a.trace_id == PARENT.trace_id and a.flags == PARENT.flags and a.trace_state == "k=v"
    assert a.span_id != PARENT.span_id
    assert a == PARENT.derive("activity", "e1", 3, 0)
    assert a != PARENT.derive("activity", "e1", 3, 1)


def test_the_orchestration_span_follows_from_the_execution() -> None:
    started = _started(PARENT)
    orchestration = started.orchestration_trace_context()
    assert orchestration is not None and orchestration.trace_id == PARENT.trace_id
    assert orchestration == _started(PARENT).orchestration_trace_context()
    assert _started(None).orchestration_trace_context() is None


def test_scheduled_work_carries_a_context_derived_the_same_on_every_derivation() -> None:
    actions = [
        ScheduleTask(id=0, name="act"),
        CreateSubOrchestration(id=1, name="sub", instance_id="child"),
        SendEvent(id=2, instance_id="other", name="ping"),
    ]
    started = _started(PARENT)

    def record() -> tuple[list[object], Outbound]:
        outbox = Outbound()
        return list(
            apply_actions(actions, started=started, history=[started], now=NOW, outbox=outbox)
        ), outbox

    events, outbox = record()
    assert events == record()[0]  # recovery re-derives exactly the same contexts
    orchestration = started.orchestration_trace_context()
    assert orchestration is not None
    contexts = [e.trace_context for e in events]  # type: ignore[attr-defined]
    assert all(c is not None and c.trace_id == PARENT.trace_id for c in contexts)
    assert len({c.span_id for c in contexts} | {orchestration.span_id}) == 4
    # The messages carry them: the activity request, and the child's start.
    assert outbox.activity[0].event == events[0]
    child_start = outbox.orchestrator[0].event
    assert isinstance(child_start, ExecutionStarted) and child_start.trace_context == contexts[1]


def test_a_context_chosen_by_a_remote_sdk_is_kept_and_untraced_starts_stay_untraced() -> None:
    chosen = PARENT.derive("chosen")
    [kept] = apply_actions(
        [ScheduleTask(id=0, name="act", trace_context=chosen)],
        started=_started(PARENT),
        history=[],
        now=NOW,
        outbox=Outbound(),
    )
    assert isinstance(kept, TaskScheduled) and kept.trace_context == chosen
    [plain] = apply_actions(
        [ScheduleTask(id=0, name="act")],
        started=_started(None),
        history=[],
        now=NOW,
        outbox=Outbound(),
    )
    assert isinstance(plain, TaskScheduled) and plain.trace_context is None


def test_events_round_trip_with_a_context_and_old_ones_without_still_decode() -> None:
    for event in (
        _started(PARENT),
        TaskScheduled(event_id=1, timestamp=NOW, name="a", trace_context=PARENT),
        SubOrchestrationInstanceCreated(
            event_id=2, timestamp=NOW, name="s", instance_id="c", trace_context=PARENT
        ),
        EventSent(event_id=3, timestamp=NOW, instance_id="x", name="n", trace_context=PARENT),
    ):
        assert decode_event(encode_event(event)) == event
    old = {
        "type": "TaskScheduled",
        "event_id": 1,
        "timestamp": "2026-01-02T03:04:05.000000Z",
        "name": "a",
    }
    decoded = decode_event(old)
    assert isinstance(decoded, TaskScheduled) and decoded.trace_context is None
    from durable_azstorage.model.messages import TaskMessage

    message = TaskMessage(instance=_started(PARENT).instance, event=_started(PARENT))
    assert decode_message(encode_message(message)) == message
    bad = {**old, "trace_context": {"trace_parent": "nope"}}
    with pytest.raises(ValueError, match="trace_parent"):
        decode_event(bad)
