"""How our errors become gRPC status codes: one mapping for every RPC of the sidecar.

The SDKs branch on the status code (``NOT_FOUND``, ``ALREADY_EXISTS``, ``DEADLINE_EXCEEDED``
...) and show the details string, so each code carries our own message, which names the
instance or the request field. Anything unexpected becomes ``INTERNAL`` with the exception's
type and message; the traceback goes to the sidecar's log, never to the caller.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

import grpc
import grpc.aio

from durable_azstorage.model.errors import (
    InvalidOperationError,
    OrchestrationAlreadyExistsError,
    OrchestrationNotFoundError,
    TaskHubNotFoundError,
)

log = logging.getLogger("durable_azstorage.sidecar")


class InvalidRequestError(ValueError):
    """A request field the sidecar cannot accept; the message starts with the field's name."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field


class UnsupportedError(Exception):
    """An RPC (or a form of one) this sidecar does not serve: ``UNIMPLEMENTED``."""


class HubManagementDisabledError(Exception):
    """``DeleteTaskHub`` / ``CreateTaskHub(recreateIfExists)`` on a sidecar not started with
    ``--allow-hub-management``: ``PERMISSION_DENIED``."""

    def __init__(self, rpc: str) -> None:
        super().__init__(
            f"{rpc} would delete the task hub and everything in it under the running engine; "
            "this sidecar refuses it because it was not started with --allow-hub-management "
            "(SidecarServer(allow_hub_management=True)); delete the hub with "
            "`durable-azstorage hub delete` instead"
        )


def status_of(exc: BaseException) -> tuple[grpc.StatusCode, str]:
    """The status code and details string for ``exc``."""
    if isinstance(exc, (OrchestrationNotFoundError, TaskHubNotFoundError)):
        return grpc.StatusCode.NOT_FOUND, str(exc)
    if isinstance(exc, OrchestrationAlreadyExistsError):
        return grpc.StatusCode.ALREADY_EXISTS, str(exc)
    if isinstance(exc, InvalidOperationError):  # a ValueError too: test it first
        return grpc.StatusCode.FAILED_PRECONDITION, str(exc)
    if isinstance(exc, (ValueError, TypeError)):
        return grpc.StatusCode.INVALID_ARGUMENT, str(exc)
    if isinstance(exc, TimeoutError):
        return grpc.StatusCode.DEADLINE_EXCEEDED, str(exc)
    if isinstance(exc, UnsupportedError):
        return grpc.StatusCode.UNIMPLEMENTED, str(exc)
    if isinstance(exc, HubManagementDisabledError):
        return grpc.StatusCode.PERMISSION_DENIED, str(exc)
    return grpc.StatusCode.INTERNAL, f"internal error: {type(exc).__name__}: {exc}"


@asynccontextmanager
async def rpc_errors(context: grpc.aio.ServicerContext, rpc: str) -> AsyncIterator[None]:
    """Turn an exception raised by the body into ``context.abort`` with our status code."""
    try:
        yield
    except grpc.aio.AbortError:
        raise  # the body aborted on purpose
    except Exception as exc:  # noqa: BLE001 - every error must reach the caller as a status
        code, details = status_of(exc)
        if code is grpc.StatusCode.INTERNAL:
            log.exception("sidecar %s failed", rpc)
        else:
            log.debug("sidecar %s: %s: %s", rpc, code.name, details)
        await context.abort(code, details)


@contextmanager
def field_named(field: str) -> Iterator[None]:
    """Re-raise a ``ValueError`` of the body as ``InvalidRequestError`` naming ``field``."""
    try:
        yield
    except (InvalidRequestError, InvalidOperationError):
        raise
    except ValueError as exc:
        raise InvalidRequestError(field, str(exc)) from None
