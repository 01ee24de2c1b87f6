"""The id and name rules every backend applies (``model.identifiers``)."""

from __future__ import annotations

import pytest

from durable_azstorage.model.errors import InvalidIdentifierError
from durable_azstorage.model.identifiers import (
    MAX_INSTANCE_ID_LENGTH,
    MAX_NAME_LENGTH,
    validate_instance_id,
    validate_name,
)


@pytest.mark.parametrize(
    ("bad", "rule"),
    [
        ("", "non-empty"),
        (".", "URL path segments"),
        ("..", "URL path segments"),
        ("$poison", "reserved"),
        ("$anything", "reserved"),
        ("x" * (MAX_INSTANCE_ID_LENGTH + 1), "the limit is 256"),
        ("a\ud800b", "UTF-8"),
        (42, "must be a string"),
    ],
)
def test_bad_instance_ids_are_refused_naming_the_rule(bad: object, rule: str) -> None:
    with pytest.raises(InvalidIdentifierError, match=rule):
        validate_instance_id(bad)


def test_the_error_is_a_value_error_that_names_the_id_but_quotes_only_its_start() -> None:
    long_id = "order-" + "9" * 1000
    with pytest.raises(ValueError) as caught:
        validate_instance_id(long_id, what="sub-orchestration instance id")
    message = str(caught.value)
    assert message.startswith("sub-orchestration instance id 'order-999")
    assert "1006 characters long" in message
    assert len(message) < 300, "the offending value must be truncated"


@pytest.mark.parametrize(
    "good",
    ["a", "...", "a.b", "x$", "/" * MAX_INSTANCE_ID_LENGTH, "\U0001f600" * MAX_INSTANCE_ID_LENGTH],
)
def test_ids_within_the_rules_are_returned(good: str) -> None:
    assert validate_instance_id(good) == good


def test_names_over_the_column_limit_are_refused() -> None:
    assert validate_name("n" * MAX_NAME_LENGTH, what="activity name") == "n" * MAX_NAME_LENGTH
    with pytest.raises(
        InvalidIdentifierError, match=r"activity name 'nnn.*16385 characters.*64 KiB"
    ):
        validate_name("n" * (MAX_NAME_LENGTH + 1), what="activity name")
    with pytest.raises(InvalidIdentifierError, match="event name .* UTF-8"):
        validate_name("\udfff", what="event name")
