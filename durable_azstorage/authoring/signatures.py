"""What an orchestrator's or activity's signature says about its payload types.

The annotation of the input parameter (the second positional one, after the context) tells
the engine to rebuild the decoded input as that type, and an activity's return annotation
does the same for its result in the calling orchestrator, as the portable SDK does. Only
annotations that ``can_reconstruct`` accepts count (dataclasses, pydantic models, enums,
``from_json`` types and containers of them); builtins, ``Any`` and unknown classes mean
"hand over the value as decoded", so untyped code behaves exactly as before.
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable
from typing import Any, NamedTuple

from durable_azstorage.serialization.reconstruction import can_reconstruct

_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


class _Signature(NamedTuple):
    input: Any
    result: Any


def input_type(fn: Callable[..., Any]) -> Any:
    """The reconstructable annotation of ``fn(ctx, input)``'s input, else ``None``."""
    return _signature(fn).input


def result_type(fn: Callable[..., Any] | str) -> Any:
    """The reconstructable return annotation of ``fn``, else ``None`` (also for a name)."""
    if isinstance(fn, str) or not callable(fn):
        return None
    return _signature(fn).result


def _signature(fn: Callable[..., Any]) -> _Signature:
    try:
        return _cached(fn)
    except TypeError:  # an unhashable callable object: inspect it every time
        return _inspect(fn)


@functools.lru_cache(maxsize=1024)
def _cached(fn: Callable[..., Any]) -> _Signature:
    return _inspect(fn)


def _inspect(fn: Callable[..., Any]) -> _Signature:
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return _Signature(None, None)
    hints = _hints(fn)
    params = [p for p in signature.parameters.values() if p.kind in _POSITIONAL]
    declared = hints.get(params[1].name) if len(params) > 1 else None
    result = hints.get("return")
    return _Signature(
        declared if declared is not None and can_reconstruct(declared) else None,
        result if result is not None and can_reconstruct(result) else None,
    )


def _hints(fn: Callable[..., Any]) -> dict[str, Any]:
    """Resolved annotations (postponed ones too); a callable object's come from ``__call__``."""
    target: Any = fn if inspect.isroutine(fn) else getattr(fn, "__call__", fn)  # noqa: B004 - the method, not a callable test
    try:
        return typing.get_type_hints(target)
    except Exception:  # noqa: BLE001 - unresolvable annotations: treat as unannotated
        return {}
