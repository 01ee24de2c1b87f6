"""An event sent by another orchestration is applied once, however often it is delivered:
its ``source_id`` is derived from the sender's execution and ``EventSent`` id, so the copy a
recovery re-sends carries the same id (no external event applied twice)."""

from __future__ import annotations

from datetime import datetime, timezone

from durable_azstorage.model.history import (
    EventRaised,
    EventSent,
    ExecutionStarted,
    OrchestrationInstance,
    sent_event_id,
)
from durable_azstorage.model.messages import TaskMessage
from durable_azstorage.model.outbound import Outbound
from durable_azstorage.replay.ledger import Ledger

NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)
TARGET = OrchestrationInstance(instance_id="target", execution_id="t1")
SENDER = OrchestrationInstance(instance_id="sender", execution_id="s1")


def _sent_message() -> TaskMessage:
    started = ExecutionStarted(timestamp=NOW, name="sender", instance=SENDER)
    sent = EventSent(event_id=3, timestamp=NOW, instance_id="target", name="Ping", input='"p"')
    out = Outbound()
    out.add_for(sent, started=started, history=[started, sent])
    (message,) = out.orchestrator
    return message


def test_a_derived_event_names_its_send_and_a_copy_is_refused() -> None:
    first, again = _sent_message(), _sent_message()  # sent, then re-derived by recovery
    assert isinstance(first.event, EventRaised)
    assert first.event.source_id == sent_event_id(
        SENDER, EventSent(event_id=3, timestamp=NOW, instance_id="target", name="Ping")
    )
    ledger = Ledger([ExecutionStarted(timestamp=NOW, name="target", instance=TARGET)])
    assert ledger.refusal(first, NOW) is None
    ledger.record(first.event)
    refusal = ledger.refusal(again, NOW)
    assert refusal is not None and "duplicate event 'Ping'" in refusal


def test_client_events_have_no_source_and_are_all_applied() -> None:
    ledger = Ledger([ExecutionStarted(timestamp=NOW, name="target", instance=TARGET)])
    raised = TaskMessage(instance=TARGET, event=EventRaised(timestamp=NOW, name="Go", input="1"))
    ledger.record(raised.event)
    assert ledger.refusal(raised, NOW) is None  # two client raises are two events
