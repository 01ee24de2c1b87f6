"""Which annotations drive payload reconstruction: only types built from data."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Optional

from durable_azstorage.authoring.signatures import input_type, result_type


@dataclass
class Point:
    x: int


def typed(ctx: object, point: Point) -> list[Point]:
    return [point]


async def typed_async(ctx: object, point: Point | None) -> Point:
    return Point(1)


def builtin(ctx: object, n: int) -> str:
    return str(n)


def untyped(ctx, value):  # type: ignore[no-untyped-def]
    return value


def no_input(ctx: object) -> Point:
    return Point(0)


class CallableActivity:
    def __call__(self, ctx: object, point: Point) -> Point:
        return point


def test_dataclass_annotations_are_found() -> None:
    assert input_type(typed) is Point
    assert result_type(typed) == list[Point]
    assert input_type(typed_async) == Optional[Point]  # noqa: UP045 - the spelling under test
    assert result_type(typed_async) is Point
    assert input_type(CallableActivity()) is Point


def test_builtins_missing_and_unknown_annotations_mean_as_decoded() -> None:
    assert input_type(builtin) is None and result_type(builtin) is None
    assert input_type(untyped) is None and result_type(untyped) is None
    assert input_type(no_input) is None
    assert result_type("typed") is None  # scheduled by name: nothing to inspect
    assert input_type(functools.partial(untyped, None)) is None


def test_any_annotation_is_as_decoded() -> None:
    def anything(ctx: object, value: Any) -> Any:
        return value

    assert input_type(anything) is None and result_type(anything) is None
