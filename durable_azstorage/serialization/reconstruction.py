"""Typed payloads: rebuild a decoded JSON value as the type the code asked for.

The target type always comes from code (``return_type=``, ``data_type=``, ``get_output(T)``,
the annotation of an input parameter), never from the payload, so a payload cannot choose
what gets built. Only types whose authors agreed to be built from data are constructed:
dataclasses (field by field, recursively, via their generated ``__init__``), pydantic models
(validated by pydantic; only looked for when the application has imported pydantic, so it
costs nothing otherwise), enums, and types with a ``from_json`` classmethod (the portable
SDK's hook). Builtins and the converter's tagged types (datetime, UUID, ...) pass through.
Anything else, or data that does not fit, raises ``PayloadTypeError`` naming the type and
the field: unlike the portable SDK, which falls back to the raw value, a mismatch is loud.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import sys
import types
import typing
from collections.abc import Mapping, Sequence, Set
from typing import Any

from durable_azstorage.model.errors import PayloadTypeError

_UNION_ORIGINS: tuple[Any, ...] = (typing.Union, types.UnionType)
_SEQUENCE_ORIGINS: tuple[Any, ...] = (list, Sequence, list)
_MAPPING_ORIGINS: tuple[Any, ...] = (dict, Mapping)
_SET_ORIGINS: tuple[Any, ...] = (set, frozenset, Set)


def type_name(target: Any) -> str:
    """``module.QualName`` of a class, or the repr of a typing construct."""
    if isinstance(target, type):
        return (
            target.__qualname__
            if target.__module__ == "builtins"
            else f"{target.__module__}.{target.__qualname__}"
        )
    return repr(target)


def _pydantic_model(target: type) -> bool:
    pydantic = sys.modules.get("pydantic")
    base = getattr(pydantic, "BaseModel", None) if pydantic is not None else None
    return base is not None and issubclass(target, base)


def _from_json_hook(target: type) -> Any:
    hook = getattr(target, "from_json", None)
    return hook if callable(hook) else None


def can_reconstruct(target: Any) -> bool:
    """True when ``target`` (or a container or Optional of it) is a type built from data.

    Used to decide whether an input parameter's annotation should drive decoding: builtins
    and unknown classes say no, so those inputs arrive exactly as decoded.
    """
    target = _strip_annotated(target)
    origin = typing.get_origin(target)
    if origin is not None:
        return any(can_reconstruct(arg) for arg in typing.get_args(target) if arg is not Ellipsis)
    if not isinstance(target, type):
        return False
    return (
        dataclasses.is_dataclass(target)
        or issubclass(target, enum.Enum)
        or _pydantic_model(target)
        or _from_json_hook(target) is not None
    )


def reconstruct(value: Any, target: Any, *, where: str = "payload") -> Any:
    """Rebuild ``value`` (as decoded from JSON) as ``target``; ``where`` labels errors."""
    if value is None or target is None or target is Any:
        return value
    target = _strip_annotated(target)
    origin = typing.get_origin(target)
    if origin is not None:
        return _reconstruct_generic(value, target, origin, where)
    if not isinstance(target, type):
        return value  # TypeVar, Literal members, ...: nothing to build
    if isinstance(value, target) and not _pydantic_model(target):
        return value
    hook = _from_json_hook(target)
    if hook is not None:
        return hook(value)
    if _pydantic_model(target):
        return _validate_pydantic(value, target, where)
    if dataclasses.is_dataclass(target):
        return _build_dataclass(value, target, where)
    if issubclass(target, enum.Enum):
        try:
            return target(value)
        except ValueError:
            raise PayloadTypeError(
                f"{where}: {value!r} is not a value of enum {type_name(target)}"
            ) from None
    if target is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if target in (tuple, set, frozenset) and isinstance(value, (list, set, frozenset)):
        return target(value)
    if target.__module__ == "builtins" or target.__module__ in ("datetime", "uuid", "decimal"):
        return value  # builtins pass through as decoded
    raise PayloadTypeError(
        f"{where}: cannot build a {type_name(target)} from a payload; use a dataclass, a pydantic "
        "model, an enum, a type with a from_json classmethod, or a JSON type"
    )


def _strip_annotated(target: Any) -> Any:
    if typing.get_origin(target) is typing.Annotated:
        return typing.get_args(target)[0]
    return target


def _reconstruct_generic(value: Any, target: Any, origin: Any, where: str) -> Any:
    args = typing.get_args(target)
    if origin in _UNION_ORIGINS:
        members = [a for a in args if a is not type(None)]
        if any(
            a is Any
            or (isinstance(a, type) and isinstance(value, a) and not dataclasses.is_dataclass(a))
            for a in members
        ):
            return value
        if len(members) == 1:
            return reconstruct(value, members[0], where=where)
        return value  # an ambiguous union: never guess which member to build
    if origin is typing.Literal:
        return value
    if origin in _SEQUENCE_ORIGINS and isinstance(value, list):
        item = args[0] if args else None
        return [reconstruct(v, item, where=f"{where}[{i}]") for i, v in enumerate(value)]
    if origin in _SET_ORIGINS and isinstance(value, (list, set, frozenset)):
        item = args[0] if args else None
        built = [reconstruct(v, item, where=f"{where}[{i}]") for i, v in enumerate(value)]
        return frozenset(built) if origin is frozenset else set(built)
    if origin in _MAPPING_ORIGINS and isinstance(value, dict):
        item = args[1] if len(args) == 2 else None
        return {k: reconstruct(v, item, where=f"{where}[{k!r}]") for k, v in value.items()}
    if origin is tuple and isinstance(value, list):
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(
                reconstruct(v, args[0], where=f"{where}[{i}]") for i, v in enumerate(value)
            )
        if args and len(args) != len(value):
            raise PayloadTypeError(
                f"{where}: expected {len(args)} items for {target!r}, got {len(value)}"
            )
        return tuple(
            reconstruct(v, t, where=f"{where}[{i}]")
            for i, (v, t) in enumerate(zip(value, args or [None] * len(value), strict=False))
        )
    return value


@functools.lru_cache(maxsize=512)
def _field_types(cls: type) -> dict[str, Any]:
    try:
        return typing.get_type_hints(cls)
    except Exception:  # noqa: BLE001 - unresolvable forward references: fields stay as decoded
        return {}


def _build_dataclass(value: Any, cls: type, where: str) -> Any:
    name = type_name(cls)
    if not isinstance(value, dict):
        raise PayloadTypeError(
            f"{where}: expected a JSON object for {name}, got {type(value).__name__}"
        )
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = [key for key in value if key not in fields]
    if unknown:
        raise PayloadTypeError(
            f"{where}: {name} has no field {unknown[0]!r} (fields: {', '.join(fields)})"
        )
    hints = _field_types(cls)
    kwargs: dict[str, Any] = {}
    for field in fields.values():
        if not field.init:
            continue  # derived by __init__/__post_init__, as when the value was made
        if field.name not in value:
            if (
                field.default is dataclasses.MISSING
                and field.default_factory is dataclasses.MISSING
            ):
                raise PayloadTypeError(
                    f"{where}: {name} requires field {field.name!r}, missing from the payload"
                )
            continue
        kwargs[field.name] = reconstruct(
            value[field.name], hints.get(field.name), where=f"{where}.{field.name}"
        )
    return cls(**kwargs)


def _validate_pydantic(value: Any, cls: type, where: str) -> Any:
    try:
        return cls.model_validate(value)  # type: ignore[attr-defined]
    except ValueError as exc:  # pydantic.ValidationError is a ValueError naming each field
        raise PayloadTypeError(f"{where}: invalid {type_name(cls)}: {exc}") from exc
