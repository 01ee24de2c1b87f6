"""Payload conversion: user values <-> the text stored in history events and messages.

Orchestration inputs, outputs, activity results, event data and custom status cross the
durable boundary as text. A ``DataConverter`` decides how; ``JsonDataConverter`` (the
default) writes plain JSON so other Durable Task SDKs and humans can read payloads.

Encoding is deterministic (the same value always produces the same text), which replay
relies on: sets are written sorted, dict order is kept as inserted. Values JSON cannot
express natively are written as a tagged object ``{"__durable_type__": tag, "value": ...}``
and decoded back to the same Python type (datetime, date, time, timedelta, UUID, Decimal,
set, frozenset, bytes). Dataclasses, pydantic models and enums are written as their fields /
value (a type's own ``to_json`` hook, as in the portable SDK, wins); they come back as ``dict``
/ the plain value unless the caller names a target type (``deserialize(data, T)``, see
``serialization.reconstruction``). No class is ever looked up by a name found in a payload,
so a payload cannot make the worker instantiate arbitrary types. Tuples become lists, as
in every JSON library. A user dict of exactly the two keys ``__durable_type__`` (with a known
tag) and ``value`` is therefore reserved: it decodes to the tagged type.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import decimal
import enum
import json
import sys
import threading
import uuid
from typing import Any, Protocol, runtime_checkable

from durable_azstorage.serialization.reconstruction import reconstruct

TYPE_KEY = "__durable_type__"
_VALUE_KEY = "value"


@runtime_checkable
class DataConverter(Protocol):
    """Turns payload values into text and back. ``None`` always maps to ``None``."""

    def serialize(self, value: Any) -> str | None:
        """Encode ``value``; raise ``TypeError`` naming the type when it cannot be encoded."""
        ...

    def deserialize(self, data: str | None, target_type: Any = None) -> Any:
        """Decode text produced by ``serialize`` (``None`` -> ``None``).

        With ``target_type`` the value is rebuilt as that type (dataclass, pydantic model, ...)
        or ``PayloadTypeError`` says why it cannot be. The engine passes ``target_type`` only
        when the code asked for one, so a converter written before typed payloads still works
        for untyped calls.
        """
        ...


def deserialize_as(converter: DataConverter, data: str | None, target_type: Any) -> Any:
    """``converter.deserialize`` with a target type only when there is one (see the Protocol)."""
    if target_type is None:
        return converter.deserialize(data)
    return converter.deserialize(data, target_type)


def _type_name(value: object) -> str:
    t = type(value)
    return f"{t.__module__}.{t.__qualname__}"


def _encode_tagged(tag: str, payload: Any) -> dict[str, Any]:
    return {TYPE_KEY: tag, _VALUE_KEY: payload}


def _sort_key(item: Any) -> str:
    return json.dumps(item, sort_keys=True, default=_default)


def _default(value: Any) -> Any:
    """json ``default`` hook: maps non-JSON types to JSON-able values (deterministically)."""
    # datetime must be tested before date (it is a subclass)
    if isinstance(value, dt.datetime):
        return _encode_tagged("datetime", value.isoformat())
    if isinstance(value, dt.date):
        return _encode_tagged("date", value.isoformat())
    if isinstance(value, dt.time):
        return _encode_tagged("time", value.isoformat())
    if isinstance(value, dt.timedelta):
        return _encode_tagged("timedelta", [value.days, value.seconds, value.microseconds])
    if isinstance(value, uuid.UUID):
        return _encode_tagged("uuid", str(value))
    if isinstance(value, decimal.Decimal):
        return _encode_tagged("decimal", str(value))
    if isinstance(value, (bytes, bytearray)):
        return _encode_tagged("bytes", base64.b64encode(bytes(value)).decode("ascii"))
    if isinstance(value, (set, frozenset)):
        tag = "frozenset" if isinstance(value, frozenset) else "set"
        items = [json.loads(json.dumps(v, default=_default)) for v in value]
        return _encode_tagged(tag, sorted(items, key=_sort_key))
    to_json = getattr(type(value), "to_json", None)
    if callable(to_json):
        return to_json(value)
    if isinstance(value, enum.Enum):
        return value.value
    pydantic = sys.modules.get("pydantic")
    if pydantic is not None and isinstance(value, pydantic.BaseModel):
        return value.model_dump(mode="json")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    raise TypeError(
        f"cannot serialize a value of type {_type_name(value)} to JSON; use JSON types, "
        "dataclasses, pydantic models, enums, datetime/date/time/timedelta, UUID, Decimal, bytes or sets, "
        "or pass a custom DataConverter"
    )


_DECODERS: dict[str, Any] = {
    "datetime": dt.datetime.fromisoformat,
    "date": dt.date.fromisoformat,
    "time": dt.time.fromisoformat,
    "timedelta": lambda v: dt.timedelta(days=v[0], seconds=v[1], microseconds=v[2]),
    "uuid": uuid.UUID,
    "decimal": decimal.Decimal,
    "bytes": lambda v: base64.b64decode(v.encode("ascii")),
    "set": set,
    "frozenset": frozenset,
}


def _object_hook(obj: dict[str, Any]) -> Any:
    tag = obj.get(TYPE_KEY)
    if tag is None or len(obj) != 2 or _VALUE_KEY not in obj:
        return obj
    decoder = _DECODERS.get(tag)
    if decoder is None:
        return obj
    return decoder(obj[_VALUE_KEY])


_ENCODER = json.JSONEncoder(default=_default, separators=(",", ":"), ensure_ascii=False)
_local = threading.local()


def _decoder() -> json.JSONDecoder:
    """One decoder per thread: building one per call costs more than the decoding itself,
    and the C scanner's key memo must not be shared by threads running ``object_hook``."""
    decoder: json.JSONDecoder | None = getattr(_local, "decoder", None)
    if decoder is None:
        decoder = _local.decoder = json.JSONDecoder(object_hook=_object_hook)
    return decoder


class JsonDataConverter:
    """The default converter: compact JSON with tagged extras (see the module docstring)."""

    def serialize(self, value: Any) -> str | None:
        if value is None:
            return None
        try:
            return _ENCODER.encode(value)
        except TypeError as exc:
            if str(exc).startswith("cannot serialize"):
                raise TypeError(str(exc)) from None
            raise TypeError(
                f"cannot serialize a value of type {_type_name(value)} to JSON: {exc}"
            ) from exc
        except ValueError as exc:  # circular references
            raise TypeError(
                f"cannot serialize a value of type {_type_name(value)} to JSON: {exc}"
            ) from exc

    def deserialize(self, data: str | None, target_type: Any = None) -> Any:
        if data is None:
            return None
        value = _decoder().decode(data)
        return value if target_type is None else reconstruct(value, target_type)
