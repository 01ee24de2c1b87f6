"""Failure details: how an error crosses the durable boundary (history, queues, clients)."""

from __future__ import annotations

import traceback
from dataclasses import dataclass


@dataclass(frozen=True, slots=True, kw_only=True)
class FailureDetails:
    """A serializable description of an exception.

    ``error_type`` is the fully qualified exception class name (``builtins.ValueError``,
    ``myapp.billing.CardDeclined``) so that callers in other processes can branch on it
    without importing the class.
    """

    message: str
    error_type: str
    stack_trace: str | None = None
    inner_failure: FailureDetails | None = None
    is_non_retriable: bool = False
    properties: dict[str, object] | None = None
    """Extra facts about the error (JSON values by name), as the portable SDKs'
    ``TaskFailureDetails.properties``: e.g. a .NET exception's data; kept through storage."""

    @classmethod
    def from_exception(cls, exc: BaseException, *, non_retriable: bool = False) -> FailureDetails:
        inner = exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)
        return cls(
            message=str(exc),
            error_type=qualified_type_name(type(exc)),
            stack_trace="".join(traceback.format_exception(type(exc), exc, exc.__traceback__)),
            inner_failure=cls.from_exception(inner) if inner is not None else None,
            is_non_retriable=non_retriable,
        )

    def is_caused_by(self, exception_type: type[BaseException]) -> bool:
        """True if this failure (not its inner failures) was raised by ``exception_type``."""
        return self.error_type == qualified_type_name(exception_type)


def qualified_type_name(t: type) -> str:
    return f"{t.__module__}.{t.__qualname__}"
