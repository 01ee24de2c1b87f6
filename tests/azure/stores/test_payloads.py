"""PayloadStore and the offload thresholds against real Azurite."""

from __future__ import annotations

import gzip
import re

import pytest
from stores_support import Stores

from durable_azstorage.azure.storage.payloads import (
    PayloadNotFoundError,
    history_blob_name,
    instance_blob_name,
    instance_of_blob,
    message_blob_name,
    needs_message_offload,
    needs_property_offload,
)


def test_thresholds_measure_the_right_encoding() -> None:
    assert not needs_message_offload("a" * 45 * 1024)
    assert needs_message_offload("a" * (45 * 1024 + 1))
    assert needs_message_offload("é" * (23 * 1024))  # 46 KiB as UTF-8
    assert not needs_property_offload("a" * 30 * 1024)  # 60 KiB as UTF-16
    assert needs_property_offload("a" * (30 * 1024 + 1))
    assert needs_property_offload("😀" * (15 * 1024 + 1))  # surrogate pairs: 4 bytes each
    assert not needs_property_offload("😀" * (15 * 1024))


def test_blob_names_follow_the_dtfx_scheme() -> None:
    assert message_blob_name("a/b", "TaskScheduled").startswith("a^0b/message-")
    assert message_blob_name("a/b", "TaskScheduled").endswith("-TaskScheduled.json.gz")
    name = history_blob_name("x", "000000000000000A", "TaskCompleted", "Result")
    assert re.fullmatch(
        r"x/history-000000000000000A-TaskCompleted-[0-9A-F]{8}-Result\.json\.gz", name
    )
    assert instance_blob_name("x", "Output").startswith("x/instance-")
    assert instance_blob_name("x", "Output") != instance_blob_name("x", "Output")


async def test_put_get_delete_prefix(stores: Stores) -> None:
    text = "ü" * (5 * 1024 * 1024)
    name = await stores.payloads.put("i1/message-1-ExecutionStarted.json.gz", text)
    await stores.payloads.put("i1/history-x.json.gz", "small")
    await stores.payloads.put("i10/history-y.json.gz", "other instance")
    assert await stores.payloads.get(name) == text
    raw = await (
        await stores.clients.container(stores.names.large_messages_container).download_blob(name)
    ).readall()
    assert gzip.decompress(raw).decode("utf-8") == text and len(raw) < len(text)

    assert await stores.payloads.delete_prefix("i1/") == 2
    assert await stores.blob_names() == ["i10/history-y.json.gz"]
    with pytest.raises(PayloadNotFoundError, match="i1/message-1"):
        await stores.payloads.get(name)
    with pytest.raises(ValueError, match="prefix"):
        await stores.payloads.delete_prefix("")


@pytest.mark.parametrize("instance_id", ["plain", "a/b#c?d\\e", "x^y", "tab\there"])
def test_a_payload_blob_names_its_instance(instance_id: str) -> None:
    assert instance_of_blob(message_blob_name(instance_id, "EventRaised")) == instance_id


@pytest.mark.parametrize("name", ["no-folder.json.gz", "/leading-slash", "bad^Zescape/x"])
def test_a_name_outside_any_instance_folder_names_none(name: str) -> None:
    assert instance_of_blob(name) is None
