"""``AzureStorageSettings.from_connection_string``: the Azure SDKs' constructor name."""

from __future__ import annotations

from datetime import timedelta

import pytest

from durable_azstorage import AzureStorageSettings

CONN = "UseDevelopmentStorage=true"


def test_from_connection_string_with_task_hub_and_overrides() -> None:
    settings = AzureStorageSettings.from_connection_string(
        CONN, task_hub="orders", max_poll_interval=timedelta(seconds=2)
    )
    assert settings == AzureStorageSettings(
        connection_string=CONN, task_hub="orders", max_poll_interval=timedelta(seconds=2)
    )
    assert AzureStorageSettings.from_connection_string(CONN).task_hub == "default"


@pytest.mark.parametrize("bad", ["", "   "])
def test_an_empty_connection_string_is_refused_by_name(bad: str) -> None:
    with pytest.raises(ValueError, match="connection_string: must be a non-empty"):
        AzureStorageSettings.from_connection_string(bad, task_hub="orders")


def test_the_task_hub_rule_still_applies() -> None:
    with pytest.raises(ValueError, match="task_hub"):
        AzureStorageSettings.from_connection_string(CONN, task_hub="1bad")
