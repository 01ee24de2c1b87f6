"""Orchestration versioning: which instances a worker's code may run, and what to do with the rest.

As in the portable SDK (``worker.use_versioning(VersioningOptions(...))``): a worker states
the ``version`` of its code and a ``match_strategy``; an instance whose version does not match
is either failed (``FAIL``, error type ``VersionMismatch``) or given back untouched
(``REJECT``) so that a worker that can run it picks it up. A rejected instance keeps its
status (Pending or Running) and its give-backs never count toward poison. ``default_version``
is the version given to sub-orchestrations started without one.

Versions compare as dotted numbers when both parse as such ("1.10" > "1.9"), else as strings;
a missing version is older than any version.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from durable_azstorage.model.failure import FailureDetails

VERSION_MISMATCH_ERROR_TYPE = "VersionMismatch"

_NUMERIC = re.compile(r"^v?(\d+(?:\.\d+)*)$")


class VersionMatchStrategy(enum.Enum):
    """How an instance's version is compared with the worker's."""

    NONE = 1
    """Run every instance, whatever its version."""
    STRICT = 2
    """Run only instances of exactly the worker's version."""
    CURRENT_OR_OLDER = 3
    """Run instances of the worker's version or older ones (code that kept old paths)."""


class VersionFailureStrategy(enum.Enum):
    """What happens to an instance whose version the worker may not run."""

    REJECT = 1
    """Give it back untouched, for a worker that can run it (never poison)."""
    FAIL = 2
    """Fail the instance with a ``VersionMismatch`` failure."""


@dataclass(frozen=True, slots=True)
class VersioningOptions:
    """A worker's versioning (``TaskHubWorker.use_versioning``)."""

    version: str | None = None
    default_version: str | None = None
    match_strategy: VersionMatchStrategy = VersionMatchStrategy.NONE
    failure_strategy: VersionFailureStrategy = VersionFailureStrategy.REJECT

    def __post_init__(self) -> None:
        if not isinstance(self.match_strategy, VersionMatchStrategy):
            raise TypeError(
                f"match_strategy must be a VersionMatchStrategy, got {self.match_strategy!r}"
            )
        if not isinstance(self.failure_strategy, VersionFailureStrategy):
            raise TypeError(
                f"failure_strategy must be a VersionFailureStrategy, got {self.failure_strategy!r}"
            )

    def mismatch(self, instance_version: str | None) -> FailureDetails | None:
        """Why this worker may not run an instance of ``instance_version``; None if it may."""
        order = compare_versions(instance_version, self.version)
        if self.match_strategy is VersionMatchStrategy.STRICT and order != 0:
            reason = f"does not match the worker version {self.version!r}"
        elif self.match_strategy is VersionMatchStrategy.CURRENT_OR_OLDER and order > 0:
            reason = f"is newer than the worker version {self.version!r}"
        else:
            return None
        return FailureDetails(
            message=f"The orchestration version {instance_version!r} {reason}.",
            error_type=VERSION_MISMATCH_ERROR_TYPE,
            is_non_retriable=True,
        )


class VersionRejected(Exception):
    """Raised by replay when the worker's ``REJECT`` strategy refuses an instance's version:
    the work item goes back untouched (the executor turns this into a deferred abandon)."""


def compare_versions(left: str | None, right: str | None) -> int:
    """-1, 0 or 1 as ``left`` is older than, equal to or newer than ``right``."""
    if not left or not right:
        return (bool(left) > bool(right)) - (bool(left) < bool(right))
    lm, rm = _NUMERIC.match(left), _NUMERIC.match(right)
    if lm and rm:
        lt = _padded(lm.group(1), rm.group(1))
        rt = _padded(rm.group(1), lm.group(1))
        return (lt > rt) - (lt < rt)
    return (left > right) - (left < right)


def _padded(digits: str, other: str) -> tuple[int, ...]:
    """``digits`` as numbers, zero-padded to ``other``'s length ("1" == "1.0")."""
    parts = [int(p) for p in digits.split(".")]
    parts += [0] * (other.count(".") + 1 - len(parts))
    return tuple(parts)


__all__ = [
    "VERSION_MISMATCH_ERROR_TYPE",
    "VersionFailureStrategy",
    "VersionMatchStrategy",
    "VersionRejected",
    "VersioningOptions",
    "compare_versions",
]
