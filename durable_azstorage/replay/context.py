"""The runtime ``OrchestrationContext``: drives the generator and collects its actions.

Each orchestrator call takes the next sequence number and records an action under it;
the handlers (``replay.handlers``) then match scheduling events from history against these
actions (divergence = non-determinism) and complete tasks from response events. Actions
left unmatched when history runs out are the new decisions of this episode.
"""

from __future__ import annotations

import types
import uuid
from collections import deque
from collections.abc import Generator
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import Any

from durable_azstorage.authoring.context import OrchestrationContext
from durable_azstorage.authoring.entities import EntityLock
from durable_azstorage.authoring.errors import (
    NonSerializableResultError,
    OrchestratorNotRegisteredError,
)
from durable_azstorage.authoring.registry import Activity, Orchestrator, Registry
from durable_azstorage.authoring.retry import RetryPolicy
from durable_azstorage.authoring.signatures import input_type, result_type
from durable_azstorage.authoring.tasks import CancellableTask, CompletableTask, Task
from durable_azstorage.authoring.versioning import VersionFailureStrategy, VersionRejected
from durable_azstorage.model.actions import (
    CompleteOrchestration,
    CreateSubOrchestration,
    CreateTimer,
    OrchestratorAction,
    ScheduleTask,
    SendEvent,
)
from durable_azstorage.model.entities import EntityInstanceId
from durable_azstorage.model.errors import PayloadTypeError
from durable_azstorage.model.failure import FailureDetails
from durable_azstorage.model.history import EventRaised, ExecutionStarted, HistoryEvent
from durable_azstorage.model.status import OrchestrationStatus
from durable_azstorage.replay.entity_calls import EntityResponseTask, OrchestrationEntities
from durable_azstorage.serialization.converter import DataConverter, deserialize_as

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_UUID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_OID, "9e952958-5e33-4daf-827f-2fa12937b875")
_UUID_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def as_utc(value: datetime) -> datetime:
    """Naive datetimes are taken as UTC; aware ones are converted to UTC."""
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


class RetryableTask(CompletableTask[Any]):
    """A task re-scheduled after a durable timer when it fails and its policy allows it."""

    __slots__ = ("_ctx", "policy", "template", "first_attempt_at", "attempt")

    def __init__(
        self, ctx: RuntimeOrchestrationContext, policy: RetryPolicy, template: OrchestratorAction
    ) -> None:
        super().__init__()
        self._ctx = ctx
        self.policy = policy
        self.template = template
        self.first_attempt_at = ctx.current_utc_datetime
        self.attempt = 1

    def attempt_failed(self, error: BaseException) -> None:
        """Retry after a durable delay, or fail with ``error`` once the policy is exhausted."""
        now = self._ctx.current_utc_datetime
        delay = self.policy.next_delay(
            self.attempt, first_attempt_at=self.first_attempt_at, now=now
        )
        if delay is None:
            self.fail(error)
            return
        timer = self._ctx.create_timer(now + delay)
        timer._add_parent(self)

    def on_child_completed(self, task: Task[Any]) -> None:
        """The retry timer fired: schedule the next attempt under a new sequence number."""
        self.attempt += 1
        self._ctx._schedule(self.template, self)


class RuntimeOrchestrationContext(OrchestrationContext):
    """One replay's state. Not thread-safe; lives for one ``execute`` call."""

    def __init__(self, *, registry: Registry, instance_id: str, converter: DataConverter) -> None:
        self.registry = registry
        self.converter = converter
        self.name = ""
        self._instance_id = instance_id
        self._parent_instance_id: str | None = None
        self._version: str | None = None
        self.now = _EPOCH
        self.replaying = True
        self.sequence = 0
        self._uuid_counter = 0
        self.pending_actions: dict[int, OrchestratorAction] = {}
        self.pending_tasks: dict[int, CompletableTask[Any]] = {}
        self.task_names: dict[int, str] = {}
        self.result_types: dict[Task[Any], Any] = {}
        self.received: dict[str, deque[tuple[int, EventRaised]]] = {}
        self._arrivals = 0
        self.waiters: dict[str, deque[CancellableTask[Any]]] = {}
        self.custom_status: str | None = None
        self.started = False
        self.completion: CompleteOrchestration | None = None
        self._continue_as_new: tuple[str | None, bool] | None = None
        self.suspended = False
        self.suspended_events: list[HistoryEvent] = []
        self._generator: Generator[Any, Any, Any] | None = None
        self._awaiting: Task[Any] | None = None
        self._execution_id: str | None = None
        self.entities = OrchestrationEntities(self)

    # --- properties of the public API ----------------------------------------------------
    @property
    def instance_id(self) -> str:
        return self._instance_id

    @property
    def parent_instance_id(self) -> str | None:
        return self._parent_instance_id

    @property
    def version(self) -> str | None:
        return self._version

    @property
    def current_utc_datetime(self) -> datetime:
        return self.now

    @property
    def is_replaying(self) -> bool:
        return self.replaying

    @property
    def is_complete(self) -> bool:
        return self.completion is not None or self._continue_as_new is not None

    # --- scheduling ----------------------------------------------------------------------
    def _next_id(self) -> int:
        seq = self.sequence
        self.sequence += 1
        return seq

    def _schedule(self, template: OrchestratorAction, task: CompletableTask[Any]) -> None:
        """Record a (re)attempt of ``template`` under the next sequence number."""
        seq = self._next_id()
        self._track(replace(template, id=seq), task)

    def _track(self, action: OrchestratorAction, task: CompletableTask[Any]) -> None:
        self.pending_actions[action.id] = action
        self.pending_tasks[action.id] = task
        self.task_names[action.id] = getattr(action, "name", "")

    def _task_for(
        self, action: OrchestratorAction, retry_policy: RetryPolicy | None
    ) -> CompletableTask[Any]:
        if retry_policy is None:
            return CompletableTask()
        if not isinstance(retry_policy, RetryPolicy):
            raise TypeError(
                f"retry_policy must be a RetryPolicy, got {type(retry_policy).__qualname__}"
            )
        return RetryableTask(self, retry_policy, action)

    def call_activity(
        self,
        activity: Activity | str,
        *,
        input: Any = None,
        retry_policy: RetryPolicy | None = None,
        tags: dict[str, str] | None = None,
        return_type: Any = None,
    ) -> Task[Any]:
        name = self.registry.activity_name_of(activity)
        encoded = self.converter.serialize(input)
        action = ScheduleTask(id=self._next_id(), name=name, input=encoded, tags=tags)
        task = self._task_for(action, retry_policy)
        self._track(action, task)
        self._expect(task, return_type if return_type is not None else result_type(activity))
        return task

    def _expect(self, task: Task[Any], target_type: Any) -> None:
        """Remember the type ``task``'s payload is rebuilt as (see ``payload_type``)."""
        if target_type is not None:
            self.result_types[task] = target_type

    def payload_type(self, task: Task[Any]) -> Any:
        """The type asked for ``task``'s result or event data, or None for "as decoded"."""
        return self.result_types.get(task)

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
        name = self.registry.orchestrator_name_of(orchestrator)
        encoded = self.converter.serialize(input)
        seq = self._next_id()
        child_id = instance_id if instance_id is not None else f"{self._instance_id}:{seq:04x}"
        if not version and self.registry.versioning is not None:
            version = self.registry.versioning.default_version
        action = CreateSubOrchestration(
            id=seq, name=name, instance_id=child_id, input=encoded, version=version
        )
        task = self._task_for(action, retry_policy)
        self._track(action, task)
        self._expect(task, return_type)
        return task

    def create_timer(self, fire_at: datetime | timedelta) -> CancellableTask[None]:
        if isinstance(fire_at, timedelta):
            when = self.now + fire_at
        elif isinstance(fire_at, datetime):
            when = as_utc(fire_at)
        else:
            raise TypeError(
                f"fire_at must be a datetime or timedelta, got {type(fire_at).__qualname__}"
            )
        seq = self._next_id()
        task: CancellableTask[None] = CancellableTask()
        self.pending_actions[seq] = CreateTimer(id=seq, fire_at=when)
        self.pending_tasks[seq] = task

        def _cancel() -> None:
            self.pending_actions.pop(seq, None)
            self.pending_tasks.pop(seq, None)

        task.set_cancel_handler(_cancel)
        return task

    def wait_for_external_event(self, name: str, *, data_type: Any = None) -> CancellableTask[Any]:
        task: CancellableTask[Any] = CancellableTask()
        self._expect(task, data_type)
        self.await_event(name, task)
        return task

    def await_event(self, name: str, task: CancellableTask[Any]) -> None:
        """Complete ``task`` with the next event named ``name`` (buffered ones first)."""
        key = name.lower()
        buffered = self.received.get(key)
        if buffered:
            self._deliver(task, buffered.popleft()[1])
            return
        queue = self.waiters.setdefault(key, deque())
        queue.append(task)

        def _cancel() -> None:
            if task in queue:
                queue.remove(task)

        task.set_cancel_handler(_cancel)

    def event_raised(self, event: EventRaised) -> None:
        """Hand an external event to the oldest waiter for its name, or buffer it (FIFO)."""
        key = event.name.lower()
        queue = self.waiters.get(key)
        if queue:
            self._deliver(queue.popleft(), event)
        else:
            self.received.setdefault(key, deque()).append((self._arrivals, event))
            self._arrivals += 1

    def _deliver(self, task: CompletableTask[Any], event: EventRaised) -> None:
        if isinstance(task, EntityResponseTask):
            task.accept(event.input, self.converter)
            return
        try:
            value = deserialize_as(self.converter, event.input, self.payload_type(task))
        except Exception as exc:  # noqa: BLE001 - surfaced to the orchestrator code
            task.fail(exc)
        else:
            task.complete(value)

    def send_event(self, instance_id: str, event_name: str, *, data: Any = None) -> None:
        seq = self._next_id()
        self.pending_actions[seq] = SendEvent(
            id=seq, instance_id=instance_id, name=event_name, data=self.converter.serialize(data)
        )

    def send_raw(
        self, instance_id: str, event_name: str, data: str | None, scheduled_time: datetime | None
    ) -> None:
        """Record a ``SendEvent`` whose data is already serialized (entity requests)."""
        seq = self._next_id()
        self.pending_actions[seq] = SendEvent(
            id=seq,
            instance_id=instance_id,
            name=event_name,
            data=data,
            scheduled_time=as_utc(scheduled_time) if scheduled_time is not None else None,
        )

    @property
    def sender_key(self) -> str:
        """Names this execution as the sender of entity requests (orders its requests)."""
        return f"{self._instance_id}:{self._execution_id}"

    def signal_entity(
        self,
        entity_id: EntityInstanceId,
        operation_name: str,
        input: Any = None,
        signal_time: datetime | None = None,
    ) -> None:
        self.entities.signal(entity_id, operation_name, input, signal_time)

    def call_entity(
        self,
        entity: EntityInstanceId,
        operation: str,
        input: Any = None,
        *,
        return_type: Any = None,
    ) -> Task[Any]:
        return self.entities.call(entity, operation, input, return_type)

    def lock_entities(self, entities: list[EntityInstanceId]) -> Task[EntityLock]:
        return self.entities.lock(entities)

    def _exit_critical_section(self) -> None:
        self.entities.exit_critical_section()

    def continue_as_new(self, new_input: Any, *, save_events: bool = False) -> None:
        if self.is_complete:
            return
        # The next generation is another sender: locks this one holds would never be left.
        self.entities.exit_critical_section()
        self._continue_as_new = (self.converter.serialize(new_input), save_events)

    def _set_custom_status(self, custom_status: Any) -> None:
        self.custom_status = self.converter.serialize(custom_status)

    def new_uuid(self) -> str:
        name = f"{self._instance_id}_{self.now.strftime(_UUID_TIME_FORMAT)}_{self._uuid_counter}"
        self._uuid_counter += 1
        return str(uuid.uuid5(_UUID_NAMESPACE, name))

    # --- running the code ----------------------------------------------------------------
    def start(self, event: ExecutionStarted) -> None:
        """Run the orchestrator up to its first yield (or to its end)."""
        self.started = True
        self.name = event.name
        self._execution_id = event.instance.execution_id
        self._version = event.version
        self._parent_instance_id = event.parent.instance.instance_id if event.parent else None
        if self._refused_version(event):
            return
        fn = self.registry.get_orchestrator(event.name)
        if fn is None:
            known = ", ".join(self.registry.orchestrator_names) or "none"
            self.fail(
                OrchestratorNotRegisteredError(
                    f"orchestrator {event.name!r} is not registered with this worker "
                    f"(registered orchestrators: {known})"
                )
            )
            return
        try:
            result = fn(self, self._decode_input(fn, event.input))
        except Exception as exc:  # noqa: BLE001 - user code: fail the instance
            self.fail(exc)
            return
        if isinstance(result, types.GeneratorType):
            self._generator = result
            self._step(None)
            self.resume()
        elif not self.is_complete:
            self.succeed(result)

    def _decode_input(self, fn: Orchestrator, data: str | None) -> Any:
        """The input as the orchestrator's annotation asks; a mismatch names the orchestrator."""
        try:
            return deserialize_as(self.converter, data, input_type(fn))
        except PayloadTypeError as exc:
            raise PayloadTypeError(f"input of orchestrator {self.name!r}: {exc}") from exc

    def resume(self) -> None:
        """Feed completed tasks back into the generator until it waits on a pending one.

        Iterative on purpose: yielding many already-completed tasks in a row (a fan-in loop)
        must not grow the Python stack.
        """
        while self._generator is not None and not self.is_complete:
            awaited = self._awaiting
            if awaited is None or not awaited.is_complete:
                return
            self._step(awaited)

    def _step(self, awaited: Task[Any] | None) -> None:
        gen = self._generator
        assert gen is not None
        try:
            if awaited is None:
                yielded = next(gen)
            elif awaited._exception is not None:
                yielded = gen.throw(awaited._exception)
            else:
                yielded = gen.send(awaited._result)
        except StopIteration as stop:
            self._generator = None
            if not self.is_complete:
                self.succeed(stop.value)
            return
        except Exception as exc:  # noqa: BLE001 - user code: fail the instance
            self._generator = None
            self.fail(exc)
            return
        if self.is_complete:
            self._generator = None
            return
        if not isinstance(yielded, Task):
            self._generator = None
            self.fail(
                TypeError(
                    f"orchestrator {self.name!r} yielded a {type(yielded).__qualname__}; "
                    "orchestrators must yield tasks (ctx.call_activity(...), when_all(...), ...)"
                )
            )
            return
        self._awaiting = yielded

    # --- completion ----------------------------------------------------------------------
    def succeed(self, result: Any) -> None:
        try:
            encoded = self.converter.serialize(result)
        except TypeError as exc:
            self.fail(
                NonSerializableResultError(
                    f"orchestrator {self.name!r} returned a value that cannot be serialized: {exc}"
                )
            )
            return
        self._complete(OrchestrationStatus.COMPLETED, result=encoded)

    def _refused_version(self, event: ExecutionStarted) -> bool:
        """Apply the worker's versioning: True when the instance failed for its version.

        Raises ``VersionRejected`` under the ``REJECT`` strategy (the item goes back untouched).
        """
        versioning = self.registry.versioning
        mismatch = versioning.mismatch(event.version) if versioning is not None else None
        if versioning is None or mismatch is None:
            return False
        if versioning.failure_strategy is VersionFailureStrategy.REJECT:
            raise VersionRejected(mismatch.message)
        self._complete(OrchestrationStatus.FAILED, failure=mismatch)
        return True

    def fail(self, error: BaseException) -> None:
        self._complete(OrchestrationStatus.FAILED, failure=FailureDetails.from_exception(error))

    def terminate(self, reason: str | None) -> None:
        """Terminated from outside: end now, and drop decisions not yet sent.

        Termination wins over a completion the code reached earlier in the same episode
        (as in DTFx, where a batch holding ExecutionTerminated does not run the code): the
        client asked for it before it could observe that completion.
        """
        self.pending_actions.clear()
        self._continue_as_new = None
        self.completion = None
        self._generator = None
        self._complete(OrchestrationStatus.TERMINATED, result=reason)

    def _complete(
        self,
        status: OrchestrationStatus,
        *,
        result: str | None = None,
        failure: FailureDetails | None = None,
    ) -> None:
        if self.is_complete:
            return
        # Ending inside a critical section (a lock taken and never left, a failure, a
        # termination) releases its locks, or the entities would wait for this instance forever.
        self.entities.exit_critical_section()
        self._generator = None
        self.completion = CompleteOrchestration(
            id=self._next_id(), status=status, result=result, failure_details=failure
        )

    def actions(self) -> list[OrchestratorAction]:
        """The decisions not matched by history: the output of this replay."""
        actions = list(self.pending_actions.values())
        if self._continue_as_new is not None:
            new_input, save_events = self._continue_as_new
            carryover: tuple[HistoryEvent, ...] = ()
            if save_events:
                buffered = sorted(
                    (i for q in self.received.values() for i in q), key=lambda i: i[0]
                )
                carryover = tuple(event for _, event in buffered)
            actions.append(
                CompleteOrchestration(
                    id=self.sequence,
                    status=OrchestrationStatus.CONTINUED_AS_NEW,
                    result=new_input,
                    carryover_events=carryover,
                )
            )
        elif self.completion is not None:
            actions.append(self.completion)
        return actions
