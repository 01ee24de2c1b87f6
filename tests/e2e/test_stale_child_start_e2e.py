"""A continued-as-new child is not re-run by its parent's re-sent start (in-memory backend).

The same scenario runs on Azurite in tests/azure/backend/test_e2e.py.
"""

from __future__ import annotations

import uuid

from stale_child_start import chained_child, count_run, parent_of_chain, resend_child_start

from durable_azstorage import AsyncTaskHubClient, TaskHubWorker


async def test_a_re_sent_start_does_not_re_run_a_continued_as_new_child(
    worker: TaskHubWorker, async_client: AsyncTaskHubClient
) -> None:
    for fn in (chained_child, parent_of_chain):
        worker.add_orchestrator(fn)
    worker.add_activity(count_run)
    worker.start()
    child_id = f"child-{uuid.uuid4().hex[:8]}"

    outcome = await resend_child_start(async_client, child_id, settle=1.0, timeout=10)

    outcome.assert_not_re_run()
