"""Errors the dashboard answers with, and how library exceptions map to HTTP statuses.

Every failure leaves as JSON ``{"error": {"status": ..., "message": ...}}`` on ``/api/`` and
as an error page elsewhere, with the status a script can branch on: 400 bad input, 401 no
or wrong token, 403 refused (read-only, cross-site), 404 unknown instance or resource, 409
the instance is in the wrong state for the action, 415 a POST body that is not JSON.
"""

from __future__ import annotations

from durable_azstorage.model.errors import (
    DurableTaskError,
    InvalidOperationError,
    OrchestrationAlreadyExistsError,
    OrchestrationNotFoundError,
    TaskHubNotFoundError,
)


class ApiError(Exception):
    """An expected failure with its HTTP status; the message is safe to show."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def bad_request(message: str) -> ApiError:
    return ApiError(400, message)


def classify(exc: Exception) -> ApiError | None:
    """The HTTP view of an exception raised by the client or backend (None: unexpected)."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, OrchestrationNotFoundError):
        return ApiError(404, str(exc))
    if isinstance(exc, TaskHubNotFoundError):
        return ApiError(404, str(exc))
    if isinstance(exc, (InvalidOperationError, OrchestrationAlreadyExistsError)):
        return ApiError(409, str(exc))
    if isinstance(exc, DurableTaskError):
        return ApiError(500, str(exc))
    if isinstance(exc, ValueError):
        return ApiError(400, str(exc))
    if getattr(exc, "status_code", None) == 404:  # a storage SDK's missing table/queue/blob
        return ApiError(404, "storage resource not found: does the task hub exist?")
    return None
