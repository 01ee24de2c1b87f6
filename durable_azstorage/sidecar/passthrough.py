"""``PassThroughConverter``: payloads from the SDKs arrive already serialized.

The portable SDKs serialize inputs, outputs and event data themselves (JSON text in a
``StringValue``). The sidecar's client must store that text exactly as received, so its
``DataConverter`` hands text through instead of encoding it a second time.
"""

from __future__ import annotations

from typing import Any


class PassThroughConverter:
    """A ``DataConverter`` for text that is already serialized: stored and returned as is."""

    def serialize(self, value: Any) -> str | None:
        if value is None or isinstance(value, str):
            return value
        raise TypeError(
            f"the sidecar stores payloads as the SDK serialized them (text); got {type(value).__name__}"
        )

    def deserialize(self, data: str | None, target_type: Any = None) -> Any:
        return data
