"""JsonDataConverter: deterministic JSON, tagged round-trips, clear errors."""

from __future__ import annotations

import datetime as dt
import decimal
import enum
import uuid
from dataclasses import dataclass
from typing import Any

import pytest

from durable_azstorage.serialization.converter import DataConverter, JsonDataConverter

conv = JsonDataConverter()


class Color(enum.Enum):
    RED = "red"


@dataclass
class Point:
    x: int
    y: int
    when: dt.date


@pytest.mark.parametrize(
    "value",
    [
        1,
        1.5,
        "text",
        True,
        [1, "a"],
        {"k": [1, 2]},
        "ünïcode",
        dt.datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=dt.timezone.utc),
        dt.datetime(2026, 1, 2, 3, 4, 5),
        dt.date(2026, 1, 2),
        dt.time(3, 4, 5),
        dt.timedelta(days=-1, seconds=5, microseconds=7),
        uuid.UUID("12345678-1234-5678-1234-567812345678"),
        decimal.Decimal("1.10"),
        b"\x00\xffbytes",
        {3, 1, 2},
        frozenset({"b", "a"}),
        {"nested": {"at": dt.date(2026, 1, 1), "ids": {uuid.UUID(int=1)}}},
    ],
)
def test_values_round_trip(value: Any) -> None:
    decoded = conv.deserialize(conv.serialize(value))
    assert decoded == value and type(decoded) is type(value)


def test_none_maps_to_none() -> None:
    assert conv.serialize(None) is None and conv.deserialize(None) is None


def test_dataclasses_enums_and_tuples_become_plain_json() -> None:
    text = conv.serialize({"p": Point(1, 2, dt.date(2026, 1, 1)), "c": Color.RED, "t": (1, 2)})
    assert conv.deserialize(text) == {
        "p": {"x": 1, "y": 2, "when": dt.date(2026, 1, 1)},
        "c": "red",
        "t": [1, 2],
    }


def test_encoding_is_deterministic_for_sets() -> None:
    a = conv.serialize({"s": {"b", "c", "a"}})
    b = conv.serialize({"s": {"c", "a", "b"}})
    assert a == b == '{"s":{"__durable_type__":"set","value":["a","b","c"]}}'


def test_plain_json_is_compact_and_readable_by_any_json_library() -> None:
    assert conv.serialize({"a": [1, 2], "b": "é"}) == '{"a":[1,2],"b":"é"}'


def test_an_unserializable_value_names_its_type() -> None:
    class Opaque:
        pass

    with pytest.raises(TypeError, match=r"test_converter\..*Opaque"):
        conv.serialize({"deep": [Opaque()]})


def test_circular_structures_are_a_type_error() -> None:
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(TypeError, match="builtins.list"):
        conv.serialize(loop)


def test_objects_that_merely_look_tagged_are_left_alone() -> None:
    value = {"__durable_type__": "no-such-tag", "value": 1}
    assert conv.deserialize(conv.serialize(value)) == value


def test_the_json_converter_satisfies_the_protocol() -> None:
    assert isinstance(conv, DataConverter)
