"""The storage seam: what the worker and client need from a backend, and nothing more.

Contract shared by every implementation (checked by ``durable_azstorage.testing.conformance``,
which runs on both backends and on any other):

* **At-least-once delivery.** A message is delivered until a completion that consumed it
  succeeds. A work item whose lock expires (not renewed, not completed) is delivered again,
  with ``dequeue_count`` incremented (it counts deliveries, starting at 1). Duplicates are
  never dropped by the backend: the same event sent twice is delivered twice (replay
  ignores the second).
* **One work item per instance.** While an orchestration work item is locked, no other work
  item for that instance is handed out; messages that arrive meanwhile wait for the next one.
  A work item carries every deliverable message of its instance, in enqueue order, with the
  ``ExecutionStarted`` first when the execution has no history yet.
* **Start before anything else.** Messages for an instance without committed history wait
  until its ``ExecutionStarted`` is deliverable (an event raised to a Pending instance whose
  start is scheduled later waits for the start). Messages for an instance that does not exist
  and has no start message queued are dropped (logged), never delivered. Messages are *not*
  filtered by execution: a work item may hold messages addressed to an older execution
  (``message.instance.execution_id``); the worker discards those.
* **ETag-guarded completion.** ``complete_orchestration`` commits only if the instance's
  history is unchanged since the work item was locked; otherwise it raises
  ``ConcurrencyConflictError`` and sends nothing. The losing caller abandons. Anything that
  rewrites the history (another commit, a replacing ``create_instance``, a purge) counts.
* **Lock tokens** are opaque and owned by the backend; a completion, renewal or abandon with
  an expired, already used or foreign lock raises ``LockLostError`` (an implementation
  checks its own lock deadline before committing, even if nobody else took the item yet).
* **Visibility.** A message with ``visible_at()`` in the future is not delivered before then;
  ``abandon_*(delay=...)`` hides the messages for that long.
* **Checkpoint order** (ARCHITECTURE.md §5): history, then outbound messages, then the instance
  state, then deletion of the consumed messages. A commit is validated (serialized) before the
  first write: one that cannot be stored raises ``ValueError`` and changes nothing.
* **Timeouts** given to ``lock_next_*`` are real seconds; the call returns as soon as work is
  available (an enqueue by this process wakes it at once) and returns None at once after
  ``stop()``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Protocol, runtime_checkable

from durable_azstorage.backend.clock import Clock
from durable_azstorage.model.archive import EndedExecution
from durable_azstorage.model.history import HistoryEvent, OrchestrationInstance, TaskScheduled
from durable_azstorage.model.messages import TaskMessage
from durable_azstorage.model.query import OrchestrationQuery, Page
from durable_azstorage.model.scale import HubSample
from durable_azstorage.model.stale import StaleInstance
from durable_azstorage.model.state import InstanceState, OrchestrationIdReusePolicy
from durable_azstorage.model.taskhub import TaskHubInfo
from durable_azstorage.model.trace import TraceContext


@dataclass(frozen=True, slots=True, kw_only=True)
class OrchestrationWorkItem:
    """New messages for one instance plus the history they apply to.

    ``history`` is the committed history of the instance's current execution (empty for a
    new instance). ``messages`` are in delivery order. ``dequeue_count`` is the highest
    delivery count among ``messages`` (poison detection). ``quarantined`` names the copies a
    backend kept aside of over-delivered messages (the Azure backend's poison store keys),
    so the failure it leads to can say where to look.
    """

    instance_id: str
    history: tuple[HistoryEvent, ...]
    messages: tuple[TaskMessage, ...]
    lock_token: object
    dequeue_count: int = 1
    quarantined: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class ActivityWorkItem:
    """One activity request, scheduled by ``instance`` as task ``task_id`` (its
    ``schedule_index``-th scheduling; the answer must carry it back)."""

    instance: OrchestrationInstance
    task_id: int
    name: str
    input: str | None
    lock_token: object
    dequeue_count: int = 1
    version: str | None = None
    tags: dict[str, str] | None = None
    schedule_index: int | None = None
    trace_context: TraceContext | None = None

    @classmethod
    def from_message(
        cls, message: TaskMessage, *, lock_token: object, dequeue_count: int
    ) -> ActivityWorkItem:
        event = message.event
        if not isinstance(event, TaskScheduled):
            raise TypeError(f"not an activity request: {type(event).__name__}")
        return cls(
            instance=message.instance,
            task_id=event.event_id,
            name=event.name,
            input=event.input,
            version=event.version,
            tags=event.tags,
            lock_token=lock_token,
            dequeue_count=dequeue_count,
            schedule_index=event.schedule_index,
            trace_context=event.trace_context,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class OrchestrationCommit:
    """Everything one orchestration episode produced, committed as one unit.

    ``new_events`` are appended to the history of the execution the work item was locked
    on. When ``new_execution`` is set (continue-as-new), ``new_events`` instead *replace*
    the history: they hold the new generation's ``ExecutionStarted`` and the previous
    generation's rows must not be read back.

    ``state`` is the instance state after the episode (for the Instances index).
    ``ended_executions`` are the executions this episode ended by continue-as-new or replaced
    (restart), oldest first: the backend archives the newest of them before its first
    write, so they stay readable (``ExecutionArchive``; ``model.archive``).
    Messages: ``activity_messages`` go to the work-item queue, ``orchestrator_messages`` to
    other instances' control queues, ``timer_messages`` to this instance's control queue,
    delayed until their ``visible_at()``.
    """

    new_events: tuple[HistoryEvent, ...]
    state: InstanceState
    activity_messages: tuple[TaskMessage, ...] = field(default=())
    orchestrator_messages: tuple[TaskMessage, ...] = field(default=())
    timer_messages: tuple[TaskMessage, ...] = field(default=())
    new_execution: bool = False
    ended_executions: tuple[EndedExecution, ...] = field(default=())

    @property
    def outbound_messages(self) -> tuple[TaskMessage, ...]:
        return self.activity_messages + self.orchestrator_messages + self.timer_messages

    def check_for(self, instance_id: str) -> None:
        """Raise ``ValueError`` if this commit cannot belong to a work item of ``instance_id``
        (its state is another instance's, or an activity message is not an activity request);
        every backend checks this before its first write."""
        if self.state.instance_id != instance_id:
            raise ValueError(
                f"commit.state is for {self.state.instance_id!r}, the work item for {instance_id!r}"
            )
        for request in self.activity_messages:
            if not request.is_activity_request:
                raise ValueError(f"activity_messages holds a {type(request.event).__name__}")


@runtime_checkable
class Backend(Protocol):
    """Async storage for task hubs. Implementations: ``InMemoryBackend``, ``AzureStorageBackend``."""

    # --- task hub -------------------------------------------------------------------------
    async def create_task_hub(self) -> None:
        """Create every resource of the hub; idempotent and safe to call concurrently."""

    async def delete_task_hub(self) -> None:
        """Delete every resource of the hub; a missing hub is not an error."""

    async def get_task_hub_info(self) -> TaskHubInfo:
        """The hub's stored partition count, creation time and resources (``missing`` lists
        absent ones). Raises ``TaskHubNotFoundError`` when the hub does not exist."""
        ...

    async def list_task_hubs(self) -> list[TaskHubInfo]:
        """Every task hub in the same storage (account), ``missing`` unchecked."""
        ...

    async def start(self) -> None:
        """Connect and begin receiving. Raises ``TaskHubNotFoundError`` or
        ``PartitionCountMismatchError`` when the hub is missing or configured differently."""

    async def stop(self) -> None:
        """Stop receiving and release resources; locked work items are left to expire."""

    # --- client side ----------------------------------------------------------------------
    async def create_instance(
        self, start: TaskMessage, *, reuse_policy: OrchestrationIdReusePolicy | None = None
    ) -> bool:
        """Record a Pending instance and enqueue its ``ExecutionStarted`` message.

        ``start.event`` must be an ``ExecutionStarted``; it is delivered at its
        ``scheduled_start_time`` (if any). Without a policy, an existing Pending, Running or
        Suspended instance is refused and an ended one replaced; with one, ``action`` applies
        to the listed statuses and other statuses are replaced (``backend.reuse.may_replace``).
        Replacing drops the previous execution's history at once (its state becomes the new
        Pending one, and a worker still holding the old execution loses its ETag race).

        Returns False when ``reuse_policy`` says to ignore the request (nothing written).
        Raises ``OrchestrationAlreadyExistsError`` when the id is in use and may not be reused,
        ``InvalidIdentifierError`` when the id breaks a rule of ``model.identifiers``.
        """
        ...

    async def send_message(self, message: TaskMessage) -> None:
        """Enqueue a message for an orchestration (event, terminate, suspend, resume).

        Does not check that the instance exists (one queue write); see "Start before anything
        else" above for what happens to messages for unknown instances. A ``TaskScheduled``
        message goes to the activity queue. Raises ``InvalidIdentifierError`` for an instance
        id that breaks a rule of ``model.identifiers``.
        """

    async def get_instance(
        self, instance_id: str, *, fetch_payloads: bool = True
    ) -> InstanceState | None:
        """The latest execution's state, or None if the instance does not exist.

        With ``fetch_payloads=False`` the ``input`` and ``output`` are left out (None);
        custom status and failure details are always returned.
        """
        ...

    async def get_history(self, instance_id: str) -> list[HistoryEvent]:
        """The committed history of the current execution (empty if unknown)."""
        ...

    async def query_instances(self, query: OrchestrationQuery) -> Page[InstanceState]:
        """One page of instances matching ``query``; follow ``continuation_token``.

        Filters combine with AND (several statuses with OR; the created range is inclusive).
        Following the tokens visits every instance that existed throughout exactly once.
        A token is opaque; a malformed one raises ``ValueError``. ``fetch_inputs_and_outputs``
        False leaves out ``input`` and ``output``.
        """
        ...

    async def purge_instance(self, instance_id: str) -> bool:
        """Delete history, state and payloads of one instance. True if it existed.

        Idempotent (False the second time). Does not look at the status (the client only
        purges ended instances) and leaves queued messages, which are then dropped on delivery.
        """
        ...

    async def replace_history(
        self, instance_id: str, history: Sequence[HistoryEvent], state: InstanceState
    ) -> None:
        """Rewrite the current execution's history and the instance state (used by rewind).

        ``history`` replaces the stored events of the execution named by
        ``state.execution_id``, which must be the stored one; the write counts as a history
        change for ETag-guarded completions (a worker holding the old history loses). Nothing
        is enqueued: the caller sends the message that makes a worker continue.

        Raises ``OrchestrationNotFoundError`` when the instance does not exist and
        ``ConcurrencyConflictError`` when its current execution is not ``state.execution_id``
        (nothing written). Raises ``ValueError`` before any write if an event cannot be stored.
        """

    # --- orchestration work items --------------------------------------------------------
    async def lock_next_orchestration(self, timeout: float) -> OrchestrationWorkItem | None:
        """Wait up to ``timeout`` seconds for an orchestration work item; None if none came."""
        ...

    async def renew_orchestration(self, item: OrchestrationWorkItem) -> None:
        """Extend the lock. Raises ``LockLostError`` if it already expired."""

    async def complete_orchestration(
        self, item: OrchestrationWorkItem, commit: OrchestrationCommit
    ) -> None:
        """Commit the episode, send its messages, consume the item's messages, release the lock.

        ``commit.new_events`` may be empty (e.g. every message was stale): the messages are
        still consumed and the state written. Raises ``ConcurrencyConflictError`` (nothing
        committed or sent) or ``LockLostError``. The caller then abandons the item so that
        its messages come back soon; that abandon raises ``LockLostError`` as well when the
        lock is already gone, which callers ignore (the messages come back on lock expiry).
        """

    async def abandon_orchestration(
        self, item: OrchestrationWorkItem, *, delay: timedelta | None = None, deferred: bool = False
    ) -> None:
        """Release the item's messages for redelivery after ``delay`` (default: at once).

        ``deferred``: the worker gave the item back by choice (a version it rejects, no SDK
        worker able to take it), not because processing failed: the next delivery's
        ``dequeue_count`` does not count this one, so deferring never leads to poison.
        Raises ``LockLostError`` if the lock expired or is foreign.
        """

    # --- activity work items --------------------------------------------------------------
    async def lock_next_activity(self, timeout: float) -> ActivityWorkItem | None:
        """Wait up to ``timeout`` seconds for an activity request; None if none came."""
        ...

    async def renew_activity(self, item: ActivityWorkItem) -> None:
        """Extend the lock. Raises ``LockLostError`` if it already expired."""

    async def complete_activity(self, item: ActivityWorkItem, result: TaskMessage) -> None:
        """Send ``result`` (TaskCompleted/TaskFailed) to the orchestration, then consume the
        request. Raises ``LockLostError`` if the lock expired (the result is still sent:
        duplicates are ignored by replay) or is foreign (nothing is sent)."""

    async def abandon_activity(
        self, item: ActivityWorkItem, *, delay: timedelta | None = None, deferred: bool = False
    ) -> None:
        """Release the request for redelivery after ``delay`` (default: at once).

        ``deferred`` as for ``abandon_orchestration``: this delivery never counts toward poison.
        Raises ``LockLostError`` if the lock expired or is foreign.
        """


class BackendSettings(Protocol):
    """Settings that build a backend (``AzureStorageSettings``): what the client and the
    worker accept instead of a ``Backend``."""

    def create_backend(self) -> Backend: ...


# --- optional capabilities ------------------------------------------------------------------
# What some backends or settings offer beyond the protocol above. Callers test for them with
# ``isinstance`` and fall back to a default when absent.


@runtime_checkable
class LockTimeout(Protocol):
    """A backend whose locks expire after a known time: the worker renews at a third of it."""

    @property
    def lock_timeout(self) -> timedelta: ...


@runtime_checkable
class OwnClock(Protocol):
    """A backend that keeps its own time (the in-memory one, on a fake clock in tests): the
    worker stamps episodes with it, so history and lock expiry agree."""

    @property
    def clock(self) -> Clock: ...


@runtime_checkable
class CheckpointHooks(Protocol):
    """A backend that awaits ``checkpoint_hook(step, instance_id)`` after each checkpoint step
    (both of ours; a test seam): the torture test makes a worker die right there."""

    checkpoint_hook: Callable[[str, str], Awaitable[None]] | None


@runtime_checkable
class IndexRepair(Protocol):
    """A backend whose instance index can disagree with the history after a crash (Azure's
    Instances table): the client's stale-index tooling needs it."""

    async def find_stale_instances(self) -> list[StaleInstance]: ...

    async def repair_stale_instances(
        self, stale: Sequence[StaleInstance] | None = None
    ) -> list[StaleInstance]: ...


@runtime_checkable
class SettingsBacked(Protocol):
    """A backend built from settings it keeps (``AzureStorageBackend.settings``)."""

    @property
    def settings(self) -> object: ...


@runtime_checkable
class DeliveryLimit(Protocol):
    """Settings that carry the poison threshold (``AzureStorageSettings.max_dequeue_count``)."""

    @property
    def max_dequeue_count(self) -> int: ...


@runtime_checkable
class NamedHub(Protocol):
    """Settings that name their task hub (``AzureStorageSettings.task_hub``)."""

    @property
    def task_hub(self) -> str: ...


@runtime_checkable
class QueueSampling(Protocol):
    """A backend that can look at its queues (both of ours): each control-queue partition's
    approximate length and oldest visible message's age, the same for the work-item queue.
    The scale advice and the hub gauges judge these."""

    async def sample_queues(self) -> HubSample: ...


@runtime_checkable
class ExecutionArchive(Protocol):
    """A backend that keeps the histories of earlier executions (both of ours): the newest
    ``archived_executions`` per instance that continue-as-new or a restart replaced."""

    async def get_execution_history(
        self, instance_id: str, execution_id: str
    ) -> list[HistoryEvent] | None:
        """The history of execution ``execution_id`` (the current one or an archived one),
        or None if it is not kept (never existed, dropped by retention, or purged)."""
        ...

    async def list_executions(self, instance_id: str) -> list[str]:
        """Execution ids whose history is kept, oldest first, the current one last (empty
        for an unknown instance)."""
        ...
