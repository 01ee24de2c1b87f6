"""Durable tasks: what orchestrator code yields, and the ``when_all`` / ``when_any`` combinators.

A task is completed by the replay engine when the history event that answers it is
processed; the orchestrator generator is resumed with the task's result (or the error is
thrown into it). Tasks are plain objects without an event loop, so replay needs no asyncio.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Generic, Protocol, TypeVar

from durable_azstorage.authoring.errors import TaskCancelledError

T = TypeVar("T")


class _Parent(Protocol):
    def on_child_completed(self, task: Task[Any]) -> None: ...


class Task(Generic[T]):
    """A unit of durable work whose result arrives through history."""

    __slots__ = ("_is_complete", "_result", "_exception", "_parents")

    def __init__(self) -> None:
        self._is_complete = False
        self._result: Any = None
        self._exception: BaseException | None = None
        self._parents: list[_Parent] = []

    @property
    def is_complete(self) -> bool:
        return self._is_complete

    @property
    def is_failed(self) -> bool:
        """True when the task completed with an error (including cancellation)."""
        return self._exception is not None

    @property
    def result(self) -> T:
        return self.get_result()

    def get_result(self) -> T:
        """The result; raises the task's error if it failed, ``ValueError`` if still pending."""
        if not self._is_complete:
            raise ValueError("the task has not completed yet")
        if self._exception is not None:
            raise self._exception
        return self._result  # type: ignore[no-any-return]

    def get_exception(self) -> BaseException:
        if self._exception is None:
            raise ValueError("the task has not failed")
        return self._exception

    def _add_parent(self, parent: _Parent) -> None:
        self._parents.append(parent)

    def _finish(self, result: Any, exception: BaseException | None) -> None:
        if self._is_complete:
            raise ValueError("the task has already completed")
        self._result = result
        self._exception = exception
        self._is_complete = True
        for parent in self._parents:
            parent.on_child_completed(self)


class CompletableTask(Task[T]):
    """A task completed from outside (by the replay engine)."""

    __slots__ = ()

    def complete(self, result: T) -> None:
        self._finish(result, None)

    def fail(self, exception: BaseException) -> None:
        self._finish(None, exception)


class CancellableTask(CompletableTask[T]):
    """A task the orchestrator may give up on (external-event waits, timers)."""

    __slots__ = ("_is_cancelled", "_cancel_handler")

    def __init__(self) -> None:
        super().__init__()
        self._is_cancelled = False
        self._cancel_handler: Callable[[], None] | None = None

    @property
    def is_cancelled(self) -> bool:
        return self._is_cancelled

    def set_cancel_handler(self, handler: Callable[[], None]) -> None:
        self._cancel_handler = handler

    def cancel(self) -> bool:
        """Cancel the task; False if it had already completed. Waiting on it then raises
        ``TaskCancelledError``; a later matching event no longer reaches it."""
        if self._is_complete:
            return False
        if self._cancel_handler is not None:
            self._cancel_handler()
        self._is_cancelled = True
        self._finish(None, TaskCancelledError("the task was cancelled"))
        return True


class WhenAllTask(Task[list[T]]):
    """Completes when every child completed. If any failed, it fails only then, with the
    failure of the first failed child *in the order given* — what ``await Task.WhenAll``
    raises in .NET (the first inner exception, in task order) — so the outcome does not
    depend on which activity happened to finish first."""

    __slots__ = ("_tasks", "_completed")

    def __init__(self, tasks: Sequence[Task[T]]) -> None:
        super().__init__()
        self._tasks = list(tasks)
        self._completed = 0
        for task in self._tasks:
            task._add_parent(self)
        for task in self._tasks:
            if task.is_complete:
                self.on_child_completed(task)
        if not self._tasks:
            self._finish([], None)

    def on_child_completed(self, task: Task[Any]) -> None:
        if self._is_complete:
            return
        self._completed += 1
        if self._completed < len(self._tasks):
            return
        for child in self._tasks:
            if child._exception is not None:
                self._finish(None, child._exception)
                return
        self._finish([t._result for t in self._tasks], None)

    @property
    def pending_tasks(self) -> int:
        return len(self._tasks) - self._completed


class WhenAnyTask(Task[Task[T]]):
    """Completes with the first child to complete (successfully or not); its result is that
    child task, so the caller can tell which one won and read or re-raise its outcome."""

    __slots__ = ("_tasks",)

    def __init__(self, tasks: Sequence[Task[T]]) -> None:
        super().__init__()
        self._tasks = list(tasks)
        if not self._tasks:
            raise ValueError("when_any needs at least one task")
        for task in self._tasks:
            task._add_parent(self)
        for task in self._tasks:
            if task.is_complete:
                self.on_child_completed(task)
                break

    def on_child_completed(self, task: Task[Any]) -> None:
        if not self._is_complete:
            self._finish(task, None)


def when_all(tasks: Sequence[Task[T]]) -> WhenAllTask[T]:
    """A task whose result is the list of results, in the order of ``tasks``."""
    return WhenAllTask(tasks)


def when_any(tasks: Sequence[Task[T]]) -> WhenAnyTask[T]:
    """A task whose result is the first of ``tasks`` to complete."""
    return WhenAnyTask(tasks)
