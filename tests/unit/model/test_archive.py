"""How many earlier executions are kept, and the setting's rule on both backends."""

from __future__ import annotations

import pytest

from durable_azstorage import AzureStorageSettings, InMemoryBackend
from durable_azstorage.model.archive import retained


def test_the_newest_are_kept_and_only_stored_ones_are_deleted() -> None:
    # three ended in one episode, room for two: the oldest is never stored, so never deleted
    assert retained((), ["a", "b", "c"], 2) == (("c", "b"), ())
    # one more ends: the oldest stored one drops out
    assert retained(("c", "b"), ["d"], 2) == (("d", "c"), ("b",))
    # archiving turned off: what was kept is deleted
    assert retained(("c", "b"), ["d"], 0) == ((), ("c", "b"))
    # the same execution archived again (a re-run episode) is kept once
    assert retained(("c", "b"), ["c"], 2) == (("c", "b"), ())


@pytest.mark.parametrize("bad", [-1, 501, 1.5, True, "3"])
def test_the_setting_is_a_non_negative_integer_on_both_backends(bad: object) -> None:
    with pytest.raises(ValueError, match="archived_executions"):
        InMemoryBackend(archived_executions=bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="archived_executions"):
        AzureStorageSettings(
            connection_string="UseDevelopmentStorage=true",
            archived_executions=bad,  # type: ignore[arg-type]
        )
