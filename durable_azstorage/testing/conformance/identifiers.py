"""Instance ids: every backend refuses the same ids, and holds the longest ones it accepts.

The rules are ``model.identifiers``; on Azure they keep an id inside the 1 KiB table-key
limit after escaping and out of the blob names the engine reserves. The in-memory backend
has no such limits, and refuses the same ids so that a test on it cannot pass with an id
Azure Storage would reject.
"""

from __future__ import annotations

import pytest

from durable_azstorage.model.errors import InvalidIdentifierError
from durable_azstorage.model.identifiers import MAX_INSTANCE_ID_LENGTH
from durable_azstorage.model.status import OrchestrationStatus

from .builders import episode, event_message, start_message
from .harness import BackendHarness

BAD_IDS = [
    pytest.param("", "non-empty", id="empty"),
    pytest.param(".", "URL path segments", id="dot"),
    pytest.param("..", "URL path segments", id="dotdot"),
    pytest.param("$poison", "reserved", id="poison-store"),
    pytest.param("k" * (MAX_INSTANCE_ID_LENGTH + 1), "the limit is 256", id="too-long"),
]

# The worst cases the limit allows: every character escaped by the table-key escaping
# (one character -> two), and every character outside the BMP (two UTF-16 code units).
LONGEST_IDS = [
    pytest.param("/" * MAX_INSTANCE_ID_LENGTH, id="all-escaped"),
    pytest.param("?#\\\x01" * (MAX_INSTANCE_ID_LENGTH // 4), id="mixed-escaped"),
    pytest.param("\U0001f600" * MAX_INSTANCE_ID_LENGTH, id="astral"),
]


class IdentifierConformance:
    """Instance ids: every backend refuses the same ids, and holds the longest ones it accepts."""

    @pytest.mark.parametrize(("bad", "rule"), BAD_IDS)
    async def test_create_instance_refuses_an_invalid_id(
        self, harness: BackendHarness, bad: str, rule: str
    ) -> None:
        with pytest.raises(InvalidIdentifierError, match=rule):
            await harness.backend.create_instance(start_message(bad))

        assert await harness.backend.lock_next_orchestration(harness.empty_timeout) is None

    @pytest.mark.parametrize(("bad", "rule"), BAD_IDS)
    async def test_send_message_refuses_an_invalid_id(
        self, harness: BackendHarness, bad: str, rule: str
    ) -> None:
        with pytest.raises(InvalidIdentifierError, match=rule):
            await harness.backend.send_message(event_message(bad))

    @pytest.mark.parametrize("longest", LONGEST_IDS)
    async def test_the_longest_valid_ids_round_trip(
        self, harness: BackendHarness, longest: str
    ) -> None:
        big_output = '"' + "o" * 70_000 + '"'  # above the table-property limit: a payload blob
        assert await harness.backend.create_instance(start_message(longest, input='"in"'))

        item = await harness.lock_orchestration()
        assert item.instance_id == longest
        await harness.backend.complete_orchestration(
            item,
            episode(
                item, now=harness.now(), status=OrchestrationStatus.COMPLETED, output=big_output
            ),
        )

        state = await harness.backend.get_instance(longest)
        assert state is not None and state.instance_id == longest
        assert state.runtime_status is OrchestrationStatus.COMPLETED
        assert state.output == big_output
        assert len(await harness.backend.get_history(longest)) >= 3
