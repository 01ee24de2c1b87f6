"""Clients: ``AsyncTaskHubClient`` (coroutines) and ``TaskHubClient`` (the same, synchronous).

``TaskHubClient`` runs ``AsyncTaskHubClient``'s coroutines on a private event loop in a
background thread, so a backend's asyncio clients always stay on one loop whatever thread
the caller uses. See ``client.async_client`` for the semantics of each operation.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, TypeVar

from durable_azstorage.backend.protocol import Backend, BackendSettings
from durable_azstorage.client.async_client import AsyncTaskHubClient, Timeout
from durable_azstorage.client.entities import CleanEntityStorageResult, EntityMetadata, EntityQuery
from durable_azstorage.client.state import OrchestrationState
from durable_azstorage.model.deprecation import renamed_argument
from durable_azstorage.model.entities import EntityInstanceId
from durable_azstorage.model.history import HistoryEvent
from durable_azstorage.model.query import OrchestrationQuery, Page, PurgeInstancesResult
from durable_azstorage.model.scale import ScaleAdvisor, ScaleRecommendation
from durable_azstorage.model.stale import StaleInstance
from durable_azstorage.model.state import OrchestrationIdReusePolicy
from durable_azstorage.model.status import OrchestrationStatus
from durable_azstorage.model.taskhub import TaskHubInfo
from durable_azstorage.serialization.converter import DataConverter

__all__ = ["AsyncTaskHubClient", "TaskHubClient"]

T = TypeVar("T")


class TaskHubClient:
    """The synchronous client: ``AsyncTaskHubClient``'s methods, run on a private loop."""

    def __init__(
        self,
        settings: BackendSettings | None = None,
        *,
        backend: Backend | None = None,
        converter: DataConverter | None = None,
        default_version: str | None = None,
    ) -> None:
        self._async = AsyncTaskHubClient(
            settings, backend=backend, converter=converter, default_version=default_version
        )
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="dtaz-client", daemon=True
        )
        self._thread.start()
        self._closed = False

    @property
    def backend(self) -> Backend:
        return self._async.backend

    @property
    def default_version(self) -> str | None:
        """The version given to new orchestrations scheduled without one."""
        return self._async.default_version

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        if self._closed:
            coro.close()
            raise RuntimeError("this TaskHubClient is closed")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def close(self) -> None:
        """Release the backend (if created from settings) and stop the private loop."""
        if self._closed:
            return
        try:
            self._run(self._async.close())
        finally:
            self._closed = True
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
            self._loop.close()

    def __enter__(self) -> TaskHubClient:
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def schedule_new_orchestration(
        self,
        orchestrator: Callable[..., Any] | str,
        *,
        input: Any = None,
        instance_id: str | None = None,
        start_at: datetime | None = None,
        reuse_id_policy: OrchestrationIdReusePolicy | None = None,
        version: str | None = None,
        tags: dict[str, str] | None = None,
    ) -> str:
        return self._run(
            self._async.schedule_new_orchestration(
                orchestrator,
                input=input,
                instance_id=instance_id,
                start_at=start_at,
                reuse_id_policy=reuse_id_policy,
                version=version,
                tags=tags,
            )
        )

    def get_orchestration_state(
        self, instance_id: str, *, fetch_payloads: bool = True
    ) -> OrchestrationState | None:
        return self._run(
            self._async.get_orchestration_state(instance_id, fetch_payloads=fetch_payloads)
        )

    def wait_for_orchestration_start(
        self, instance_id: str, *, fetch_payloads: bool = False, timeout: Timeout = 60
    ) -> OrchestrationState:
        return self._run(
            self._async.wait_for_orchestration_start(
                instance_id, fetch_payloads=fetch_payloads, timeout=timeout
            )
        )

    def wait_for_orchestration_completion(
        self, instance_id: str, *, fetch_payloads: bool = True, timeout: Timeout = 60
    ) -> OrchestrationState:
        return self._run(
            self._async.wait_for_orchestration_completion(
                instance_id, fetch_payloads=fetch_payloads, timeout=timeout
            )
        )

    def get_orchestration_history(
        self, instance_id: str, *, execution_id: str | None = None
    ) -> list[HistoryEvent]:
        return self._run(
            self._async.get_orchestration_history(instance_id, execution_id=execution_id)
        )

    def list_execution_ids(self, instance_id: str) -> list[str]:
        return self._run(self._async.list_execution_ids(instance_id))

    def list_instance_ids(
        self,
        runtime_status: Sequence[OrchestrationStatus | str] | None = None,
        completed_time_from: datetime | None = None,
        completed_time_to: datetime | None = None,
        page_size: int | None = None,
        continuation_token: str | None = None,
    ) -> Page[str]:
        return self._run(
            self._async.list_instance_ids(
                runtime_status,
                completed_time_from,
                completed_time_to,
                page_size,
                continuation_token,
            )
        )

    def query_orchestrations(
        self, query: OrchestrationQuery | None = None
    ) -> Page[OrchestrationState]:
        return self._run(self._async.query_orchestrations(query))

    def get_all_orchestration_states(
        self,
        orchestration_query: OrchestrationQuery | None = None,
        *,
        query: OrchestrationQuery | None = None,
    ) -> list[OrchestrationState]:
        query = renamed_argument(
            "get_all_orchestration_states",
            "query",
            "orchestration_query",
            query,
            orchestration_query,
        )
        return self._run(self._async.get_all_orchestration_states(query))

    def signal_entity(
        self,
        entity_instance_id: EntityInstanceId,
        operation_name: str,
        input: Any = None,
        signal_time: datetime | None = None,
    ) -> None:
        self._run(self._async.signal_entity(entity_instance_id, operation_name, input, signal_time))

    def get_entity(
        self, entity_instance_id: EntityInstanceId, include_state: bool = True
    ) -> EntityMetadata | None:
        return self._run(self._async.get_entity(entity_instance_id, include_state))

    def get_all_entities(self, entity_query: EntityQuery | None = None) -> list[EntityMetadata]:
        return self._run(self._async.get_all_entities(entity_query))

    def clean_entity_storage(
        self, remove_empty_entities: bool = True, release_orphaned_locks: bool = True
    ) -> CleanEntityStorageResult:
        return self._run(
            self._async.clean_entity_storage(remove_empty_entities, release_orphaned_locks)
        )

    def raise_orchestration_event(
        self, instance_id: str, event_name: str, *, data: Any = None
    ) -> None:
        self._run(self._async.raise_orchestration_event(instance_id, event_name, data=data))

    def terminate_orchestration(
        self, instance_id: str, *, output: Any = None, recursive: bool = True
    ) -> None:
        self._run(
            self._async.terminate_orchestration(instance_id, output=output, recursive=recursive)
        )

    def suspend_orchestration(self, instance_id: str, *, reason: str | None = None) -> None:
        self._run(self._async.suspend_orchestration(instance_id, reason=reason))

    def resume_orchestration(self, instance_id: str, *, reason: str | None = None) -> None:
        self._run(self._async.resume_orchestration(instance_id, reason=reason))

    def purge_orchestration(self, instance_id: str, recursive: bool = True) -> PurgeInstancesResult:
        return self._run(self._async.purge_orchestration(instance_id, recursive=recursive))

    def purge_orchestrations_by(
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
        method = "purge_orchestrations_by"  # warn in the caller's thread, not the client loop's
        low = renamed_argument(
            method, "created_from", "created_time_from", created_from, created_time_from
        )
        high = renamed_argument(
            method, "created_to", "created_time_to", created_to, created_time_to
        )
        return self._run(
            self._async.purge_orchestrations_by(
                low,
                high,
                runtime_status,
                recursive,
                timeout=timeout,
                concurrency=concurrency,
                progress=progress,
            )
        )

    def count_orchestrations_by_status(
        self, query: OrchestrationQuery | None = None
    ) -> dict[OrchestrationStatus, int]:
        return self._run(self._async.count_orchestrations_by_status(query))

    def restart_orchestration(
        self, instance_id: str, *, restart_with_new_instance_id: bool = False
    ) -> str:
        return self._run(
            self._async.restart_orchestration(
                instance_id, restart_with_new_instance_id=restart_with_new_instance_id
            )
        )

    def rewind_orchestration(self, instance_id: str, *, reason: str | None = None) -> None:
        self._run(self._async.rewind_orchestration(instance_id, reason=reason))

    def find_stale_instances(self) -> list[StaleInstance]:
        return self._run(self._async.find_stale_instances())

    def repair_stale_instances(
        self, stale: Sequence[StaleInstance] | None = None
    ) -> list[StaleInstance]:
        return self._run(self._async.repair_stale_instances(stale))

    def create_task_hub(self) -> None:
        self._run(self._async.create_task_hub())

    def delete_task_hub(self) -> None:
        self._run(self._async.delete_task_hub())

    def get_task_hub_info(self) -> TaskHubInfo:
        return self._run(self._async.get_task_hub_info())

    def list_task_hubs(self) -> list[TaskHubInfo]:
        return self._run(self._async.list_task_hubs())

    def get_scale_recommendation(
        self, current_worker_count: int, *, sample_interval: Timeout = 1.0
    ) -> ScaleRecommendation:
        """See ``AsyncTaskHubClient.get_scale_recommendation``."""
        return self._run(
            self._async.get_scale_recommendation(
                current_worker_count, sample_interval=sample_interval
            )
        )

    @property
    def scale_advisor(self) -> ScaleAdvisor:
        return self._async.scale_advisor
