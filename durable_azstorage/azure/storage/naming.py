"""Names of a task hub's storage resources, the partition function and table-key escaping.

Everything here is pure (no Azure SDK) and byte-compatible with the .NET provider (DTFx
AzureStorage), so a hub's layout and an instance's partition are the same in both:

* resource names follow ARCHITECTURE.md §4 (``{hub}-control-00``, ``{hub}History``, ...);
  queue and container names are lower-cased because Azure only allows lower case there;
* ``partition_of`` is FNV-1a-32 over the UTF-8 instance id, modulo the partition count
  (DTFx ``Fnv1aHashHelper``);
* ``escape_key`` / ``unescape_key`` are DTFx ``KeySanitation``: table keys may not contain
  ``/ \\ # ?`` or control characters, so those are written as ``^`` + a code character.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MIN_PARTITIONS = 1
MAX_PARTITIONS = 16

_HUB_NAME = re.compile(r"[A-Za-z][A-Za-z0-9]{2,44}")

FNV_OFFSET_BASIS = 2166136261
FNV_PRIME = 16777619

_ESCAPE_CHAR = "^"
_SHIFT = ord("À")  # DTFx shifts control characters by 'À' (U+00C0)
_CODES = {"^": "^", "/": "0", "\\": "1", "#": "2", "?": "3"}
_DECODES = {v: k for k, v in _CODES.items()}


def validate_task_hub_name(name: object) -> str:
    """Return ``name`` if it is a valid task hub name, else raise ``ValueError`` naming the rule.

    The rule (3–45 characters, ASCII letters and digits, starting with a letter) is the
    intersection of Azure's naming rules for tables, queues and containers once the longest
    suffix (``-largemessages``, 14 characters; queue names max 63) is appended.
    """
    if not isinstance(name, str):
        raise ValueError(f"task_hub: must be a string, got {type(name).__name__}")
    if not _HUB_NAME.fullmatch(name):
        raise ValueError(
            f"task_hub: {name!r} is not a valid task hub name; the rule is 3-45 characters, "
            "ASCII letters and digits only, starting with a letter"
        )
    return name


def validate_partition_count(count: object) -> int:
    """Return ``count`` if it is an int in 1–16 (the DTFx limit), else raise ``ValueError``."""
    if isinstance(count, bool) or not isinstance(count, int):
        raise ValueError(f"partition_count: must be an integer, got {type(count).__name__}")
    if not MIN_PARTITIONS <= count <= MAX_PARTITIONS:
        raise ValueError(
            f"partition_count: {count} is out of range; the rule is "
            f"{MIN_PARTITIONS} <= partition_count <= {MAX_PARTITIONS}"
        )
    return count


def control_queue_name(task_hub: str, partition: int) -> str:
    """``{hub}-control-NN`` (lower case), the queue of partition ``partition``."""
    return f"{task_hub.lower()}-control-{partition:02d}"


@dataclass(frozen=True, slots=True)
class TaskHubNames:
    """The names of every storage resource of one task hub (ARCHITECTURE.md §4)."""

    task_hub: str
    partition_count: int

    def __post_init__(self) -> None:
        validate_task_hub_name(self.task_hub)
        validate_partition_count(self.partition_count)

    @property
    def control_queues(self) -> tuple[str, ...]:
        return tuple(control_queue_name(self.task_hub, p) for p in range(self.partition_count))

    @property
    def work_item_queue(self) -> str:
        return f"{self.task_hub.lower()}-workitems"

    @property
    def history_table(self) -> str:
        return f"{self.task_hub}History"

    @property
    def instances_table(self) -> str:
        return f"{self.task_hub}Instances"

    @property
    def partitions_table(self) -> str:
        return f"{self.task_hub}Partitions"

    @property
    def large_messages_container(self) -> str:
        return f"{self.task_hub.lower()}-largemessages"

    @property
    def queues(self) -> tuple[str, ...]:
        return (*self.control_queues, self.work_item_queue)

    @property
    def tables(self) -> tuple[str, ...]:
        return (self.history_table, self.instances_table, self.partitions_table)

    @property
    def containers(self) -> tuple[str, ...]:
        return (self.large_messages_container,)

    def control_queue_for(self, instance_id: str) -> str:
        """The control queue that carries every message addressed to ``instance_id``."""
        return control_queue_name(self.task_hub, partition_of(instance_id, self.partition_count))


def fnv1a32(data: bytes) -> int:
    """32-bit FNV-1a hash of ``data`` (offset basis 2166136261, prime 16777619)."""
    h = FNV_OFFSET_BASIS
    for byte in data:
        h ^= byte
        h = (h * FNV_PRIME) & 0xFFFFFFFF
    return h


def partition_of(instance_id: str, partition_count: int) -> int:
    """The partition index of ``instance_id``: FNV-1a-32 of its UTF-8 bytes mod the count."""
    return fnv1a32(instance_id.encode("utf-8")) % partition_count


def _is_control(c: str) -> bool:
    o = ord(c)
    return o <= 0x1F or 0x7F <= o <= 0x9F


def escape_key(key: str) -> str:
    """Escape ``key`` for use as a PartitionKey/RowKey exactly like DTFx ``KeySanitation``."""
    if not any(c in _CODES or _is_control(c) for c in key):
        return key  # the common case allocates nothing
    out: list[str] = []
    for c in key:
        code = _CODES.get(c)
        if code is not None:
            out.append(_ESCAPE_CHAR + code)
        elif _is_control(c):
            out.append(_ESCAPE_CHAR + chr(ord(c) + _SHIFT))
        else:
            out.append(c)
    return "".join(out)


def unescape_key(key: str) -> str:
    """Invert ``escape_key``; raise ``ValueError`` on a malformed escape sequence."""
    if _ESCAPE_CHAR not in key:
        return key
    out: list[str] = []
    i = 0
    while i < len(key):
        c = key[i]
        if c != _ESCAPE_CHAR:
            out.append(c)
            i += 1
            continue
        if i + 1 >= len(key):
            raise ValueError(f"table key {key!r} ends with a lone escape character '^'")
        code = key[i + 1]
        original = _DECODES.get(code)
        if original is None:
            shifted = ord(code) - _SHIFT
            if not (0 <= shifted <= 0x1F or 0x7F <= shifted <= 0x9F):
                raise ValueError(f"table key {key!r} has an unknown escape sequence '^{code}'")
            original = chr(shifted)
        out.append(original)
        i += 2
    return "".join(out)
