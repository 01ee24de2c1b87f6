"""Entity episodes without storage: batching, order, duplicates, locks, ids and bad input."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from durable_azstorage import DurableEntity, EntityContext, EntityInstanceId
from durable_azstorage.authoring.registry import Registry
from durable_azstorage.model.entities import (
    ENTITY_REQUEST,
    EntityRequest,
    RequestKind,
    decode_request,
    encode_request,
    response_event_name,
)
from durable_azstorage.model.errors import InvalidIdentifierError
from durable_azstorage.model.history import (
    EventRaised,
    EventSent,
    ExecutionCompleted,
    ExecutionStarted,
    HistoryEvent,
    OrchestrationInstance,
    TimerFired,
)
from durable_azstorage.model.messages import TaskMessage
from durable_azstorage.model.status import OrchestrationStatus
from durable_azstorage.replay.entity_episode import run_entity_episode
from durable_azstorage.serialization.entity_codec import decode_record, decode_response

NOW = datetime(2026, 1, 2, tzinfo=timezone.utc)
ME = "@log@k"


def log(ctx: EntityContext, input: Any) -> Any:
    items: list[Any] = ctx.get_state(list, [])
    if ctx.operation == "append":
        ctx.set_state([*items, input])
    elif ctx.operation == "boom":
        ctx.set_state(["lost"])
        ctx.signal_entity(EntityInstanceId("log", "other"), "append", "lost too")
        raise ValueError("boom")
    return items


def registry() -> Registry:
    r = Registry()
    r.add_entity(log)
    return r


def request(
    kind: RequestKind = RequestKind.SIGNAL,
    *,
    op: str = "append",
    input: str | None = None,
    sender: str | None = None,
    sequence: int | None = None,
    parent: str | None = None,
    id: str = "r",
) -> TaskMessage:
    body = EntityRequest(
        kind=kind,
        id=id,
        operation=op,
        input=input,
        sender=sender,
        sequence=sequence,
        parent=parent,
        lock_set=(ME,) if kind is RequestKind.LOCK else (),
    )
    event = EventRaised(name=ENTITY_REQUEST, input=encode_request(body))
    return TaskMessage(instance=OrchestrationInstance(instance_id=ME), event=event)


def run(history: list[HistoryEvent], *messages: TaskMessage) -> Any:
    return run_entity_episode(registry(), ME, history, list(messages), now=NOW)


def state_of(episode: Any) -> Any:
    return decode_record(episode.state.input)


def test_a_batch_commits_one_new_generation_holding_the_state() -> None:
    episode = run([], *(request(input=str(i)) for i in range(5)))
    assert episode.new_execution
    started = [e for e in episode.new_events if isinstance(e, ExecutionStarted)]
    assert len(started) == 1 and len(episode.new_events) == 3  # started/ExecutionStarted/completed
    assert state_of(episode).state == "[0,1,2,3,4]"
    again = run(list(episode.new_events), request(input="5"))
    assert state_of(again).state == "[0,1,2,3,4,5]"
    assert again.new_events[1].generation == 1  # type: ignore[attr-defined]


def test_requests_of_one_sender_run_in_sequence_order_and_duplicates_are_dropped() -> None:
    first = run(
        [],
        request(input='"b"', sender="o:1", sequence=1),
        request(input='"c"', sender="o:1", sequence=2),
    )
    record = state_of(first)
    assert record.state is None and len(record.held) == 2  # waiting for sequence 0
    second = run(
        list(first.new_events),
        request(input='"a"', sender="o:1", sequence=0),
        request(input='"a"', sender="o:1", sequence=0),
    )
    assert state_of(second).state == '["a","b","c"]'
    third = run(
        list(second.new_events), request(input='"b"', sender="o:1", sequence=1)
    )  # re-sent copy
    assert state_of(third).state == '["a","b","c"]'


def test_a_failed_call_answers_with_the_failure_and_undoes_state_and_signals() -> None:
    episode = run(
        [], request(input='"x"'), request(RequestKind.CALL, op="boom", parent="orch", id="c1")
    )
    assert state_of(episode).state == '["x"]'
    answers = [e for e in episode.new_events if isinstance(e, EventSent)]
    assert [a.instance_id for a in answers] == ["orch"]
    assert answers[0].name == response_event_name("c1")
    failure = decode_response(answers[0].input).failure
    assert failure is not None and failure.message == "boom"


def test_while_locked_only_the_owner_runs_others_wait_in_the_backlog() -> None:
    locked = run([], request(RequestKind.LOCK, parent="owner", id="l1"))
    assert state_of(locked).locked_by == "owner"
    assert [e.name for e in locked.new_events if isinstance(e, EventSent)] == [
        response_event_name("l1")
    ]
    waiting = run(
        list(locked.new_events),
        request(input='"other"'),
        request(input='"mine"', parent="owner", id="m"),
    )
    assert state_of(waiting).state == '["mine"]' and len(state_of(waiting).backlog) == 1
    released = run(list(waiting.new_events), request(RequestKind.RELEASE, parent="owner", id="rel"))
    record = state_of(released)
    assert record.locked_by is None and record.backlog == () and record.state == '["mine","other"]'


def test_an_early_delayed_signal_is_re_armed() -> None:
    later = NOW + timedelta(days=9)
    body = EntityRequest(kind=RequestKind.SIGNAL, id="d", operation="append", input="1")
    early = TaskMessage(
        instance=OrchestrationInstance(instance_id=ME),
        event=EventRaised(name=ENTITY_REQUEST, input=encode_request(body), scheduled_time=later),
    )
    episode = run([], early)
    assert episode.timer_messages == (early,)
    assert state_of(episode).state is None


def test_other_messages_are_discarded_with_a_reason() -> None:
    stray = TaskMessage(
        instance=OrchestrationInstance(instance_id=ME), event=TimerFired(timer_id=1, fire_at=NOW)
    )
    episode = run([], stray, request(input="1"))
    assert [reason for _, reason in episode.discarded] == [
        "entities take only entity requests, not TimerFired"
    ]


def test_unregistered_entity_fails_the_call_with_a_clear_error() -> None:
    episode = run_entity_episode(
        Registry(), ME, [], [request(RequestKind.CALL, parent="o", id="c")], now=NOW
    )
    answer = next(e for e in episode.new_events if isinstance(e, EventSent))
    failure = decode_response(answer.input).failure
    assert failure is not None and "entity 'log' is not registered" in failure.message


@pytest.mark.parametrize(
    ("entity", "key", "message"),
    [
        ("a@b", "k", "entity name 'a@b' must not contain '@'"),
        ("", "k", "entity name must not be empty"),
        ("a", "", "entity key must not be empty"),
        ("a", "x@y", "entity key 'x@y' must not contain '@'"),
    ],
)
def test_entity_ids_are_validated(entity: str, key: str, message: str) -> None:
    with pytest.raises(InvalidIdentifierError, match=message):
        EntityInstanceId(entity, key)


def test_entity_ids_lower_case_the_name_and_parse_back() -> None:
    entity = EntityInstanceId("Counter", "Key")
    assert str(entity) == "@counter@Key" and EntityInstanceId.parse(str(entity)) == entity
    with pytest.raises(InvalidIdentifierError, match="must have the form '@name@key'"):
        EntityInstanceId.parse("counter")


def test_malformed_requests_are_refused_naming_the_field() -> None:
    with pytest.raises(ValueError, match="entity request.kind: unknown request kind 'poke'"):
        decode_request('{"v":1,"kind":"poke","id":"x"}')
    with pytest.raises(ValueError, match="unsupported format version"):
        decode_request('{"v":9,"kind":"signal","id":"x"}')


@dataclass(frozen=True)
class Deposit:
    amount: int
    memo: str


class Wallet(DurableEntity):
    def deposit(self, deposit: Deposit) -> str:
        self.set_state(self.get_state(int, 0) + deposit.amount)
        return f"{type(deposit).__name__}:{deposit.memo}"


def test_operation_inputs_are_rebuilt_as_annotated() -> None:
    r = Registry()
    r.add_entity(Wallet)
    body = EntityRequest(
        kind=RequestKind.CALL,
        id="c",
        operation="deposit",
        parent="o",
        input='{"amount":5,"memo":"rent"}',
    )
    message = TaskMessage(
        instance=OrchestrationInstance(instance_id="@wallet@w"),
        event=EventRaised(name=ENTITY_REQUEST, input=encode_request(body)),
    )
    episode = run_entity_episode(r, "@wallet@w", [], [message], now=NOW)
    answer = next(e for e in episode.new_events if isinstance(e, EventSent))
    assert decode_response(answer.input).result == '"Deposit:rent"'
    assert state_of(episode).state == "5"


def test_an_entity_failed_as_poison_takes_no_more_requests() -> None:
    alive = run([], request(input="1"))
    failed = [
        *alive.new_events[:-1],
        ExecutionCompleted(status=OrchestrationStatus.FAILED),
        alive.new_events[-1],
    ]
    episode = run(failed, request(input="2"))
    assert episode.state is None and episode.new_events == ()
    assert [reason for _, reason in episode.discarded] == [
        "the entity ended (Failed); purge it to start over"
    ]
