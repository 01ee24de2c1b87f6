"""Bulk and repair operations behind the client: purge by filter, counts, restart, rewind.

They use only the ``Backend`` protocol, so they work the same on every backend.

* **Purge by filter** accepts terminal statuses only (Completed, Failed, Terminated): the
  .NET provider silently purges running instances, which destroys work in flight. Pages of
  ``PURGE_PAGE_SIZE`` are purged with at most ``concurrency`` deletions in flight. Each
  matching instance is purged by ``purge_one``: alone by default (its sub-orchestrations
  match the filter on their own or are kept), with its ended sub-orchestrations when the
  caller asks for ``recursive``. A ``timeout`` stops between deletions and returns
  ``is_complete=False``; calling again resumes, since purged instances no longer match.
* **Counts** follow every page of a payload-free query (one table scan on Azure).
* **Restart** re-creates an ended instance from its name, version, tags and input.
* **Rewind** see ``client.rewind`` for the history it writes and why replay stays deterministic;
  here the tree is read and checked first, then orphans purged and histories written.
* **Stale index** tooling is a capability of backends that keep an index apart from the
  history (``backend.protocol.IndexRepair``; Azure). The in-memory backend writes both at
  once and has none.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timezone

from durable_azstorage.backend.protocol import Backend, IndexRepair
from durable_azstorage.client.rewind import (
    ChildView,
    Settlement,
    plan_rewind,
    rewind_data,
    settle_children,
)
from durable_azstorage.model.errors import (
    InvalidOperationError,
    OrchestrationNotFoundError,
)
from durable_azstorage.model.history import (
    ExecutionStarted,
    GenericEvent,
    HistoryEvent,
    OrchestrationInstance,
    SubOrchestrationInstanceCreated,
)
from durable_azstorage.model.messages import TaskMessage
from durable_azstorage.model.query import OrchestrationQuery, PurgeInstancesResult
from durable_azstorage.model.state import InstanceState
from durable_azstorage.model.status import OrchestrationStatus

PURGE_PAGE_SIZE = 100
COUNT_PAGE_SIZE = 1000
PURGEABLE = (
    OrchestrationStatus.COMPLETED,
    OrchestrationStatus.FAILED,
    OrchestrationStatus.TERMINATED,
)
Progress = Callable[[int], None]
"""``progress(deleted_so_far)``, called after each purged instance."""


def index_repair(backend: Backend) -> IndexRepair:
    """The backend as ``IndexRepair``, or ``InvalidOperationError`` naming the backend."""
    if not isinstance(backend, IndexRepair):
        raise InvalidOperationError(
            f"{type(backend).__name__} keeps no instance index apart from the history, so "
            "it cannot have stale instances"
        )
    return backend


def purge_statuses(
    runtime_status: tuple[OrchestrationStatus | str, ...] | list[OrchestrationStatus | str] | None,
) -> tuple[OrchestrationStatus, ...]:
    """The statuses to purge, or ``ValueError`` naming the rule when one is not purgeable."""
    if not runtime_status:
        raise ValueError(
            "purge by filter needs runtime_status: one or more of "
            f"{', '.join(s.value for s in PURGEABLE)} (running instances are never purged)"
        )
    statuses = tuple(OrchestrationStatus.parse(s) for s in runtime_status)
    refused = [s.value for s in statuses if s not in PURGEABLE]
    if refused:
        raise ValueError(
            f"cannot purge instances that are {', '.join(refused)}: purge by filter accepts "
            f"only ended statuses ({', '.join(s.value for s in PURGEABLE)}); terminate "
            "running instances first"
        )
    return tuple(dict.fromkeys(statuses))


PurgeOne = Callable[[str], Awaitable[int]]
"""``purge_one(instance_id) -> deleted``: purges one matching instance (and maybe its children)."""


async def purge_by(
    backend: Backend,
    purge_one: PurgeOne,
    *,
    created_from: datetime | None,
    created_to: datetime | None,
    runtime_status: tuple[OrchestrationStatus, ...],
    timeout: float | None,
    concurrency: int = 8,
    progress: Progress | None = None,
) -> PurgeInstancesResult:
    """Purge every ended instance matching the filter (see the module docstring)."""
    if concurrency < 1:
        raise ValueError(f"concurrency must be at least 1, got {concurrency}")
    loop = asyncio.get_running_loop()
    deadline = None if timeout is None else loop.time() + timeout
    query = OrchestrationQuery(
        created_time_from=created_from,
        created_time_to=created_to,
        runtime_status=runtime_status,
        page_size=PURGE_PAGE_SIZE,
    )
    gate = asyncio.Semaphore(concurrency)
    deleted = 0
    out_of_time = False

    async def purge(state: InstanceState) -> None:
        nonlocal deleted, out_of_time
        async with gate:
            if deadline is not None and loop.time() >= deadline:
                out_of_time = True
                return
            count = await purge_one(state.instance_id)
            if count:
                deleted += count
                if progress is not None:
                    progress(deleted)

    while True:
        if deadline is not None and loop.time() >= deadline:
            return PurgeInstancesResult(deleted_instance_count=deleted, is_complete=False)
        page = await backend.query_instances(query)
        await asyncio.gather(*(purge(s) for s in page.items))
        if out_of_time:
            return PurgeInstancesResult(deleted_instance_count=deleted, is_complete=False)
        if page.continuation_token is None:
            return PurgeInstancesResult(deleted_instance_count=deleted, is_complete=True)
        query = dataclasses.replace(query, continuation_token=page.continuation_token)


async def count_by_status(
    backend: Backend, query: OrchestrationQuery | None
) -> dict[OrchestrationStatus, int]:
    """Instances per runtime status (every status of the filter, or all, present with 0)."""
    query = dataclasses.replace(
        query or OrchestrationQuery(),
        page_size=COUNT_PAGE_SIZE,
        fetch_inputs_and_outputs=False,
        continuation_token=None,
    )
    counts = dict.fromkeys(query.runtime_status or tuple(OrchestrationStatus), 0)
    while True:
        page = await backend.query_instances(query)
        for state in page.items:
            counts[state.runtime_status] = counts.get(state.runtime_status, 0) + 1
        if page.continuation_token is None:
            return counts
        query = dataclasses.replace(query, continuation_token=page.continuation_token)


async def ended_state(backend: Backend, instance_id: str) -> InstanceState:
    """The instance's state with payloads, if it has ended (for restart)."""
    state = await backend.get_instance(instance_id, fetch_payloads=True)
    if state is None:
        raise OrchestrationNotFoundError(instance_id)
    if not state.runtime_status.is_terminal:
        raise InvalidOperationError(
            f"cannot restart orchestration {instance_id!r}: it is {state.runtime_status.value}; "
            "only ended instances (Completed, Failed, Terminated) can be restarted"
        )
    return state


async def rewind(backend: Backend, instance_id: str, reason: str | None) -> None:
    """Rewind a FAILED instance and its failed children; purge its orphans (``client.rewind``).

    Everything is read and checked before the first write, so a refused rewind changes
    nothing. Writes go parent first: a child's answer must find its parent open again.
    """
    steps: list[tuple[InstanceState, Settlement]] = []
    await _collect(backend, instance_id, steps, seen=set())
    rewound = {state.instance_id for state, _ in steps}
    orphans = [o for _, settled in steps for o in settled.orphans if o not in rewound]
    doomed = await _orphan_trees(backend, orphans, owners=rewound)
    now = datetime.now(timezone.utc)
    data = rewind_data(reason)
    for orphan in doomed:  # before the re-run can create a child under the same id
        await backend.purge_instance(orphan)
    for state, settled in steps:
        running = dataclasses.replace(
            state,
            runtime_status=OrchestrationStatus.RUNNING,
            completed_at=None,
            output=None,
            failure_details=None,
            last_updated_at=now,
        )
        await backend.replace_history(state.instance_id, settled.history, running)
        target = OrchestrationInstance(
            instance_id=state.instance_id, execution_id=state.execution_id
        )
        trigger = GenericEvent(timestamp=now, data=data)
        await backend.send_message(TaskMessage(instance=target, event=trigger))


async def _collect(
    backend: Backend,
    instance_id: str,
    steps: list[tuple[InstanceState, Settlement]],
    *,
    seen: set[str],
    parent: str | None = None,
) -> None:
    """Plan the whole tree before writing anything; steps come out parent first."""
    if instance_id in seen:
        return
    seen.add(instance_id)
    state = await backend.get_instance(instance_id, fetch_payloads=True)
    if state is None:
        raise OrchestrationNotFoundError(instance_id)
    if state.runtime_status is not OrchestrationStatus.FAILED:
        what = f"orchestration {instance_id!r}"
        if parent is not None:
            what = f"sub-orchestration {instance_id!r} of {parent!r}"
        raise InvalidOperationError(
            f"cannot rewind {what}: it is {state.runtime_status.value}; only Failed "
            "instances can be rewound"
        )
    plan = plan_rewind(await backend.get_history(instance_id))
    views = {c.instance_id: await _view(backend, c.instance_id) for c in plan.open_children}
    me = OrchestrationInstance(instance_id=instance_id, execution_id=state.execution_id)
    settled = settle_children(plan, me, views, now=datetime.now(timezone.utc))
    steps.append((state, settled))
    for child in settled.rewind_children:
        await _collect(backend, child, steps, seen=seen, parent=instance_id)


async def _view(backend: Backend, instance_id: str) -> ChildView | None:
    state = await backend.get_instance(instance_id, fetch_payloads=True)
    if state is None:
        return None
    started = _started(await backend.get_history(instance_id))
    parent = started.parent if started is not None else None
    return ChildView(
        status=state.runtime_status,
        output=state.output,
        completed_at=state.completed_at,
        parent=parent.instance if parent is not None else None,
        parent_task_id=parent.task_scheduled_id if parent is not None else None,
    )


async def _orphan_trees(backend: Backend, orphans: Sequence[str], *, owners: set[str]) -> list[str]:
    """The ended orphans and their ended children, to purge; refuses while one still runs.

    An instance is taken only if its current execution was started by one of ``owners``
    (an id since reused by an unrelated instance is left alone).
    """
    doomed: list[str] = []
    owners_rewound = set(owners)
    todo = list(orphans)
    while todo:
        orphan = todo.pop(0)
        if orphan in doomed or orphan in owners_rewound:
            continue
        state = await backend.get_instance(orphan, fetch_payloads=False)
        history = await backend.get_history(orphan)
        started = _started(history)
        if state is None or started is None or started.parent is None:
            continue
        if started.parent.instance.instance_id not in owners:
            continue
        if not state.runtime_status.is_terminal:
            raise InvalidOperationError(
                f"cannot rewind: sub-orchestration {orphan!r} of "
                f"{started.parent.instance.instance_id!r} was created after the first failure "
                f"and is still {state.runtime_status.value}; wait for it to end or terminate "
                "it, then rewind again"
            )
        doomed.append(orphan)
        owners = owners | {orphan}
        todo.extend(
            e.instance_id for e in history if isinstance(e, SubOrchestrationInstanceCreated)
        )
    return doomed


def _started(history: Sequence[HistoryEvent]) -> ExecutionStarted | None:
    return next((e for e in history if isinstance(e, ExecutionStarted)), None)
