"""What orchestrator and activity code sees: ``OrchestrationContext`` and ``ActivityContext``.

Orchestrator code must be deterministic: everything that differs between runs (time, ids,
results of I/O) comes from the context, which reads it from history during replay.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar, overload

from durable_azstorage.authoring.registry import Activity, Orchestrator
from durable_azstorage.authoring.retry import RetryPolicy
from durable_azstorage.authoring.tasks import CancellableTask, Task
from durable_azstorage.model.deprecation import renamed_argument
from durable_azstorage.model.entities import EntityInstanceId

T = TypeVar("T")

if TYPE_CHECKING:
    from durable_azstorage.authoring.entities import EntityLock

    _LoggerAdapter = logging.LoggerAdapter[logging.Logger]
else:
    _LoggerAdapter = logging.LoggerAdapter


class ReplaySafeLogger(_LoggerAdapter):
    """A logger that stays silent while the orchestrator replays, so each line is logged once."""

    def __init__(self, logger: logging.Logger, is_replaying: Callable[[], bool]) -> None:
        super().__init__(logger, {})
        self._is_replaying = is_replaying

    def isEnabledFor(self, level: int) -> bool:  # noqa: N802 - logging API name
        return not self._is_replaying() and self.logger.isEnabledFor(level)

    def process(
        self, msg: Any, kwargs: MutableMapping[str, Any]
    ) -> tuple[Any, MutableMapping[str, Any]]:
        return msg, kwargs


class OrchestrationContext(ABC):
    """The orchestrator's window on the durable world (API.md, Authoring)."""

    @property
    @abstractmethod
    def instance_id(self) -> str:
        """The id of this orchestration instance."""

    @property
    @abstractmethod
    def parent_instance_id(self) -> str | None:
        """The id of the orchestration that started this one as a sub-orchestration."""

    @property
    @abstractmethod
    def version(self) -> str | None:
        """The version the instance was scheduled with."""

    @property
    @abstractmethod
    def current_utc_datetime(self) -> datetime:
        """Deterministic "now": the timestamp of the episode being (re)played."""

    @property
    @abstractmethod
    def is_replaying(self) -> bool:
        """True while the code re-executes steps that history already recorded."""

    @overload
    def call_activity(
        self,
        activity: Activity | str,
        *,
        input: Any = None,
        retry_policy: RetryPolicy | None = None,
        tags: dict[str, str] | None = None,
        return_type: type[T],
    ) -> Task[T]: ...

    @overload
    def call_activity(
        self,
        activity: Activity | str,
        *,
        input: Any = None,
        retry_policy: RetryPolicy | None = None,
        tags: dict[str, str] | None = None,
        return_type: None = None,
    ) -> Task[Any]: ...

    @abstractmethod
    def call_activity(
        self,
        activity: Activity | str,
        *,
        input: Any = None,
        retry_policy: RetryPolicy | None = None,
        tags: dict[str, str] | None = None,
        return_type: Any = None,
    ) -> Task[Any]:
        """Schedule an activity (by function or registered name); yield the task for its result.

        The result is rebuilt as ``return_type`` (a dataclass, pydantic model, ...), or, when
        that is omitted and ``activity`` is the function, as its return annotation.
        """

    @overload
    def call_sub_orchestrator(
        self,
        orchestrator: Orchestrator | str,
        *,
        input: Any = None,
        instance_id: str | None = None,
        retry_policy: RetryPolicy | None = None,
        version: str | None = None,
        return_type: type[T],
    ) -> Task[T]: ...

    @overload
    def call_sub_orchestrator(
        self,
        orchestrator: Orchestrator | str,
        *,
        input: Any = None,
        instance_id: str | None = None,
        retry_policy: RetryPolicy | None = None,
        version: str | None = None,
        return_type: None = None,
    ) -> Task[Any]: ...

    @abstractmethod
    def call_sub_orchestrator(
        self,
        orchestrator: Orchestrator | str,
        *,
        input: Any = None,
        instance_id: str | None = None,
        retry_policy: RetryPolicy | None = None,
        version: str | None = None,
        return_type: Any = None,
    ) -> Task[Any]:
        """Start a child orchestration (default id ``f"{instance_id}:{seq:04x}"``).

        Its output is rebuilt as ``return_type`` when given.
        """

    @abstractmethod
    def create_timer(self, fire_at: datetime | timedelta) -> CancellableTask[None]:
        """A durable timer firing at ``fire_at`` (or after the given delay)."""

    @overload
    def wait_for_external_event(self, name: str, *, data_type: type[T]) -> CancellableTask[T]: ...

    @overload
    def wait_for_external_event(
        self, name: str, *, data_type: None = None
    ) -> CancellableTask[Any]: ...

    @abstractmethod
    def wait_for_external_event(self, name: str, *, data_type: Any = None) -> CancellableTask[Any]:
        """Wait for an event (case-insensitive name); early events are buffered FIFO per name.

        The event's data is rebuilt as ``data_type`` when given.
        """

    @abstractmethod
    def send_event(self, instance_id: str, event_name: str, *, data: Any = None) -> None:
        """Raise ``event_name`` on another instance (fire and forget)."""

    @abstractmethod
    def continue_as_new(self, new_input: Any, *, save_events: bool = False) -> None:
        """Restart with ``new_input`` and an empty history once the code returns.

        With ``save_events``, external events received but not yet consumed are carried over.
        """

    def set_custom_status(self, custom_status: Any = None, *, obj: Any = None) -> None:
        """Publish a serializable value clients can read while the instance runs.

        ``obj=`` is the deprecated name of ``custom_status``.
        """
        self._set_custom_status(
            renamed_argument("set_custom_status", "obj", "custom_status", obj, custom_status)
        )

    @abstractmethod
    def _set_custom_status(self, custom_status: Any) -> None:
        """Record the encoded custom status (the runtime's part of ``set_custom_status``)."""

    @abstractmethod
    def new_uuid(self) -> str:
        """A replay-safe UUID (name-based v5, the same algorithm as the portable SDK)."""

    @abstractmethod
    def signal_entity(
        self,
        entity_id: EntityInstanceId,
        operation_name: str,
        input: Any = None,
        signal_time: datetime | None = None,
    ) -> None:
        """Send ``operation_name`` to an entity (fire and forget; at ``signal_time`` if given).
        Signals from one orchestration reach an entity in the order sent."""

    @overload
    def call_entity(
        self, entity: EntityInstanceId, operation: str, input: Any = None, *, return_type: type[T]
    ) -> Task[T]: ...

    @overload
    def call_entity(
        self,
        entity: EntityInstanceId,
        operation: str,
        input: Any = None,
        *,
        return_type: None = None,
    ) -> Task[Any]: ...

    @abstractmethod
    def call_entity(
        self,
        entity: EntityInstanceId,
        operation: str,
        input: Any = None,
        *,
        return_type: Any = None,
    ) -> Task[Any]:
        """Run ``operation`` on an entity; yield the task for its result. A failed operation
        raises ``EntityOperationFailedException`` here (its state changes were undone)."""

    @abstractmethod
    def lock_entities(self, entities: list[EntityInstanceId]) -> Task[EntityLock]:
        """Lock ``entities`` (in a fixed global order, so two orchestrations never deadlock);
        use as ``with (yield ctx.lock_entities([a, b])):``. Inside, only the locked entities
        may be called; the locks are released when the block exits or the orchestration ends."""

    @abstractmethod
    def _exit_critical_section(self) -> None:
        """Release the locks of the current critical section (``EntityLock.__exit__``)."""

    def create_replay_safe_logger(self, logger: logging.Logger) -> ReplaySafeLogger:
        """Wrap ``logger`` so that it only emits while the code is not replaying."""
        return ReplaySafeLogger(logger, lambda: self.is_replaying)


@dataclass(frozen=True, slots=True, kw_only=True)
class ActivityContext:
    """What an activity knows about its invocation.

    ``attempt`` is the 1-based delivery count of this request, so an activity can detect that
    it is being re-delivered (activities run at least once).
    """

    orchestration_id: str
    task_id: int
    task_name: str
    attempt: int = 1
