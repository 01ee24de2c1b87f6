"""The storage format: a versioned JSON codec for history events, messages and state.

Everything a backend persists or enqueues goes through here, so this module *is* the wire
format. Dataclasses become JSON objects keyed by their field names (``None`` fields are
omitted to keep queue messages and table rows small); a history event also carries its
``type`` (the DTFx EventType name). Datetimes are ISO 8601 UTC with microseconds
(``2026-01-02T03:04:05.000006Z``); naive datetimes are refused because their meaning would
depend on the machine that wrote them.

Top-level documents (messages, states, histories) carry ``"v": FORMAT_VERSION``; a reader
refuses versions it does not know instead of guessing. Decoding is strict: a missing,
unknown or mistyped field raises ``ValueError`` naming the field's path
(``event.failure_details.inner_failure.message``).
"""

from __future__ import annotations

import dataclasses
import enum
import json
import types
import typing
from collections.abc import Callable, Mapping, Sequence, Set
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, TypeVar, Union

from durable_azstorage.model.failure import FailureDetails
from durable_azstorage.model.history import EVENT_TYPES, HistoryEvent, event_type_name
from durable_azstorage.model.messages import TaskMessage
from durable_azstorage.model.state import InstanceState

FORMAT_VERSION = 1
"""Version written into every top-level document; bump it when the format changes."""

SUPPORTED_VERSIONS = frozenset({1})

_EVENTS_BY_NAME: dict[str, type[HistoryEvent]] = {event_type_name(t): t for t in EVENT_TYPES}
_T = TypeVar("_T")


@dataclass(frozen=True, slots=True, kw_only=True)
class MessageEnvelope:
    """A decoded queue message plus the envelope fields that are not part of ``TaskMessage``.

    ``sequence_number`` is the sender's per-episode counter (optional; backends use it to
    order or de-duplicate messages). ``answers`` is the queue id of the activity request a
    result answers (optional): the Azure backend finds by it the episode that already consumed
    that request's result (``azure.work_items.checkpoint``). ``row_etag`` is the ETag of the
    Instances row a client inserted with a start (optional): the first episode replaces that
    row without reading it first, unless it changed meanwhile. ``new_instance``: that row was
    a new one (not a restart), so the instance has no history to load on first delivery.
    """

    message: TaskMessage
    sequence_number: int | None = None
    answers: str | None = None
    row_etag: str | None = None
    new_instance: bool = False


# --- public API ---------------------------------------------------------------------------


def encode_event(event: HistoryEvent, *, path: str = "event") -> dict[str, Any]:
    """A JSON-ready dict for ``event`` (``type`` + fields); not versioned on its own."""
    if _EVENTS_BY_NAME.get(type(event).__name__) is not type(event):
        raise ValueError(f"{path}: cannot encode {type(event).__qualname__}, not a history event")
    return {"type": event_type_name(event), **_encode_dataclass(event, path)}


def decode_event(data: Mapping[str, Any], *, path: str = "event") -> HistoryEvent:
    """Inverse of ``encode_event``; raises ``ValueError`` naming the bad field."""
    _require_mapping(data, path)
    kind = data.get("type")
    if not isinstance(kind, str):
        raise ValueError(f"{path}.type: missing or not a string (got {kind!r})")
    cls = _EVENTS_BY_NAME.get(kind)
    if cls is None:
        known = ", ".join(sorted(_EVENTS_BY_NAME))
        raise ValueError(f"{path}.type: unknown history event type {kind!r}; known: {known}")
    fields = {k: v for k, v in data.items() if k != "type"}
    return _decode_dataclass(cls, fields, path)


def encode_failure(failure: FailureDetails) -> dict[str, Any]:
    """A JSON-ready dict for ``failure`` (inner failures nested)."""
    return _encode_dataclass(failure, "failure")


def decode_failure(data: Mapping[str, Any], *, path: str = "failure") -> FailureDetails:
    return _decode_dataclass(FailureDetails, data, path)


def encode_history(events: Sequence[HistoryEvent]) -> str:
    """A versioned JSON document holding ``events`` in order (golden files, exports)."""
    encoded = [encode_event(e, path=f"history.events[{i}]") for i, e in enumerate(events)]
    return _dumps({"v": FORMAT_VERSION, "events": encoded})


def decode_history(text: str | bytes) -> list[HistoryEvent]:
    doc = _load_document(text, "history")
    raw = doc.get("events")
    if not isinstance(raw, list):
        raise ValueError(f"history.events: expected a list, got {_kind(raw)}")
    _reject_unknown(doc, {"v", "events"}, "history")
    return [decode_event(item, path=f"history.events[{i}]") for i, item in enumerate(raw)]


DEFERRED_KEY = "deferred"
"""Top-level field of a queue text (message envelope or payload-blob reference): how many of
the message's deliveries were deferrals (given back by choice), so that any process's poison
check can discount them."""


def deferral_count(text: str) -> int:
    """The deferrals recorded in a queue text (0 when none or unreadable)."""
    if f'"{DEFERRED_KEY}"' not in text:
        return 0
    try:
        doc = json.loads(text)
    except ValueError:
        return 0
    count = doc.get(DEFERRED_KEY) if isinstance(doc, dict) else None
    return count if isinstance(count, int) and not isinstance(count, bool) and count > 0 else 0


def with_deferral(text: str) -> str:
    """``text`` with one more deferral recorded; an unreadable text is returned unchanged."""
    try:
        doc = json.loads(text)
    except ValueError:
        return text
    if not isinstance(doc, dict):
        return text
    doc[DEFERRED_KEY] = deferral_count(text) + 1
    return _dumps(doc)


def encode_message(
    message: TaskMessage,
    *,
    sequence_number: int | None = None,
    answers: str | None = None,
    row_etag: str | None = None,
    new_instance: bool = False,
) -> str:
    """The queue text for ``message``: a versioned JSON envelope."""
    body = _encode_dataclass(message, "message")
    if sequence_number is not None:
        body["sequence_number"] = sequence_number
    if answers is not None:
        body["answers"] = answers
    if row_etag is not None:
        body["row_etag"] = row_etag
    if new_instance:
        body["new_instance"] = True
    return _dumps({"v": FORMAT_VERSION, **body})


def decode_message(text: str | bytes) -> TaskMessage:
    """Inverse of ``encode_message``; raises ``ValueError`` naming the bad field."""
    return decode_message_envelope(text).message


def decode_message_envelope(text: str | bytes) -> MessageEnvelope:
    """Like ``decode_message`` but also returns the envelope-only fields."""
    doc = _load_document(text, "message")
    envelope_only = (
        "v",
        "sequence_number",
        "answers",
        "row_etag",
        "new_instance",
        "event",
        DEFERRED_KEY,
    )
    fields = {k: v for k, v in doc.items() if k not in envelope_only}
    if "event" not in doc:
        raise ValueError("message.event: missing required field")
    event = decode_event(doc["event"], path="message.event")
    _reject_unknown(fields, {"instance", "sender", "episode"}, "message")
    partial = {**fields, "event": None}
    seq = doc.get("sequence_number")
    if seq is not None and not _is_int(seq):
        raise ValueError(f"message.sequence_number: expected an integer, got {_kind(seq)}")
    answers = doc.get("answers")
    if answers is not None and not isinstance(answers, str):
        raise ValueError(f"message.answers: expected a string, got {_kind(answers)}")
    row_etag = doc.get("row_etag")
    if row_etag is not None and not isinstance(row_etag, str):
        raise ValueError(f"message.row_etag: expected a string, got {_kind(row_etag)}")
    new_instance = doc.get("new_instance", False)
    if not isinstance(new_instance, bool):
        raise ValueError(f"message.new_instance: expected a boolean, got {_kind(new_instance)}")
    message = _decode_dataclass(TaskMessage, partial, "message", overrides={"event": event})
    return MessageEnvelope(
        message=message,
        sequence_number=seq,
        answers=answers,
        row_etag=row_etag,
        new_instance=new_instance,
    )


def encode_state(state: InstanceState) -> str:
    """The versioned JSON text of an instance state."""
    return _dumps({"v": FORMAT_VERSION, **_encode_dataclass(state, "state")})


def decode_state(text: str | bytes) -> InstanceState:
    doc = _load_document(text, "state")
    return _decode_dataclass(InstanceState, {k: v for k, v in doc.items() if k != "v"}, "state")


def encode_datetime(value: datetime) -> str:
    """ISO 8601 UTC with microseconds and a ``Z`` suffix; refuses naive datetimes."""
    return _encode_datetime(value, "datetime")


def decode_datetime(text: str, *, path: str = "datetime") -> datetime:
    return _decode_datetime(text, path)


# --- documents ----------------------------------------------------------------------------


def _dumps(doc: dict[str, Any]) -> str:
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _load_document(text: str | bytes, path: str) -> dict[str, Any]:
    if not isinstance(text, (str, bytes, bytearray)):
        raise ValueError(f"{path}: expected JSON text, got {_kind(text)}")
    try:
        doc = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from exc
    _require_mapping(doc, path)
    version = doc.get("v")
    if version is None:
        raise ValueError(f"{path}.v: missing format version")
    if not _is_int(version) or version not in SUPPORTED_VERSIONS:
        supported = ", ".join(str(v) for v in sorted(SUPPORTED_VERSIONS))
        raise ValueError(
            f"{path}.v: unsupported format version {version!r} (this reader supports {supported}); "
            "was it written by a newer release?"
        )
    return typing.cast("dict[str, Any]", doc)


# --- dataclasses, driven by type hints ----------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Field:
    """How one dataclass field is coded, worked out once per class from its type hints."""

    name: str
    hint: Any  # without the ``| None``
    required: bool  # no default: absent is an error unless the hint allows None
    nullable: bool


_PLANS: dict[type, tuple[_Field, ...]] = {}


def _plan(cls: type) -> tuple[_Field, ...]:
    plan = _PLANS.get(cls)
    if plan is None:
        hints = typing.get_type_hints(cls)
        plan = tuple(
            _Field(
                name=f.name,
                hint=_strip_optional(hints[f.name]),
                required=f.default is dataclasses.MISSING
                and f.default_factory is dataclasses.MISSING,
                nullable=_is_optional(hints[f.name]),
            )
            for f in dataclasses.fields(cls)
        )
        _PLANS[cls] = plan
    return plan


def _encode_dataclass(obj: Any, path: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in _plan(type(obj)):
        value = getattr(obj, f.name)
        if value is None:
            continue
        hint = f.hint
        if hint is str and type(value) is str:
            out[f.name] = value  # fast path: most fields are text
        else:
            out[f.name] = _encode_value(value, hint, f"{path}.{f.name}")
    return out


def _encode_value(value: Any, hint: Any, path: str) -> Any:
    if hint is datetime:
        return _encode_datetime(value, path)
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        if not isinstance(value, hint):
            raise ValueError(f"{path}: expected {hint.__name__}, got {_kind(value)}")
        return value.value
    if hint is HistoryEvent:
        return encode_event(value, path=path)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        if not isinstance(value, hint):
            raise ValueError(f"{path}: expected {hint.__name__}, got {_kind(value)}")
        return _encode_dataclass(value, path)
    if typing.get_origin(hint) is dict and typing.get_args(hint)[1] is object:
        return _json_object(value, path)
    if typing.get_origin(hint) is dict:
        if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()
        ):
            raise ValueError(f"{path}: expected a dict of str to str, got {value!r}")
        return dict(value)
    if hint in (str, int, bool):
        if not isinstance(value, hint) or (hint is int and isinstance(value, bool)):
            raise ValueError(f"{path}: expected {hint.__name__}, got {_kind(value)}")
        return value
    raise ValueError(f"{path}: the codec cannot encode fields of type {hint!r}")


def _decode_dataclass(
    cls: type[_T],
    data: Mapping[str, Any],
    path: str,
    *,
    overrides: Mapping[str, Any] | None = None,
) -> _T:
    _require_mapping(data, path)
    plan = _plan(cls)
    if len(data) > len(plan) or any(k not in _names(cls) for k in data):
        _reject_unknown(data, _names(cls), path)
    kwargs: dict[str, Any] = {}
    for f in plan:
        if overrides and f.name in overrides:
            kwargs[f.name] = overrides[f.name]
            continue
        raw = data.get(f.name)
        if raw is None:
            if f.required:
                if not f.nullable:
                    raise ValueError(f"{path}.{f.name}: missing required field")
                kwargs[f.name] = None
            continue
        if f.hint is str and type(raw) is str:
            kwargs[f.name] = raw
        else:
            kwargs[f.name] = _decode_value(raw, f.hint, f"{path}.{f.name}")
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{path}: invalid {cls.__name__}: {exc}") from exc


_NAMES: dict[type, frozenset[str]] = {}


def _names(cls: type) -> frozenset[str]:
    names = _NAMES.get(cls)
    if names is None:
        names = _NAMES[cls] = frozenset(f.name for f in _plan(cls))
    return names


def _decode_value(raw: Any, hint: Any, path: str) -> Any:
    if hint is datetime:
        return _decode_datetime(raw, path)
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        try:
            return hint(raw)
        except ValueError:
            allowed = ", ".join(str(m.value) for m in hint)
            raise ValueError(
                f"{path}: unknown {hint.__name__} {raw!r}; expected one of: {allowed}"
            ) from None
    if hint is HistoryEvent:
        return decode_event(raw, path=path)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return _decode_dataclass(hint, raw, path)
    if typing.get_origin(hint) is dict and typing.get_args(hint)[1] is object:
        return _json_object(raw, path)
    if typing.get_origin(hint) is dict:
        if not isinstance(raw, dict) or not all(isinstance(v, str) for v in raw.values()):
            raise ValueError(f"{path}: expected an object of strings, got {_kind(raw)}")
        return dict(raw)
    checks: dict[Any, Callable[[Any], bool]] = {
        str: lambda v: isinstance(v, str),
        int: _is_int,
        bool: lambda v: isinstance(v, bool),
    }
    check = checks.get(hint)
    if check is None:
        raise ValueError(f"{path}: the codec cannot decode fields of type {hint!r}")
    if not check(raw):
        raise ValueError(f"{path}: expected {hint.__name__}, got {_kind(raw)}")
    return raw


def _json_object(value: Any, path: str) -> dict[str, Any]:
    """A dict of JSON values by name (``dict[str, object]`` fields), checked both ways."""
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise ValueError(f"{path}: expected an object with string keys, got {_kind(value)}")
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{path}: not JSON values: {exc}") from None
    return dict(value)


def _strip_optional(hint: Any) -> Any:
    if typing.get_origin(hint) in (Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return hint


def _is_optional(hint: Any) -> bool:
    return typing.get_origin(hint) in (Union, types.UnionType) and type(None) in typing.get_args(
        hint
    )


# --- scalars ------------------------------------------------------------------------------


def _encode_datetime(value: Any, path: str) -> str:
    if not isinstance(value, datetime):
        raise ValueError(f"{path}: expected a datetime, got {_kind(value)}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(
            f"{path}: naive datetime {value.isoformat()}; use a timezone-aware UTC one"
        )
    utc = value.astimezone(timezone.utc)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.%f") + "Z"


def _decode_datetime(raw: Any, path: str) -> datetime:
    if not isinstance(raw, str):
        raise ValueError(f"{path}: expected an ISO 8601 datetime string, got {_kind(raw)}")
    text = raw[:-1] + "+00:00" if raw.endswith(("Z", "z")) else raw
    try:
        value = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ValueError(f"{path}: not an ISO 8601 datetime: {raw!r}") from exc
    if value.tzinfo is None:
        raise ValueError(f"{path}: datetime {raw!r} has no UTC offset")
    return value.astimezone(timezone.utc)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _require_mapping(data: Any, path: str) -> None:
    if not isinstance(data, Mapping):
        raise ValueError(f"{path}: expected a JSON object, got {_kind(data)}")


def _reject_unknown(data: Mapping[str, Any], allowed: Set[str], path: str) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ValueError(f"{path}: unknown field(s) {', '.join(map(repr, unknown))}")


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return f"{type(value).__name__} {value!r}"[:120]


__all__ = [
    "DEFERRED_KEY",
    "FORMAT_VERSION",
    "deferral_count",
    "with_deferral",
    "SUPPORTED_VERSIONS",
    "MessageEnvelope",
    "decode_datetime",
    "decode_event",
    "decode_failure",
    "decode_history",
    "decode_message",
    "decode_message_envelope",
    "decode_state",
    "encode_datetime",
    "encode_event",
    "encode_failure",
    "encode_history",
    "encode_message",
    "encode_state",
]
