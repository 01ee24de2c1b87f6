"""Typed payloads: values rebuilt as the type the code names, never one the payload names."""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass, field
from typing import Any, Optional

import pydantic
import pytest

from durable_azstorage.model.errors import PayloadTypeError
from durable_azstorage.serialization.converter import JsonDataConverter, deserialize_as
from durable_azstorage.serialization.reconstruction import can_reconstruct, reconstruct

conv = JsonDataConverter()


class Size(enum.Enum):
    SMALL = "s"
    LARGE = "l"


@dataclass(frozen=True)
class Address:
    city: str
    zip: str = ""


@dataclass
class Customer:
    name: str
    address: Address
    previous: list[Address] = field(default_factory=list)
    size: Size = Size.SMALL
    since: dt.date | None = None
    derived: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        self.derived = len(self.name)


class Order(pydantic.BaseModel):
    sku: str
    quantity: int
    ship_to: Address | None = None


class Money:
    """Opts in to reconstruction with the portable SDK's hooks."""

    def __init__(self, cents: int) -> None:
        self.cents = cents

    def to_json(self) -> str:
        return f"{self.cents}c"

    @classmethod
    def from_json(cls, value: str) -> Money:
        return cls(int(value.rstrip("c")))


class Opaque:
    def __init__(self, value: Any) -> None:
        self.value = value


def test_nested_dataclasses_round_trip() -> None:
    customer = Customer(
        "Ada", Address("Paris", "75001"), [Address("Rome")], Size.LARGE, dt.date(2020, 1, 2)
    )
    text = conv.serialize(customer)
    assert conv.deserialize(text)["address"] == {"city": "Paris", "zip": "75001"}  # untyped: dicts
    back = conv.deserialize(text, Customer)
    assert back == customer
    assert back.derived == 3 and isinstance(back.previous[0], Address)


def test_containers_and_optional_of_dataclasses() -> None:
    text = conv.serialize({"a": [Address("X")], "b": [Address("Y"), None]})
    assert conv.deserialize(text, dict[str, list[Address | None]]) == {
        "a": [Address("X")],
        "b": [Address("Y"), None],
    }
    assert conv.deserialize(conv.serialize((Address("X"), 2)), tuple[Address, int]) == (
        Address("X"),
        2,
    )
    assert conv.deserialize(None, Address) is None


def test_unknown_field_names_the_type_and_field() -> None:
    with pytest.raises(PayloadTypeError, match=r"Address has no field 'street'"):
        conv.deserialize('{"city": "Paris", "street": "Rivoli"}', Address)
    with pytest.raises(
        PayloadTypeError, match=r"payload\.address: .*Address has no field 'country'"
    ):
        conv.deserialize('{"name": "A", "address": {"city": "P", "country": "FR"}}', Customer)


def test_missing_field_and_wrong_shape_are_clear() -> None:
    with pytest.raises(PayloadTypeError, match=r"Address requires field 'city'"):
        conv.deserialize('{"zip": "1"}', Address)
    with pytest.raises(PayloadTypeError, match=r"expected a JSON object for .*Address, got list"):
        conv.deserialize("[1, 2]", Address)
    with pytest.raises(PayloadTypeError, match=r"'huge' is not a value of enum .*Size"):
        conv.deserialize('"huge"', Size)
    assert isinstance(PayloadTypeError("x"), TypeError)


def test_pydantic_models_serialize_and_validate() -> None:
    order = Order(sku="A1", quantity=2, ship_to=Address("Oslo"))
    text = conv.serialize(order)
    assert conv.deserialize(text) == {
        "sku": "A1",
        "quantity": 2,
        "ship_to": {"city": "Oslo", "zip": ""},
    }
    assert conv.deserialize(text, Order) == order
    with pytest.raises(PayloadTypeError, match=r"(?s)invalid .*Order.*quantity"):
        conv.deserialize('{"sku": "A1", "quantity": "many"}', Order)


def test_from_json_hook_and_to_json_hook() -> None:
    text = conv.serialize({"price": Money(250)})
    assert text == '{"price":"250c"}'
    assert conv.deserialize(text, dict[str, Money])["price"].cents == 250


def test_builtins_pass_through_and_arbitrary_classes_are_refused() -> None:
    assert conv.deserialize('"3"', int) == "3"  # no int("3"): builtins arrive as decoded
    assert conv.deserialize("3", float) == 3.0
    assert conv.deserialize("[1, 2]", tuple) == (1, 2)
    assert conv.deserialize(conv.serialize(dt.date(2020, 1, 1)), dt.date) == dt.date(2020, 1, 1)
    assert conv.deserialize('{"a": 1}', Any) == {"a": 1}
    with pytest.raises(PayloadTypeError, match=r"cannot build a .*Opaque from a payload"):
        conv.deserialize('{"value": 1}', Opaque)


def test_ambiguous_union_is_left_as_decoded() -> None:
    assert reconstruct({"city": "x"}, Address | Order) == {"city": "x"}


def test_can_reconstruct_only_types_built_from_data() -> None:
    optional_order = Optional[Order]  # noqa: UP045 - the spelling under test
    assert all(
        can_reconstruct(t) for t in (Address, Order, Size, Money, list[Address], optional_order)
    )
    assert not any(can_reconstruct(t) for t in (int, str, dict, dt.date, Opaque, list[int], Any))


def test_converter_without_target_type_parameter_still_works_untyped() -> None:
    class Legacy:
        def serialize(self, value: Any) -> str | None:
            return None if value is None else str(value)

        def deserialize(self, data: str | None) -> Any:
            return data

    assert deserialize_as(Legacy(), "x", None) == "x"  # type: ignore[arg-type]


def test_typed_payloads_never_import_pydantic_themselves() -> None:
    import subprocess
    import sys

    code = (
        "import sys; from durable_azstorage import TaskHubWorker, JsonDataConverter;"
        "import durable_azstorage.testing.pytest_plugin;"
        "JsonDataConverter().deserialize('{\"a\": 1}', dict);"
        "print('pydantic' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
