"""Client-side operations: create with reuse policies, get, query and paging, purge."""

from __future__ import annotations

from datetime import timedelta

import pytest

from durable_azstorage.backend.protocol import OrchestrationWorkItem
from durable_azstorage.model.errors import OrchestrationAlreadyExistsError
from durable_azstorage.model.query import OrchestrationQuery
from durable_azstorage.model.state import CreateOrchestrationAction, OrchestrationIdReusePolicy
from durable_azstorage.model.status import OrchestrationStatus

from .builders import episode, event_message, execution_id_of, start_message
from .harness import BackendHarness

S = OrchestrationStatus


async def _run_to(harness: BackendHarness, instance_id: str, status: OrchestrationStatus) -> None:
    """Create ``instance_id`` and commit one episode leaving it in ``status``."""
    await harness.backend.create_instance(start_message(instance_id, input=f'"{instance_id}"'))
    item = await _lock(harness, instance_id)
    await harness.backend.complete_orchestration(
        item, episode(item, now=harness.now(), status=status, output=f'"out-{instance_id}"')
    )


async def _lock(harness: BackendHarness, instance_id: str) -> OrchestrationWorkItem:
    item = await harness.lock_orchestration()
    assert item.instance_id == instance_id
    return item


class InstanceConformance:
    """Client-side operations: create with reuse policies, get, query and paging, purge."""

    async def test_create_records_a_pending_instance(self, harness: BackendHarness) -> None:
        start = start_message("new-1", tags={"team": "billing"})
        assert await harness.backend.create_instance(start)

        state = await harness.backend.get_instance("new-1")

        assert state is not None
        assert state.runtime_status is S.PENDING
        assert state.name == "Greeter"
        assert state.input == '"world"'
        assert state.execution_id == start.instance.execution_id
        assert state.tags == {"team": "billing"}
        assert await harness.backend.get_history("new-1") == []

    async def test_unknown_instance_has_no_state_and_no_history(
        self, harness: BackendHarness
    ) -> None:
        assert await harness.backend.get_instance("nobody") is None
        assert await harness.backend.get_history("nobody") == []

    async def test_get_instance_without_payloads_drops_input_and_output(
        self,
        harness: BackendHarness,
    ) -> None:
        await _run_to(harness, "payloads-1", S.COMPLETED)

        full = await harness.backend.get_instance("payloads-1")
        lean = await harness.backend.get_instance("payloads-1", fetch_payloads=False)

        assert (
            full is not None and full.input == '"payloads-1"' and full.output == '"out-payloads-1"'
        )
        assert lean is not None and lean.input is None and lean.output is None
        assert lean.runtime_status is S.COMPLETED

    @pytest.mark.parametrize("status", [S.PENDING, S.RUNNING])
    async def test_default_policy_refuses_a_live_instance(
        self, harness: BackendHarness, status: OrchestrationStatus
    ) -> None:
        if status is S.PENDING:
            await harness.backend.create_instance(start_message("live-1"))
        else:
            await _run_to(harness, "live-1", status)

        with pytest.raises(OrchestrationAlreadyExistsError, match="live-1"):
            await harness.backend.create_instance(start_message("live-1"))

    @pytest.mark.parametrize("status", [S.COMPLETED, S.FAILED, S.TERMINATED])
    async def test_default_policy_replaces_an_ended_instance(
        self, harness: BackendHarness, status: OrchestrationStatus
    ) -> None:
        await _run_to(harness, "ended-1", status)
        again = start_message("ended-1", input='"again"')

        assert await harness.backend.create_instance(again)

        state = await harness.backend.get_instance("ended-1")
        assert state is not None and state.runtime_status is S.PENDING
        assert state.execution_id == again.instance.execution_id and state.input == '"again"'
        assert await harness.backend.get_history("ended-1") == []
        item = await _lock(harness, "ended-1")
        assert item.history == ()
        assert again in item.messages

    async def test_ignore_policy_leaves_the_instance_alone(self, harness: BackendHarness) -> None:
        first = start_message("ignore-1")
        await harness.backend.create_instance(first)
        policy = OrchestrationIdReusePolicy(action=CreateOrchestrationAction.IGNORE)

        assert (
            await harness.backend.create_instance(start_message("ignore-1"), reuse_policy=policy)
            is False
        )

        state = await harness.backend.get_instance("ignore-1")
        assert state is not None and state.execution_id == first.instance.execution_id
        item = await _lock(harness, "ignore-1")
        assert item.messages == (first,)

    async def test_error_policy_refuses_matching_statuses(self, harness: BackendHarness) -> None:
        await _run_to(harness, "err-1", S.COMPLETED)
        policy = OrchestrationIdReusePolicy(
            operation_statuses=frozenset({S.COMPLETED}), action=CreateOrchestrationAction.ERROR
        )

        with pytest.raises(OrchestrationAlreadyExistsError):
            await harness.backend.create_instance(start_message("err-1"), reuse_policy=policy)

    async def test_policy_replaces_statuses_it_does_not_name(self, harness: BackendHarness) -> None:
        await _run_to(harness, "other-1", S.FAILED)
        policy = OrchestrationIdReusePolicy(
            operation_statuses=frozenset({S.COMPLETED}), action=CreateOrchestrationAction.ERROR
        )

        assert await harness.backend.create_instance(start_message("other-1"), reuse_policy=policy)
        state = await harness.backend.get_instance("other-1")
        assert state is not None and state.runtime_status is S.PENDING

    async def test_terminate_policy_replaces_a_running_instance(
        self, harness: BackendHarness
    ) -> None:
        await _run_to(harness, "term-1", S.RUNNING)
        policy = OrchestrationIdReusePolicy(action=CreateOrchestrationAction.TERMINATE)
        fresh = start_message("term-1", input='"fresh"')

        assert await harness.backend.create_instance(fresh, reuse_policy=policy)

        state = await harness.backend.get_instance("term-1")
        assert state is not None and state.execution_id == fresh.instance.execution_id
        item = await _lock(harness, "term-1")
        assert item.history == ()
        assert execution_id_of(item) == fresh.instance.execution_id

    async def test_event_to_an_unknown_instance_is_never_delivered(
        self, harness: BackendHarness
    ) -> None:
        await harness.backend.send_message(event_message("ghost-1"))

        assert await harness.no_orchestration()
        await harness.expire_locks()
        assert await harness.no_orchestration()
        assert await harness.backend.get_instance("ghost-1") is None

    async def test_purge_deletes_history_and_state_and_is_idempotent(
        self, harness: BackendHarness
    ) -> None:
        await _run_to(harness, "purge-1", S.COMPLETED)
        await _run_to(harness, "keep-1", S.COMPLETED)

        assert await harness.backend.purge_instance("purge-1") is True

        assert await harness.backend.get_instance("purge-1") is None
        assert await harness.backend.get_history("purge-1") == []
        assert await harness.backend.purge_instance("purge-1") is False
        assert await harness.backend.get_instance("keep-1") is not None
        page = await harness.backend.query_instances(
            OrchestrationQuery(instance_id_prefix="purge-")
        )
        assert page.items == []

    async def test_purged_id_can_be_scheduled_again(self, harness: BackendHarness) -> None:
        await _run_to(harness, "reborn-1", S.COMPLETED)
        await harness.backend.purge_instance("reborn-1")

        assert await harness.backend.create_instance(start_message("reborn-1"))
        item = await _lock(harness, "reborn-1")
        assert item.history == ()

    async def test_query_pages_visit_every_instance_exactly_once(
        self, harness: BackendHarness
    ) -> None:
        ids = {f"page-{i:03d}" for i in range(250)}
        for instance_id in sorted(ids):
            await harness.backend.create_instance(start_message(instance_id))

        seen: list[str] = []
        token: str | None = None
        pages = 0
        while True:
            page = await harness.backend.query_instances(
                OrchestrationQuery(page_size=100, continuation_token=token)
            )
            pages += 1
            assert len(page.items) <= 100
            seen += [s.instance_id for s in page.items]
            token = page.continuation_token
            if token is None:
                break
            assert pages < 10, "paging does not terminate"

        assert sorted(seen) == sorted(ids)
        assert len(seen) == len(set(seen))
        assert pages >= 3

    async def test_query_filters_by_status_prefix_and_created_time(
        self, harness: BackendHarness
    ) -> None:
        await _run_to(harness, "q-run", S.RUNNING)
        await _run_to(harness, "q-done", S.COMPLETED)
        await _run_to(harness, "q-fail", S.FAILED)
        await harness.advance(timedelta(seconds=2))
        middle = harness.now()
        await harness.advance(timedelta(seconds=2))
        await harness.backend.create_instance(start_message("q-pend"))
        await harness.backend.create_instance(start_message("other-pend"))

        async def ids(**filters: object) -> set[str]:
            page = await harness.backend.query_instances(OrchestrationQuery(**filters))  # type: ignore[arg-type]
            return {s.instance_id for s in page.items}

        assert await ids(instance_id_prefix="q-") == {"q-run", "q-done", "q-fail", "q-pend"}
        assert await ids(runtime_status=(S.COMPLETED, S.FAILED)) == {"q-done", "q-fail"}
        assert await ids(runtime_status=(S.PENDING,), instance_id_prefix="q-") == {"q-pend"}
        assert await ids(created_time_to=middle) == {"q-run", "q-done", "q-fail"}
        assert await ids(created_time_from=middle) == {"q-pend", "other-pend"}
        assert await ids(created_time_from=middle, instance_id_prefix="q") == {"q-pend"}

    async def test_query_returns_payloads_only_when_asked(self, harness: BackendHarness) -> None:
        await _run_to(harness, "qp-1", S.COMPLETED)

        lean = await harness.backend.query_instances(OrchestrationQuery(instance_id_prefix="qp-"))
        full = await harness.backend.query_instances(
            OrchestrationQuery(instance_id_prefix="qp-", fetch_inputs_and_outputs=True)
        )

        assert [(s.input, s.output) for s in lean.items] == [(None, None)]
        assert [(s.input, s.output) for s in full.items] == [('"qp-1"', '"out-qp-1"')]
        assert lean.items[0].runtime_status is S.COMPLETED
