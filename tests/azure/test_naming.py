"""Resource names, the FNV-1a partition function and DTFx table-key escaping."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from durable_azstorage.azure.storage.naming import (
    TaskHubNames,
    escape_key,
    fnv1a32,
    partition_of,
    unescape_key,
    validate_partition_count,
    validate_task_hub_name,
)


@pytest.mark.parametrize(
    ("data", "expected"),
    [  # the reference FNV-1a 32-bit test vectors (Fowler/Noll/Vo)
        (b"", 0x811C9DC5),
        (b"a", 0xE40C292C),
        (b"b", 0xE70C2DE5),
        (b"foobar", 0xBF9CF968),
        (b"chongo was here!\n", 0xD49930D5),
    ],
)
def test_fnv1a32_known_answers(data: bytes, expected: int) -> None:
    assert fnv1a32(data) == expected


def test_partition_uses_utf8_bytes_mod_count() -> None:
    assert partition_of("foobar", 4) == 0xBF9CF968 % 4
    assert partition_of("foobar", 16) == 0xBF9CF968 % 16
    assert partition_of("é", 7) == fnv1a32("é".encode()) % 7  # two UTF-8 bytes, not one
    assert fnv1a32("é".encode()) != fnv1a32(b"\xe9")
    assert {partition_of(f"instance-{i}", 4) for i in range(200)} == {0, 1, 2, 3}


def test_resource_names_match_the_dotnet_layout() -> None:
    names = TaskHubNames("MyHub", 3)
    assert names.control_queues == ("myhub-control-00", "myhub-control-01", "myhub-control-02")
    assert names.work_item_queue == "myhub-workitems"
    assert names.history_table == "MyHubHistory"
    assert names.instances_table == "MyHubInstances"
    assert names.partitions_table == "MyHubPartitions"
    assert names.large_messages_container == "myhub-largemessages"
    assert names.control_queue_for("foobar") == f"myhub-control-{0xBF9CF968 % 3:02d}"
    assert TaskHubNames("h" * 45, 16).control_queues[15] == "h" * 45 + "-control-15"


@pytest.mark.parametrize("name", ["ab", "1abc", "a-b-c", "hub_name", "a" * 46, "héllo", ""])
def test_invalid_hub_names_name_the_rule(name: str) -> None:
    with pytest.raises(
        ValueError,
        match=r"task_hub: .*3-45 characters, ASCII letters and digits only, starting with a letter",
    ):
        validate_task_hub_name(name)


def test_valid_hub_names() -> None:
    for name in ("abc", "Default", "a" * 45, "Hub2026"):
        assert validate_task_hub_name(name) == name


@pytest.mark.parametrize("count", [0, 17, -1, True, 4.0, "4"])
def test_invalid_partition_counts(count: object) -> None:
    with pytest.raises(ValueError, match="partition_count"):
        validate_partition_count(count)


@pytest.mark.parametrize(
    ("raw", "escaped"),
    [
        ("plain-id:0001", "plain-id:0001"),
        ("a/b", "a^0b"),
        ("a\\b", "a^1b"),
        ("a#b", "a^2b"),
        ("a?b", "a^3b"),
        ("a^b", "a^^b"),
        ("\x00", "^À"),
        ("\x1f", "^" + chr(0x1F + 0xC0)),
        ("\x7f", "^" + chr(0x7F + 0xC0)),
        ("\x9f", "^" + chr(0x9F + 0xC0)),
        ("\t/\n", "^" + chr(0x09 + 0xC0) + "^0^" + chr(0x0A + 0xC0)),
    ],
)
def test_escape_known_answers(raw: str, escaped: str) -> None:
    assert escape_key(raw) == escaped
    assert unescape_key(escaped) == raw


@given(st.text())
def test_escape_round_trips(key: str) -> None:
    escaped = escape_key(key)
    assert unescape_key(escaped) == key
    assert not any(c in "/\\#?" for c in escaped)
    assert not any(ord(c) <= 0x1F or 0x7F <= ord(c) <= 0x9F for c in escaped)


@given(st.text(), st.text())
def test_escape_is_injective(a: str, b: str) -> None:
    if a != b:
        assert escape_key(a) != escape_key(b)


@pytest.mark.parametrize("bad", ["abc^", "a^xb", "^4"])
def test_unescape_rejects_malformed_keys(bad: str) -> None:
    with pytest.raises(ValueError, match="table key"):
        unescape_key(bad)
