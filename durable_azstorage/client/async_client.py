"""AsyncTaskHubClient: start, inspect and control orchestration instances (coroutines).

The implementation behind both clients (``client.TaskHubClient`` runs these coroutines on a
private loop). Decisions where the .NET provider is vague:

* Operations on an instance that does not exist raise ``OrchestrationNotFoundError`` —
  also ``raise_orchestration_event`` (DTFx drops such events silently, which hides typos in
  instance ids). Events sent to an instance that has *completed* are accepted here and
  dropped by the worker, as in DTFx (the instance may be completing right now).
* ``terminate_orchestration(recursive=True)`` is carried out by the worker (the terminated
  instance's episode terminates its running sub-orchestrations).
* ``purge_orchestration`` refuses an instance that has not ended (``InvalidOperationError``)
  and returns ``deleted_instance_count=0`` for an unknown one (purge is idempotent).
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from datetime import datetime, timedelta, timezone
from types import TracebackType
from typing import Any

from durable_azstorage.authoring.registry import Registry
from durable_azstorage.backend.protocol import Backend, BackendSettings, ExecutionArchive
from durable_azstorage.client import entities, management
from durable_azstorage.client.entities import CleanEntityStorageResult, EntityMetadata, EntityQuery
from durable_azstorage.client.instance_ids import list_instance_ids
from durable_azstorage.client.scale import ScaleAdvice
from durable_azstorage.client.state import OrchestrationState
from durable_azstorage.model.deprecation import renamed_argument
from durable_azstorage.model.entities import EntityInstanceId, is_entity_id
from durable_azstorage.model.errors import InvalidOperationError, OrchestrationNotFoundError
from durable_azstorage.model.history import (
    EventRaised,
    ExecutionResumed,
    ExecutionStarted,
    ExecutionSuspended,
    ExecutionTerminated,
    HistoryEvent,
    OrchestrationInstance,
    SubOrchestrationInstanceCreated,
)
from durable_azstorage.model.identifiers import validate_instance_id, validate_name
from durable_azstorage.model.messages import TaskMessage
from durable_azstorage.model.polling import IdleBackoff
from durable_azstorage.model.query import OrchestrationQuery, Page, PurgeInstancesResult
from durable_azstorage.model.scale import ScaleAdvisor, ScaleRecommendation
from durable_azstorage.model.stale import StaleInstance
from durable_azstorage.model.state import InstanceState, OrchestrationIdReusePolicy
from durable_azstorage.model.status import OrchestrationStatus
from durable_azstorage.model.taskhub import TaskHubInfo
from durable_azstorage.model.trace import TraceContext
from durable_azstorage.serialization.converter import DataConverter, JsonDataConverter
from durable_azstorage.telemetry.tracing import create_orchestration_span, raise_event_span

Timeout = float | timedelta
_NAMES = Registry()
WAIT_POLL_FASTEST, WAIT_POLL_SLOWEST, WAIT_POLL_RATIO = 0.02, 1.0, 0.25
"""``wait_for_orchestration_*`` reads the instance every 20 ms at first, then every quarter of
the time waited so far, at most every second: an instance that ends is seen at most 25 % (and
1 s) late, and a wait costs about 20 reads for its first 4 s, then one a second."""  # only for the name-of-a-function rule shared with the worker


class AsyncTaskHubClient:
    """Coroutine client; give it ``settings`` or a ``backend``, not both."""

    def __init__(
        self,
        settings: BackendSettings | None = None,
        *,
        backend: Backend | None = None,
        converter: DataConverter | None = None,
        default_version: str | None = None,
    ) -> None:
        """``default_version`` is given to new orchestrations scheduled without a version (as
        the portable SDK's client does): the version workers' ``use_versioning`` compares."""
        if (settings is None) == (backend is None):
            raise ValueError("a client needs exactly one of settings or backend=")
        if default_version is not None:
            validate_name(default_version, what="default_version")
        self.default_version = default_version
        self._owns_backend = settings is not None
        if settings is not None:
            backend = settings.create_backend()
        assert backend is not None  # exactly one of the two was given
        self._backend: Backend = backend
        self._converter = converter or JsonDataConverter()
        self._scale = ScaleAdvice(backend)

    @property
    def backend(self) -> Backend:
        return self._backend

    async def close(self) -> None:
        """Release the backend if this client created it (from settings)."""
        if self._owns_backend:
            await self._backend.stop()

    async def __aenter__(self) -> AsyncTaskHubClient:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    # --- task hub --------------------------------------------------------------------------
    async def create_task_hub(self) -> None:
        """Create the hub's resources; idempotent, so every deployment may call it at start-up."""
        await self._backend.create_task_hub()

    async def delete_task_hub(self) -> None:
        """Delete the hub and everything in it (instances, history, queued messages)."""
        await self._backend.delete_task_hub()

    async def get_task_hub_info(self) -> TaskHubInfo:
        """Partition count, creation time and resources of the hub (``TaskHubNotFoundError``
        if it does not exist)."""
        return await self._backend.get_task_hub_info()

    async def list_task_hubs(self) -> list[TaskHubInfo]:
        """Every task hub in the storage account."""
        return await self._backend.list_task_hubs()

    async def get_scale_recommendation(
        self, current_worker_count: int, *, sample_interval: Timeout = 1.0
    ) -> ScaleRecommendation:
        """Add a worker, remove one, or keep the count (with the reason), judged from the
        latency of every queue over the last few samples (``model.scale``). Samples are kept
        between calls; a first call takes the missing ones ``sample_interval`` apart."""
        return await self._scale.recommend(
            current_worker_count, sample_interval=_seconds(sample_interval)
        )

    @property
    def scale_advisor(self) -> ScaleAdvisor:
        """The samples behind ``get_scale_recommendation`` (latest first-hand numbers)."""
        return self._scale.advisor

    # --- scheduling ------------------------------------------------------------------------
    async def schedule_new_orchestration(
        self,
        orchestrator: Callable[..., Any] | str,
        *,
        input: Any = None,
        instance_id: str | None = None,
        start_at: datetime | None = None,
        reuse_id_policy: OrchestrationIdReusePolicy | None = None,
        version: str | None = None,
        tags: dict[str, str] | None = None,
        trace_context: TraceContext | None = None,
    ) -> str:
        """Create an instance (Pending until a worker picks it up, or until ``start_at``).

        With OpenTelemetry the instance is traced under a ``create_orchestration`` span;
        ``trace_context`` instead names the span to start under (a gRPC sidecar forwarding a
        portable-SDK client's, which made that span itself).
        """
        name = _NAMES.orchestrator_name_of(orchestrator)
        fresh_id = instance_id is None
        instance_id = uuid.uuid4().hex if instance_id is None else instance_id
        if start_at is not None and start_at.tzinfo is None:
            raise ValueError(f"start_at must be timezone-aware, got naive {start_at.isoformat()}")
        return await self._create(
            name,
            instance_id,
            self._converter.serialize(input),
            fresh_id=fresh_id,
            start_at=start_at,
            reuse_id_policy=reuse_id_policy,
            version=version or self.default_version,
            tags=tags,
            trace_context=trace_context,
        )

    async def _create(
        self,
        name: str,
        instance_id: str,
        serialized_input: str | None,
        *,
        fresh_id: bool = False,
        start_at: datetime | None = None,
        reuse_id_policy: OrchestrationIdReusePolicy | None = None,
        version: str | None = None,
        tags: dict[str, str] | None = None,
        trace_context: TraceContext | None = None,
    ) -> str:
        """``fresh_id``: the id was just generated here (uuid4), so no earlier instance can
        have it: its generation is 0 without reading the store (one request and one round
        trip less on every start)."""
        validate_instance_id(instance_id)
        validate_name(name, what="orchestration name")
        if version is not None:
            validate_name(version, what="orchestration version")
        starting = (
            nullcontext(trace_context)
            if trace_context is not None
            else create_orchestration_span(name, instance_id, version)
        )
        with starting as traced:
            return await self._insert(
                name,
                instance_id,
                serialized_input,
                fresh_id=fresh_id,
                start_at=start_at,
                reuse_id_policy=reuse_id_policy,
                version=version,
                tags=tags,
                trace_context=traced,
            )

    async def _insert(
        self,
        name: str,
        instance_id: str,
        serialized_input: str | None,
        *,
        fresh_id: bool,
        start_at: datetime | None,
        reuse_id_policy: OrchestrationIdReusePolicy | None,
        version: str | None,
        tags: dict[str, str] | None,
        trace_context: TraceContext | None,
    ) -> str:
        previous = (
            None
            if fresh_id
            else await self._backend.get_instance(instance_id, fetch_payloads=False)
        )
        instance = OrchestrationInstance(instance_id=instance_id, execution_id=uuid.uuid4().hex)
        started = ExecutionStarted(
            timestamp=_utcnow(),
            name=name,
            instance=instance,
            input=serialized_input,
            version=version,
            scheduled_start_time=start_at.astimezone(timezone.utc) if start_at else None,
            tags=dict(tags) if tags else None,
            generation=previous.generation + 1 if previous is not None else 0,
            trace_context=trace_context,
        )
        await self._backend.create_instance(
            TaskMessage(instance=instance, event=started), reuse_policy=reuse_id_policy
        )
        return instance_id

    # --- inspection ------------------------------------------------------------------------
    async def get_orchestration_state(
        self, instance_id: str, *, fetch_payloads: bool = True
    ) -> OrchestrationState | None:
        state = await self._backend.get_instance(instance_id, fetch_payloads=fetch_payloads)
        return None if state is None else self._public(state)

    async def wait_for_orchestration_start(
        self, instance_id: str, *, fetch_payloads: bool = False, timeout: Timeout = 60
    ) -> OrchestrationState:
        """Wait until the instance left Pending; ``TimeoutError`` names the last status."""
        return await self._wait(
            instance_id,
            lambda s: s.runtime_status is not OrchestrationStatus.PENDING,
            "start",
            fetch_payloads=fetch_payloads,
            timeout=timeout,
        )

    async def wait_for_orchestration_completion(
        self, instance_id: str, *, fetch_payloads: bool = True, timeout: Timeout = 60
    ) -> OrchestrationState:
        """Wait until the instance completed, failed or was terminated."""
        return await self._wait(
            instance_id,
            lambda s: s.runtime_status.is_terminal,
            "complete",
            fetch_payloads=fetch_payloads,
            timeout=timeout,
        )

    async def get_orchestration_history(
        self, instance_id: str, *, execution_id: str | None = None
    ) -> list[HistoryEvent]:
        """The committed history events of the current execution, or of ``execution_id``.

        Earlier executions (ended by continue-as-new or replaced by a restart) are kept up
        to the backend's ``archived_executions`` per instance (``list_execution_ids`` names
        them); one that is not kept raises ``InvalidOperationError`` naming those that are.
        """
        if execution_id is not None:
            return await self._execution_history(instance_id, execution_id)
        history = await self._backend.get_history(instance_id)
        if not history:
            await self._require(instance_id)
        return history

    async def list_execution_ids(self, instance_id: str) -> list[str]:
        """Ids of the executions whose history is kept, oldest first, the current one last
        (none yet while Pending; ``OrchestrationNotFoundError`` for an unknown instance)."""
        await self._require(instance_id)
        if isinstance(self._backend, ExecutionArchive):
            return await self._backend.list_executions(instance_id)
        history = await self._backend.get_history(instance_id)
        started = next((e for e in history if isinstance(e, ExecutionStarted)), None)
        return [started.instance.execution_id] if started and started.instance.execution_id else []

    async def _execution_history(self, instance_id: str, execution_id: str) -> list[HistoryEvent]:
        state = await self._require(instance_id)
        if isinstance(self._backend, ExecutionArchive):
            events = await self._backend.get_execution_history(instance_id, execution_id)
            if events is not None:
                return events
            kept = await self._backend.list_executions(instance_id)
        elif state.execution_id == execution_id:
            return await self._backend.get_history(instance_id)
        else:
            kept = [state.execution_id] if state.execution_id else []
        raise InvalidOperationError(
            f"execution {execution_id!r} of orchestration {instance_id!r} is not kept; kept "
            f"are {kept} (earlier executions up to the backend's archived_executions setting)"
        )

    async def list_instance_ids(
        self,
        runtime_status: Sequence[OrchestrationStatus | str] | None = None,
        completed_time_from: datetime | None = None,
        completed_time_to: datetime | None = None,
        page_size: int | None = None,
        continuation_token: str | None = None,
    ) -> Page[str]:
        """Ids of ended instances (or those in ``runtime_status``), one page at a time.

        ``continuation_token`` is None on the last page; see ``client.instance_ids``.
        """
        return await list_instance_ids(
            self._backend,
            runtime_status=runtime_status,
            completed_time_from=completed_time_from,
            completed_time_to=completed_time_to,
            page_size=page_size,
            continuation_token=continuation_token,
        )

    async def query_orchestrations(
        self, query: OrchestrationQuery | None = None
    ) -> Page[OrchestrationState]:
        """One page of orchestrations; pass ``continuation_token`` back for the next page.

        Entities (``@name@key`` instances) are left out, as in the portable SDK and DTFx; list
        them with ``get_all_entities``. A page may therefore hold fewer items than its size."""
        page = await self._backend.query_instances(query or OrchestrationQuery())
        items = [self._public(s) for s in page.items if not is_entity_id(s.instance_id)]
        return Page(items, page.continuation_token)

    async def get_all_orchestration_states(
        self,
        orchestration_query: OrchestrationQuery | None = None,
        *,
        query: OrchestrationQuery | None = None,
    ) -> list[OrchestrationState]:
        """Every instance matching the query, following continuation tokens.

        ``query=`` is the deprecated name of ``orchestration_query``.
        """
        query = (
            renamed_argument(
                "get_all_orchestration_states",
                "query",
                "orchestration_query",
                query,
                orchestration_query,
            )
            or OrchestrationQuery()
        )
        states: list[OrchestrationState] = []
        while True:
            page = await self.query_orchestrations(query)
            states.extend(page.items)
            if page.continuation_token is None:
                return states
            query = _with_token(query, page.continuation_token)

    # --- control ---------------------------------------------------------------------------
    async def raise_orchestration_event(
        self, instance_id: str, event_name: str, *, data: Any = None
    ) -> None:
        """Deliver an external event; raises ``OrchestrationNotFoundError`` for unknown ids."""
        validate_instance_id(instance_id)
        validate_name(event_name, what="event name")
        with raise_event_span(event_name, instance_id):
            await self._require(instance_id)
            event = EventRaised(
                timestamp=_utcnow(), name=event_name, input=self._converter.serialize(data)
            )
            await self._send(instance_id, event)

    async def terminate_orchestration(
        self, instance_id: str, *, output: Any = None, recursive: bool = True
    ) -> None:
        """Terminate the instance (also when suspended); ``output`` becomes its output.

        With ``recursive`` the worker also terminates its running sub-orchestrations.
        """
        await self._require(instance_id)
        event = ExecutionTerminated(
            timestamp=_utcnow(), input=self._converter.serialize(output), recurse=recursive
        )
        await self._send(instance_id, event)

    async def suspend_orchestration(self, instance_id: str, *, reason: str | None = None) -> None:
        await self._require(instance_id)
        await self._send(instance_id, ExecutionSuspended(timestamp=_utcnow(), reason=reason))

    async def resume_orchestration(self, instance_id: str, *, reason: str | None = None) -> None:
        await self._require(instance_id)
        await self._send(instance_id, ExecutionResumed(timestamp=_utcnow(), reason=reason))

    async def purge_orchestration(
        self, instance_id: str, recursive: bool = True
    ) -> PurgeInstancesResult:
        """Delete an ended instance's history and state (and its sub-orchestrations')."""
        state = await self._backend.get_instance(instance_id, fetch_payloads=False)
        if state is None:
            return PurgeInstancesResult(deleted_instance_count=0)
        if not state.runtime_status.is_terminal:
            raise InvalidOperationError(
                f"cannot purge orchestration {instance_id!r}: it is "
                f"{state.runtime_status.value}; terminate it or wait for it to end first"
            )
        deleted = 0
        if recursive:
            for child in await self._children(instance_id):
                child_state = await self._backend.get_instance(child, fetch_payloads=False)
                if child_state is not None and child_state.runtime_status.is_terminal:
                    deleted += (await self.purge_orchestration(child)).deleted_instance_count
        if await self._backend.purge_instance(instance_id):
            deleted += 1
        return PurgeInstancesResult(deleted_instance_count=deleted)

    # --- management ------------------------------------------------------------------------
    async def purge_orchestrations_by(
        self,
        created_time_from: datetime | None = None,
        created_time_to: datetime | None = None,
        runtime_status: Sequence[OrchestrationStatus | str] | None = None,
        recursive: bool = False,
        timeout: Timeout | None = None,
        *,
        concurrency: int = 8,
        progress: Callable[[int], None] | None = None,
        created_from: datetime | None = None,
        created_to: datetime | None = None,
    ) -> PurgeInstancesResult:
        """Purge every ended instance created in the range with one of ``runtime_status``.

        Only Completed, Failed and Terminated may be named (else ``ValueError``; no status
        at all is refused too, so a forgotten filter never purges a whole hub). With
        ``recursive`` each instance's ended sub-orchestrations go with it. With ``timeout``
        the result may say ``is_complete=False``: call again to continue. Idempotent.
        ``progress(deleted)`` follows each deletion. ``created_from``/``created_to`` are the
        deprecated names of ``created_time_from``/``created_time_to``.
        """
        method = "purge_orchestrations_by"
        low = renamed_argument(
            method, "created_from", "created_time_from", created_from, created_time_from
        )
        high = renamed_argument(
            method, "created_to", "created_time_to", created_to, created_time_to
        )
        statuses = management.purge_statuses(
            tuple(runtime_status) if runtime_status is not None else None
        )

        async def purge_one(instance_id: str) -> int:
            if recursive:
                return (
                    await self.purge_orchestration(instance_id, recursive=True)
                ).deleted_instance_count
            return 1 if await self._backend.purge_instance(instance_id) else 0

        return await management.purge_by(
            self._backend,
            purge_one,
            created_from=low,
            created_to=high,
            runtime_status=statuses,
            timeout=None if timeout is None else _seconds(timeout),
            concurrency=concurrency,
            progress=progress,
        )

    async def count_orchestrations_by_status(
        self, query: OrchestrationQuery | None = None
    ) -> dict[OrchestrationStatus, int]:
        """How many instances match ``query``, per runtime status (zeros included)."""
        return await management.count_by_status(self._backend, query)

    async def restart_orchestration(
        self, instance_id: str, *, restart_with_new_instance_id: bool = False
    ) -> str:
        """Start an ended instance again with the same name, version, tags and input.

        Returns the instance id (a new one with ``restart_with_new_instance_id``). Raises
        ``OrchestrationNotFoundError`` or, if it has not ended, ``InvalidOperationError``.
        """
        state = await management.ended_state(self._backend, instance_id)
        new_id = uuid.uuid4().hex if restart_with_new_instance_id else instance_id
        return await self._create(
            state.name,
            new_id,
            state.input,
            fresh_id=restart_with_new_instance_id,
            version=state.version,
            tags=dict(state.tags) if state.tags else None,
        )

    async def rewind_orchestration(self, instance_id: str, *, reason: str | None = None) -> None:
        """Resume a Failed instance from just before its first failure.

        Failed (and unfinished) activities run again; successful results and external
        events are kept; failed sub-orchestrations are rewound too; whatever the code did in
        reaction to the failure (retries, compensation) is redone only if the code does it
        again. Ended children the rewritten history no longer names are purged. Raises
        ``OrchestrationNotFoundError``, or ``InvalidOperationError`` for an instance (or
        failed child) that is not Failed, or while such an abandoned child still runs.
        See ``client.rewind`` for the semantics.
        """
        await management.rewind(self._backend, instance_id, reason)

    async def find_stale_instances(self) -> list[StaleInstance]:
        """Instances whose index row disagrees with their history (Azure: a crash between
        the two writes). ``InvalidOperationError`` on a backend without a separate index."""
        return await management.index_repair(self._backend).find_stale_instances()

    async def repair_stale_instances(
        self, stale: Sequence[StaleInstance] | None = None
    ) -> list[StaleInstance]:
        """Rewrite the repairable rows of ``stale`` (default: all found) from the history;
        returns the ones repaired (an instance that moved on meanwhile is left alone)."""
        return await management.index_repair(self._backend).repair_stale_instances(stale)

    # --- internals -------------------------------------------------------------------------
    # --- entities ------------------------------------------------------------------------
    async def signal_entity(
        self,
        entity_instance_id: EntityInstanceId,
        operation_name: str,
        input: Any = None,
        signal_time: datetime | None = None,
    ) -> None:
        """Send an operation to an entity (one queue message; creates the entity if new).
        With ``signal_time`` it is delivered then."""
        message = entities.signal_message(
            entity_instance_id, operation_name, self._converter.serialize(input), signal_time
        )
        await self._backend.send_message(message)

    async def get_entity(
        self, entity_instance_id: EntityInstanceId, include_state: bool = True
    ) -> EntityMetadata | None:
        """The entity, or None when it does not exist or has no state (e.g. it deleted it)."""
        return await entities.get_entity(
            self._backend, self._converter, entity_instance_id, include_state=include_state
        )

    async def get_all_entities(
        self, entity_query: EntityQuery | None = None
    ) -> list[EntityMetadata]:
        """Every entity matching the query (by default those with state)."""
        found = await entities.query_entities(
            self._backend, self._converter, entity_query or EntityQuery()
        )
        return [entry for entry, _ in found]

    async def clean_entity_storage(
        self, remove_empty_entities: bool = True, release_orphaned_locks: bool = True
    ) -> CleanEntityStorageResult:
        """Release locks held by orchestrations that no longer run; remove empty entities."""
        return await entities.clean_entity_storage(
            self._backend,
            self._converter,
            remove_empty_entities=remove_empty_entities,
            release_orphaned_locks=release_orphaned_locks,
        )

    async def _require(self, instance_id: str) -> InstanceState:
        state = await self._backend.get_instance(instance_id, fetch_payloads=False)
        if state is None:
            raise OrchestrationNotFoundError(instance_id)
        return state

    async def _send(self, instance_id: str, event: HistoryEvent) -> None:
        target = OrchestrationInstance(instance_id=instance_id)
        await self._backend.send_message(TaskMessage(instance=target, event=event))

    async def _children(self, instance_id: str) -> list[str]:
        history = await self._backend.get_history(instance_id)
        seen: dict[str, None] = {}
        for event in history:
            if isinstance(event, SubOrchestrationInstanceCreated):
                seen.setdefault(event.instance_id, None)
        return list(seen)

    def _public(self, state: InstanceState) -> OrchestrationState:
        return OrchestrationState.from_instance(state, self._converter)

    async def _wait(
        self,
        instance_id: str,
        done: Callable[[OrchestrationState], bool],
        what: str,
        *,
        fetch_payloads: bool,
        timeout: Timeout,
    ) -> OrchestrationState:
        seconds = timeout.total_seconds() if isinstance(timeout, timedelta) else float(timeout)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        backoff = IdleBackoff(
            fastest=WAIT_POLL_FASTEST,
            slowest=WAIT_POLL_SLOWEST,
            ratio=WAIT_POLL_RATIO,
            clock=loop.time,
        )
        state: OrchestrationState | None = None
        while True:
            state = await self.get_orchestration_state(instance_id, fetch_payloads=fetch_payloads)
            if state is not None and done(state):
                return state
            remaining = deadline - loop.time()
            if remaining <= 0:
                last = state.runtime_status.value if state else "not found"
                raise TimeoutError(
                    f"orchestration {instance_id!r} did not {what} within {seconds:g}s "
                    f"(last status: {last})"
                )
            await asyncio.sleep(min(backoff.interval(), remaining))


def _seconds(timeout: Timeout) -> float:
    return timeout.total_seconds() if isinstance(timeout, timedelta) else float(timeout)


def _with_token(query: OrchestrationQuery, token: str) -> OrchestrationQuery:
    return dataclasses.replace(query, continuation_token=token)


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)
