"""Renamed arguments: the earlier name keeps working for one release, with a warning.

The portable SDK's names are the public ones (API.md); arguments that this package spelled
differently before are accepted under the old name too, so upgrading breaks nothing, and a
``DeprecationWarning`` names the replacement.
"""

from __future__ import annotations

import warnings
from typing import TypeVar

T = TypeVar("T")


def renamed_argument(
    method: str, old: str, new: str, old_value: T | None, new_value: T | None
) -> T | None:
    """The value given under ``new`` or, with a warning, under ``old`` (both is an error)."""
    if old_value is None:
        return new_value
    if new_value is not None:
        raise TypeError(
            f"{method}() got both {old}= and {new}=; pass only {new}= ({old}= is deprecated)"
        )
    warnings.warn(
        f"{method}({old}=...) is deprecated; use {new}=", DeprecationWarning, stacklevel=3
    )
    return old_value
