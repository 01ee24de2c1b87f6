"""Connected SDK workers (one per ``GetWorkItems`` stream) and the work items they hold.

A work item handed to a stream is *pending* under a fresh completion token until the SDK
answers (``complete``), gives it back (``abandon``) or goes away (``disconnect``): the
awaiting executor then gets the answer or ``ExecutionAbandoned``, and the engine completes or
abandons the backend's work item. Nothing is ever dropped silently.

Each stream accepts at most as many items of a kind as its ``GetWorkItemsRequest`` allows;
``Slots`` turns the free capacity of all streams into the engine's ``Admission``, so the
engine locks work only while somebody can run it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from durabletask.internal import orchestrator_service_pb2 as pb

from durable_azstorage.replay.executor import ExecutionAbandoned
from durable_azstorage.sidecar.filters import WorkItemFilter

Kind = Literal["orchestration", "activity"]
KINDS: tuple[Kind, Kind] = ("orchestration", "activity")


class CompletionError(LookupError):
    """A completion or abandon the sidecar cannot match; ``code`` is the gRPC status name."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(eq=False)
class WorkerStream:
    """One connected SDK worker: what it may hold, what it holds, what is queued for it."""

    number: int
    limits: dict[Kind, int]
    queue: asyncio.Queue[pb.WorkItem | None] = field(default_factory=asyncio.Queue)
    in_flight: dict[Kind, int] = field(default_factory=lambda: {"orchestration": 0, "activity": 0})
    tokens: set[str] = field(default_factory=set)
    open: bool = True
    filter: WorkItemFilter | None = None

    def has_room(self, kind: Kind) -> bool:
        return self.open and self.in_flight[kind] < self.limits[kind]

    def accepts(self, kind: str, name: str, version: str | None) -> bool:
        """The stream's work-item filters let this item through (no filters: everything)."""
        return self.open and (self.filter is None or self.filter.accepts(kind, name, version))

    def load(self, kind: Kind) -> float:
        return self.in_flight[kind] / self.limits[kind]

    async def items(self, ping_interval: float) -> AsyncIterator[pb.WorkItem]:
        """The work items to send, with a ``healthPing`` after ``ping_interval`` idle seconds
        (the Python SDK reconnects after 120 s without a message)."""
        getter: asyncio.Task[pb.WorkItem | None] | None = None
        try:
            while True:
                getter = getter or asyncio.ensure_future(self.queue.get())
                done, _ = await asyncio.wait({getter}, timeout=ping_interval)
                if not done:
                    yield pb.WorkItem(healthPing=pb.HealthPing())
                    continue
                item, getter = getter.result(), None
                if item is None:
                    return
                yield item
        finally:
            if getter is not None:
                getter.cancel()


@dataclass(eq=False)
class _Pending:
    token: str
    kind: Kind
    instance_id: str
    what: str
    stream: WorkerStream
    future: asyncio.Future[Any]


class WorkerStreams:
    """All connected SDK workers of one sidecar, and the work items pending at them."""

    def __init__(
        self,
        *,
        default_limits: dict[Kind, int],
        ceilings: dict[Kind, int],
        dispatch_wait: float,
        logger: logging.Logger,
    ) -> None:
        self._default_limits = default_limits
        self._ceilings = ceilings
        self._dispatch_wait = dispatch_wait
        self._log = logger
        self._streams: list[WorkerStream] = []
        self._pending: dict[str, _Pending] = {}
        self._numbers = itertools.count(1)
        self._changed = asyncio.Event()  # set and replaced on every change (see _until)
        self._closed = False

    # --- streams -----------------------------------------------------------------------------
    @property
    def closed(self) -> bool:
        return self._closed

    def connect(self, request: pb.GetWorkItemsRequest) -> WorkerStream:
        """Register a new stream; its limits come from the request (0 = our default)."""
        limits: dict[Kind, int] = {
            "orchestration": request.maxConcurrentOrchestrationWorkItems
            or self._default_limits["orchestration"],
            "activity": request.maxConcurrentActivityWorkItems or self._default_limits["activity"],
        }
        stream = WorkerStream(
            number=next(self._numbers), limits=limits, filter=WorkItemFilter.from_request(request)
        )
        self._streams.append(stream)
        self.notify()
        return stream

    def disconnect(self, stream: WorkerStream) -> None:
        """The stream ended: every item it held is abandoned (and delivered again)."""
        if stream not in self._streams:
            return
        stream.open = False
        self._streams.remove(stream)
        lost = [self._pending[t] for t in list(stream.tokens) if t in self._pending]
        for pending in lost:
            self._fail(pending, f"SDK worker stream {stream.number} disconnected while holding it")
        if lost:
            self._log.warning(
                "SDK worker stream %d disconnected holding %d work item(s); they will be delivered again: %s",
                stream.number,
                len(lost),
                ", ".join(p.what for p in lost),
            )
        self.notify()

    def capacity(self, kind: Kind) -> int:
        """How many items of ``kind`` the connected workers accept in total (capped)."""
        if self._closed:
            return 0
        return min(self._ceilings[kind], sum(s.limits[kind] for s in self._streams if s.open))

    @property
    def connected(self) -> int:
        return len(self._streams)

    @property
    def pending_count(self) -> int:
        return len(self._pending)

    # --- work --------------------------------------------------------------------------------
    async def dispatch(
        self,
        kind: Kind,
        item: pb.WorkItem,
        *,
        instance_id: str,
        what: str,
        name: str,
        version: str | None = None,
        filtered_as: str | None = None,
    ) -> Any:
        """Send ``item`` to the least busy stream with room whose work-item filters accept
        ``name`` and ``version`` (as a ``filtered_as`` item, by default ``kind``: an entity
        batch takes an orchestration slot but is filtered by entity name); return the SDK's
        response message.

        Raises ``ExecutionAbandoned`` when no connected stream's filters accept the item
        (deferred: it is never sent), when no accepting stream has room within
        ``dispatch_wait`` seconds, when the stream disconnects or the SDK abandons the item,
        or when the sidecar stops.
        """
        stream = await self._stream_with_room(kind, what, name, version, filtered_as or kind)
        token = uuid.uuid4().hex
        item.completionToken = token
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        pending = _Pending(
            token=token, kind=kind, instance_id=instance_id, what=what, stream=stream, future=future
        )
        self._pending[token] = pending
        stream.tokens.add(token)
        stream.in_flight[kind] += 1
        stream.queue.put_nowait(item)
        try:
            return await future
        finally:
            self._pending.pop(token, None)
            stream.tokens.discard(token)
            stream.in_flight[kind] -= 1
            self.notify()

    async def _stream_with_room(
        self, kind: Kind, what: str, name: str, version: str | None, filtered_as: str
    ) -> WorkerStream:
        def accepting() -> list[WorkerStream]:
            return [s for s in self._streams if s.accepts(filtered_as, name, version)]

        def ready() -> bool:
            return self._closed or any(s.has_room(kind) for s in accepting())

        if self._streams and not accepting():
            raise ExecutionAbandoned(
                f"no connected SDK worker's work-item filters accept {what} (version "
                f"{version!r}); it stays queued for a worker that does",
                deferred=True,
            )
        await self._until(ready, self._dispatch_wait)
        if self._closed:
            raise ExecutionAbandoned(
                f"the sidecar is stopping; {what} was not sent to an SDK worker", deferred=True
            )
        candidates = [s for s in accepting() if s.has_room(kind)]
        if not candidates:
            raise ExecutionAbandoned(
                f"no connected SDK worker had room for {what} within {self._dispatch_wait:.0f}s",
                deferred=True,
            )
        return min(candidates, key=lambda s: s.load(kind))

    def complete(self, kind: Kind, token: str, response: Any, *, instance_id: str | None) -> None:
        """Resolve the pending item ``token`` with the SDK's response."""
        pending = self._take(kind, token)
        if instance_id and instance_id != pending.instance_id:
            self._pending[token] = pending  # keep waiting for the right answer
            raise CompletionError(
                "INVALID_ARGUMENT",
                f"completion token {token!r} belongs to instance {pending.instance_id!r}, "
                f"but the response names instance {instance_id!r}",
            )
        if not pending.future.done():
            pending.future.set_result(response)

    def abandon(self, kind: Kind, token: str) -> None:
        """The SDK gave the item back: it is abandoned in the backend and delivered again."""
        pending = self._take(kind, token)
        # The SDK abandons by choice (a version its REJECT strategy refuses, or it is shutting
        # down), never because the item failed: deferred, so it never counts toward poison.
        self._fail(pending, "the SDK worker abandoned it", deferred=True)

    def abandon_all(self, reason: str) -> int:
        """Give every pending item back (the sidecar is stopping); returns how many."""
        pending = list(self._pending.values())
        for p in pending:
            self._fail(p, reason, deferred=True)
        return len(pending)

    def close(self) -> None:
        """Refuse new work and end every stream (the SDK workers reconnect elsewhere)."""
        self._closed = True
        for stream in self._streams:
            stream.open = False
            stream.queue.put_nowait(None)
        self.notify()

    async def wait_idle(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds until no item is pending; True if none is."""
        return await self._until(lambda: not self._pending, timeout)

    async def wait_changed(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for ``predicate`` (re-checked on every change)."""
        return await self._until(predicate, timeout)

    async def _until(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for ``predicate``, re-checked after every change.

        No lock is held while waiting: on Python < 3.12 ``asyncio.wait_for`` around
        ``Condition.wait`` could be cancelled while the inner wait re-acquired the lock, so
        ``async with`` released a lock it did not hold ("Lock is not acquired") and the lock
        stayed taken, hanging every later waiter (the sidecar's stop hung for minutes).
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not predicate():
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except asyncio.TimeoutError:
                return predicate()
        return True

    # --- internals ---------------------------------------------------------------------------
    def _take(self, kind: Kind, token: str) -> _Pending:
        pending = self._pending.get(token)
        if pending is None:
            raise CompletionError(
                "NOT_FOUND",
                f"no {kind} work item is waiting for completion token {token!r}: it was already "
                "completed or abandoned, its SDK worker stream disconnected, or the sidecar restarted",
            )
        if pending.kind != kind:
            raise CompletionError(
                "FAILED_PRECONDITION",
                f"completion token {token!r} belongs to an {pending.kind} work item ({pending.what}), "
                f"not to an {kind} work item",
            )
        del self._pending[token]
        return pending

    def _fail(self, pending: _Pending, reason: str, *, deferred: bool = False) -> None:
        self._pending.pop(pending.token, None)
        if not pending.future.done():
            pending.future.set_exception(
                ExecutionAbandoned(f"{pending.what}: {reason}", deferred=deferred)
            )

    def notify(self) -> None:
        """Wake everyone waiting for a change (room, capacity, idleness)."""
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()


class Slots:
    """The engine's ``Admission`` for one kind: as many slots as the connected workers accept."""

    def __init__(self, streams: WorkerStreams, kind: Kind) -> None:
        self._streams = streams
        self._kind = kind
        self._used = 0

    async def acquire(self, timeout: float) -> bool:
        def free() -> bool:
            return self._used < self._streams.capacity(self._kind)

        if not await self._streams.wait_changed(free, timeout):
            return False
        self._used += 1
        return True

    def release(self) -> None:
        self._used -= 1
        self._streams.notify()


def answer_within(work: concurrent.futures.Future[Any], timeout: float | None, what: str) -> Any:
    """Block the episode thread until a dispatched item is answered; a worker that does not
    answer within ``timeout`` (or a cancelled dispatch) abandons the item, to be redelivered."""
    try:
        return work.result(timeout)
    except concurrent.futures.TimeoutError:
        work.cancel()
        raise ExecutionAbandoned(
            f"{what}: no answer from the SDK worker within {timeout or 0:.0f}s"
        ) from None
    except concurrent.futures.CancelledError:
        raise ExecutionAbandoned(f"{what}: cancelled while waiting for the SDK worker") from None
