"""Which control-queue partitions this worker owns: the seam for the partition manager.

A started worker's backend gets its partitions from the lease-based ``PartitionManager``
(``manager``); ``OwnAllPartitions`` owns every partition, for a backend that is given it
(tests of competing receivers, the torture test). The backend runs one receive loop per owned
partition and starts or stops loops when ``subscribe``'s callback reports a change (from any
thread).
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
    """This worker owns every partition (no leases)."""

    def __init__(self, partition_count: int) -> None:
        self._all = frozenset(range(partition_count))

    def owned(self) -> frozenset[int]:
        return self._all

    def subscribe(self, callback: Callable[[frozenset[int]], None]) -> None:
        pass
