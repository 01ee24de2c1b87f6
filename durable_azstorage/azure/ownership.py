"""Which control-queue partitions this worker owns: the seam for the partition manager.

Until the partition manager (issue 5) exists, one worker owns every partition
(``OwnAllPartitions``). The backend runs one receive loop per owned partition and starts or
stops loops when ``subscribe``'s callback reports a change (from any thread).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol


class PartitionOwnership(Protocol):
    """Which control-queue partitions this worker owns (the seam for the partition manager)."""

    def owned(self) -> frozenset[int]: ...

    def subscribe(self, callback: Callable[[frozenset[int]], None]) -> None:
        """Call ``callback(owned)`` whenever ownership changes."""


class OwnAllPartitions:
    """Default ownership: this worker owns every partition."""

    def __init__(self, partition_count: int) -> None:
        self._all = frozenset(range(partition_count))

    def owned(self) -> frozenset[int]:
        return self._all

    def subscribe(self, callback: Callable[[frozenset[int]], None]) -> None:
        pass
