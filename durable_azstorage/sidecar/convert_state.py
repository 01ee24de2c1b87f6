"""Instance state and queries across the gRPC boundary: our model <-> the portable SDKs' protobufs.

Statuses map one to one by meaning. The protobuf enum has one member we never produce,
``ORCHESTRATION_STATUS_CANCELED`` (the Python SDK's ``OrchestrationStatus`` cannot even parse
it), so every status we send is one the SDK knows; a CANCELED in a request's status filter
matches no instance (``status_from_pb`` returns None and callers drop it).

Timestamps go out as UTC ``Timestamp``s (naive datetimes are taken as UTC); payloads (input, output, custom status) are the
serialized text exactly as stored, wrapped in ``StringValue`` (absent when None). Failure
details use ``convert_failure`` so the inner chain survives.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from durabletask.internal import orchestrator_service_pb2 as pb

from durable_azstorage.client.state import OrchestrationState
from durable_azstorage.model.query import OrchestrationQuery
from durable_azstorage.model.state import (
    CreateOrchestrationAction,
    InstanceState,
    OrchestrationIdReusePolicy,
)
from durable_azstorage.model.status import OrchestrationStatus
from durable_azstorage.sidecar.convert_failure import failure_to_pb
from durable_azstorage.sidecar.convert_history import status_from_pb as _strict_status_from_pb
from durable_azstorage.sidecar.convert_history import (
    status_to_pb,
    timestamp_from_pb,
    timestamp_to_pb,
)


def status_from_pb(value: int) -> OrchestrationStatus | None:
    """Our status for a protobuf enum value; None for CANCELED, which we never produce.

    Raises ``ValueError`` for a number that is not a member of the enum at all.
    """
    if value == pb.ORCHESTRATION_STATUS_CANCELED:
        return None
    return _strict_status_from_pb(value)


def statuses_from_pb(values: Iterable[int]) -> tuple[OrchestrationStatus, ...]:
    """A request's status filter as ours, without CANCELED and duplicates (order kept)."""
    found = (status_from_pb(v) for v in values)
    return tuple(dict.fromkeys(s for s in found if s is not None))


def datetime_from_pb(stamp: Any) -> datetime:
    """A protobuf Timestamp as an aware UTC datetime."""
    return timestamp_from_pb(stamp)


def state_to_pb(
    state: OrchestrationState | InstanceState, *, include_payloads: bool = True
) -> pb.OrchestrationState:
    """Our instance state as ``pb.OrchestrationState``; payloads only with ``include_payloads``.

    Custom status and failure details are always included (as ``GetInstance`` does in the
    other backends). ``executionId`` and ``scheduledStartTimestamp`` are known only from an
    ``InstanceState``.
    """
    message = pb.OrchestrationState(
        instanceId=state.instance_id,
        name=state.name,
        orchestrationStatus=status_to_pb(state.runtime_status),  # type: ignore[arg-type]
    )
    timestamp_to_pb(message.createdTimestamp, state.created_at)
    timestamp_to_pb(message.lastUpdatedTimestamp, state.last_updated_at)
    if state.completed_at is not None:
        timestamp_to_pb(message.completedTimestamp, state.completed_at)
    if state.version is not None:
        message.version.value = state.version
    if include_payloads:
        input_, output = _payloads(state)
        if input_ is not None:
            message.input.value = input_
        if output is not None:
            message.output.value = output
    custom = (
        state.serialized_custom_status
        if isinstance(state, OrchestrationState)
        else state.custom_status
    )
    if custom is not None:
        message.customStatus.value = custom
    if state.failure_details is not None:
        message.failureDetails.CopyFrom(failure_to_pb(state.failure_details))
    if state.parent_instance_id is not None:
        message.parentInstanceId.value = state.parent_instance_id
    if state.tags:
        message.tags.update(state.tags)
    if isinstance(state, InstanceState):
        if state.execution_id is not None:
            message.executionId.value = state.execution_id
        if state.scheduled_start_time is not None:
            timestamp_to_pb(message.scheduledStartTimestamp, state.scheduled_start_time)
    return message


def _payloads(state: OrchestrationState | InstanceState) -> tuple[str | None, str | None]:
    if isinstance(state, OrchestrationState):
        return state.serialized_input, state.serialized_output
    return state.input, state.output


def reuse_policy_from_pb(policy: pb.OrchestrationIdReusePolicy) -> OrchestrationIdReusePolicy:
    """The SDK's policy ("these statuses may be replaced") as ours ("refuse the others").

    An existing instance whose status is listed is replaced (a running one too: its history
    is dropped, as a terminate-and-restart would); any other status is refused with
    ALREADY_EXISTS. An empty list therefore refuses every existing instance.
    """
    replaceable = set(statuses_from_pb(policy.replaceableStatus))
    return OrchestrationIdReusePolicy(
        operation_statuses=frozenset(s for s in OrchestrationStatus if s not in replaceable),
        action=CreateOrchestrationAction.ERROR,
    )


MAX_PAGE_SIZE = 1000
"""Largest page the backends serve; the SDK asks for 2**31-1 when it wants "everything"."""


def query_from_pb(query: pb.InstanceQuery) -> OrchestrationQuery | None:
    """``InstanceQuery`` as our query; None when its status filter can match nothing.

    ``maxInstanceCount`` is the page size, clamped to 1..1000 (0, the proto default, and
    anything larger ask for the largest page); the continuation token is passed through
    opaquely. ``taskHubNames`` is ignored: a sidecar serves exactly one hub.
    """
    statuses: tuple[OrchestrationStatus, ...] | None = None
    if query.runtimeStatus:
        statuses = statuses_from_pb(query.runtimeStatus)
        if not statuses:
            return None  # only CANCELED was asked for
    return OrchestrationQuery(
        created_time_from=(
            datetime_from_pb(query.createdTimeFrom) if query.HasField("createdTimeFrom") else None
        ),
        created_time_to=(
            datetime_from_pb(query.createdTimeTo) if query.HasField("createdTimeTo") else None
        ),
        runtime_status=statuses,
        instance_id_prefix=query.instanceIdPrefix.value or None,
        page_size=page_size(query.maxInstanceCount),
        continuation_token=query.continuationToken.value or None,
        fetch_inputs_and_outputs=query.fetchInputsAndOutputs,
    )


def page_size(requested: int) -> int:
    """A requested page size as one the backends accept (1..1000; <= 0 means the largest)."""
    if requested <= 0 or requested > MAX_PAGE_SIZE:
        return MAX_PAGE_SIZE
    return requested


@dataclass(frozen=True, slots=True, kw_only=True)
class PurgeFilter:
    """A ``PurgeInstanceFilter`` in our terms (see ``purge_filter_from_pb``)."""

    created_from: datetime | None
    created_to: datetime | None
    runtime_status: tuple[OrchestrationStatus, ...]
    timeout: float | None


def purge_filter_from_pb(message: pb.PurgeInstanceFilter) -> PurgeFilter:
    """The filter of a purge request; no status at all means every ended status.

    The SDKs send no status when the caller named none; the SDK's own in-memory backend then
    purges every *ended* instance, so the sidecar does the same (our client would refuse an
    empty list). Non-ended statuses are kept, so the client's refusal reaches the caller.
    """
    statuses = statuses_from_pb(message.runtimeStatus)
    if not message.runtimeStatus:
        statuses = tuple(s for s in OrchestrationStatus if s.is_terminal)
    return PurgeFilter(
        created_from=(
            datetime_from_pb(message.createdTimeFrom)
            if message.HasField("createdTimeFrom")
            else None
        ),
        created_to=(
            datetime_from_pb(message.createdTimeTo) if message.HasField("createdTimeTo") else None
        ),
        runtime_status=statuses,
        timeout=message.timeout.ToTimedelta().total_seconds()
        if message.HasField("timeout")
        else None,
    )
