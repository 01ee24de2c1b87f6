"""Instance state, statuses, reuse policies and filters across the protobuf boundary (no I/O)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from durabletask.client import OrchestrationStatus as SdkStatus
from durabletask.client import parse_orchestration_state
from durabletask.internal import orchestrator_service_pb2 as pb

from durable_azstorage.backend.reuse import may_replace
from durable_azstorage.model.errors import OrchestrationAlreadyExistsError
from durable_azstorage.model.failure import FailureDetails
from durable_azstorage.model.state import InstanceState
from durable_azstorage.model.status import OrchestrationStatus
from durable_azstorage.sidecar.convert_state import (
    page_size,
    purge_filter_from_pb,
    query_from_pb,
    reuse_policy_from_pb,
    state_to_pb,
    status_from_pb,
    status_to_pb,
)

T0 = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=timezone.utc)


def _state(status: OrchestrationStatus, **kw: object) -> InstanceState:
    return InstanceState(
        instance_id="i1",
        name="flow",
        runtime_status=status,
        created_at=T0,
        last_updated_at=T0 + timedelta(seconds=1),
        **kw,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize("status", list(OrchestrationStatus))
def test_every_status_is_one_the_sdk_parses(status: OrchestrationStatus) -> None:
    parsed = parse_orchestration_state(state_to_pb(_state(status)))
    assert parsed.runtime_status is SdkStatus[status.name]
    assert status_from_pb(status_to_pb(status)) is status


def test_canceled_matches_nothing() -> None:
    assert status_from_pb(pb.ORCHESTRATION_STATUS_CANCELED) is None
    only_canceled = pb.InstanceQuery(runtimeStatus=[pb.ORCHESTRATION_STATUS_CANCELED])
    assert query_from_pb(only_canceled) is None
    with pytest.raises(ValueError, match="99"):
        status_from_pb(99)


def test_state_fields_round_trip_through_the_sdk_parser() -> None:
    failure = FailureDetails(
        message="boom",
        error_type="ValueError",
        stack_trace="at x",
        inner_failure=FailureDetails(message="root", error_type="KeyError"),
    )
    state = _state(
        OrchestrationStatus.FAILED,
        completed_at=T0 + timedelta(seconds=2),
        input='"in"',
        output=None,
        custom_status='{"p": 1}',
        failure_details=failure,
        version="1.0",
        tags={"a": "b"},
        parent_instance_id="papa",
        execution_id="e1",
        scheduled_start_time=T0,
    )
    message = state_to_pb(state)
    assert message.completedTimestamp.ToDatetime(tzinfo=timezone.utc) == T0 + timedelta(seconds=2)
    assert message.parentInstanceId.value == "papa" and message.executionId.value == "e1"
    assert message.version.value == "1.0" and dict(message.tags) == {"a": "b"}
    assert not message.HasField("output")
    parsed = parse_orchestration_state(message)
    assert parsed.created_at == T0.replace(tzinfo=None)  # the SDK reads naive UTC
    assert parsed.last_updated_at == (T0 + timedelta(seconds=1)).replace(tzinfo=None)
    assert parsed.serialized_input == '"in"' and parsed.get_custom_status() == {"p": 1}
    assert parsed.failure_details is not None
    assert parsed.failure_details.error_type == "ValueError"
    assert parsed.failure_details.stack_trace == "at x"
    assert parsed.failure_details.inner_failure is not None
    assert parsed.failure_details.inner_failure.message == "root"

    light = state_to_pb(state, include_payloads=False)
    assert not light.HasField("input") and light.customStatus.value == '{"p": 1}'


def test_reuse_policy_replaces_listed_statuses_and_refuses_the_rest() -> None:
    policy = reuse_policy_from_pb(
        pb.OrchestrationIdReusePolicy(replaceableStatus=[pb.ORCHESTRATION_STATUS_RUNNING])
    )
    assert may_replace(_state(OrchestrationStatus.RUNNING), policy) is True
    with pytest.raises(OrchestrationAlreadyExistsError):
        may_replace(_state(OrchestrationStatus.COMPLETED), policy)
    empty = reuse_policy_from_pb(pb.OrchestrationIdReusePolicy())
    with pytest.raises(OrchestrationAlreadyExistsError):
        may_replace(_state(OrchestrationStatus.FAILED), empty)


def test_query_and_purge_filters() -> None:
    query = query_from_pb(
        pb.InstanceQuery(
            runtimeStatus=[pb.ORCHESTRATION_STATUS_RUNNING, pb.ORCHESTRATION_STATUS_CANCELED],
            maxInstanceCount=(1 << 31) - 1,
            fetchInputsAndOutputs=True,
        )
    )
    assert query is not None
    assert query.runtime_status == (OrchestrationStatus.RUNNING,)
    assert query.page_size == 1000 and query.fetch_inputs_and_outputs
    assert query.instance_id_prefix is None and query.continuation_token is None
    assert [page_size(n) for n in (0, -5, 1, 250, 1000, 1001)] == [1000, 1000, 1, 250, 1000, 1000]

    anything = purge_filter_from_pb(pb.PurgeInstanceFilter())
    assert set(anything.runtime_status) == {
        OrchestrationStatus.COMPLETED,
        OrchestrationStatus.FAILED,
        OrchestrationStatus.TERMINATED,
    }
    assert anything.timeout is None and anything.created_from is None
    named = pb.PurgeInstanceFilter(runtimeStatus=[pb.ORCHESTRATION_STATUS_PENDING])
    named.timeout.FromTimedelta(timedelta(seconds=3))
    named.createdTimeFrom.FromDatetime(T0)
    spec = purge_filter_from_pb(named)
    assert spec.runtime_status == (OrchestrationStatus.PENDING,)  # the client refuses it
    assert spec.timeout == 3.0 and spec.created_from == T0
