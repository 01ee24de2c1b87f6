"""FailureDetails <-> ``pb.TaskFailureDetails``: how an error crosses the gRPC boundary.

The portable SDKs branch on ``errorType`` and show ``errorMessage``/``stackTrace``; the inner
failure chain, ``isNonRetriable`` and ``properties`` must survive the round trip so that retries and
``TaskFailedError.details`` behave the same whether the code runs in-process or over gRPC.
"""

from __future__ import annotations

from durabletask.internal import orchestrator_service_pb2 as pb
from google.protobuf import json_format, struct_pb2  # type: ignore[import-untyped]

from durable_azstorage.model.failure import FailureDetails

_MAX_DEPTH = 64
"""Inner-failure chains deeper than this are cut (a cycle-proof bound, far above real chains)."""


def failure_to_pb(details: FailureDetails) -> pb.TaskFailureDetails:
    """Our failure details (and their inner chain) as the protobuf message."""
    return _to_pb(details, 0)


def _to_pb(details: FailureDetails, depth: int) -> pb.TaskFailureDetails:
    message = pb.TaskFailureDetails(
        errorType=details.error_type,
        errorMessage=details.message,
        isNonRetriable=details.is_non_retriable,
    )
    if details.stack_trace is not None:
        message.stackTrace.value = details.stack_trace
    if details.inner_failure is not None and depth < _MAX_DEPTH:
        message.innerFailure.CopyFrom(_to_pb(details.inner_failure, depth + 1))
    for name, value in (details.properties or {}).items():
        message.properties[name].CopyFrom(json_format.ParseDict(value, struct_pb2.Value()))
    return message


def failure_from_pb(message: pb.TaskFailureDetails) -> FailureDetails:
    """The protobuf message as our failure details; an empty error type reads as ``Exception``.

    The SDK always sets ``errorType`` (the exception's class name); an empty one only comes
    from a hand-built message, and an empty string would not let callers branch on it.
    """
    return _from_pb(message, 0)


def _from_pb(message: pb.TaskFailureDetails, depth: int) -> FailureDetails:
    inner = None
    if message.HasField("innerFailure") and depth < _MAX_DEPTH:
        inner = _from_pb(message.innerFailure, depth + 1)
    return FailureDetails(
        message=message.errorMessage,
        error_type=message.errorType or "Exception",
        stack_trace=message.stackTrace.value if message.HasField("stackTrace") else None,
        inner_failure=inner,
        is_non_retriable=message.isNonRetriable,
        properties=(
            {name: json_format.MessageToDict(value) for name, value in message.properties.items()}
            if message.properties
            else None
        ),
    )
