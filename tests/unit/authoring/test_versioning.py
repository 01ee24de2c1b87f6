"""``VersioningOptions.mismatch`` and version ordering (the portable SDK's rules)."""

from __future__ import annotations

import pytest

from durable_azstorage.authoring.versioning import (
    VERSION_MISMATCH_ERROR_TYPE,
    VersioningOptions,
    VersionMatchStrategy,
    compare_versions,
)


@pytest.mark.parametrize(
    ("left", "right", "order"),
    [
        ("1.10", "1.9", 1),
        ("1.9", "1.10", -1),
        ("1", "1.0", 0),
        ("v2", "2.0.0", 0),
        (None, "1.0", -1),
        ("", None, 0),
        ("1.0", None, 1),
        ("beta", "alpha", 1),  # not dotted numbers: compared as strings
        ("1.0-rc", "1.0", 1),
    ],
)
def test_compare_versions(left: str | None, right: str | None, order: int) -> None:
    assert compare_versions(left, right) == order


def test_none_strategy_runs_every_version() -> None:
    options = VersioningOptions(version="1.0")
    assert options.mismatch("9.9") is None
    assert options.mismatch(None) is None


def test_strict_names_both_versions_in_a_non_retriable_failure() -> None:
    details = VersioningOptions(version="2.0", match_strategy=VersionMatchStrategy.STRICT).mismatch(
        "1.0"
    )
    assert details is not None
    assert details.error_type == VERSION_MISMATCH_ERROR_TYPE
    assert details.is_non_retriable
    assert "'1.0'" in details.message and "'2.0'" in details.message
    assert (
        VersioningOptions(version="2.0", match_strategy=VersionMatchStrategy.STRICT).mismatch("2")
        is None
    )


def test_current_or_older_refuses_only_newer_versions() -> None:
    options = VersioningOptions(version="1.5", match_strategy=VersionMatchStrategy.CURRENT_OR_OLDER)
    assert options.mismatch("1.4") is None
    assert options.mismatch(None) is None
    details = options.mismatch("1.6")
    assert details is not None and "newer" in details.message
