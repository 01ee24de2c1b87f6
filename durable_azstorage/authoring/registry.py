"""The registry: which orchestrator and activity functions a worker can run, by name."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from durable_azstorage.authoring.versioning import VersioningOptions

Orchestrator = Callable[..., Any]
"""``fn(ctx: OrchestrationContext, input)``: a generator function (yields tasks) or a plain one."""

Activity = Callable[..., Any]
"""``fn(ctx: ActivityContext, input)``: a plain function (run in a thread pool) or ``async def``."""

Entity = Callable[..., Any]
"""``fn(ctx: EntityContext, input)``, or a ``DurableEntity`` subclass (its methods are operations)."""


def _default_name(fn: Callable[..., Any], kind: str) -> str:
    if not callable(fn):
        raise TypeError(f"{kind} must be callable, got {type(fn).__qualname__}")
    name = getattr(fn, "__name__", None)
    if not isinstance(name, str) or not name or name == "<lambda>":
        raise ValueError(f"cannot infer a name for {kind} {fn!r}; pass name=...")
    return name


class Registry:
    """Orchestrators and activities by name. Names are case-sensitive and unique per kind."""

    def __init__(self) -> None:
        self._orchestrators: dict[str, Orchestrator] = {}
        self._activities: dict[str, Activity] = {}
        self._entities: dict[str, Entity] = {}
        self._orchestrator_names: dict[int, str] = {}
        self._activity_names: dict[int, str] = {}
        self.versioning: VersioningOptions | None = None
        """Which instance versions the code may run (``TaskHubWorker.use_versioning``)."""

    def add_orchestrator(self, fn: Orchestrator, name: str | None = None) -> str:
        """Register ``fn``; returns its name (``fn.__name__`` unless given). Rejects duplicates."""
        return self._add(self._orchestrators, self._orchestrator_names, fn, name, "orchestrator")

    def add_activity(self, fn: Activity, name: str | None = None) -> str:
        """Register ``fn``; returns its name (``fn.__name__`` unless given). Rejects duplicates."""
        return self._add(self._activities, self._activity_names, fn, name, "activity")

    def add_entity(self, fn: Entity, name: str | None = None) -> str:
        """Register an entity function or ``DurableEntity`` subclass; returns its name, which
        is lower-cased (entity ids are case-insensitive in their name, as in the SDK)."""
        resolved = _default_name(fn, "entity") if name is None else name
        if not isinstance(resolved, str) or not resolved.strip() or "@" in resolved:
            raise ValueError(
                f"entity name must be a non-empty string without '@', got {resolved!r}"
            )
        return self._add(self._entities, {}, fn, resolved.lower(), "entity")

    def get_entity(self, name: str) -> Entity | None:
        return self._entities.get(name.lower())

    @property
    def entity_names(self) -> tuple[str, ...]:
        return tuple(sorted(self._entities))

    def get_orchestrator(self, name: str) -> Orchestrator | None:
        return self._orchestrators.get(name)

    def get_activity(self, name: str) -> Activity | None:
        return self._activities.get(name)

    @property
    def orchestrator_names(self) -> tuple[str, ...]:
        return tuple(sorted(self._orchestrators))

    @property
    def activity_names(self) -> tuple[str, ...]:
        return tuple(sorted(self._activities))

    def orchestrator_name_of(self, fn: Orchestrator | str) -> str:
        """The name to schedule ``fn`` under: its registered name, else ``fn.__name__``."""
        if isinstance(fn, str):
            return fn
        return self._orchestrator_names.get(id(fn)) or _default_name(fn, "orchestrator")

    def activity_name_of(self, fn: Activity | str) -> str:
        """The name to schedule ``fn`` under: its registered name, else ``fn.__name__``."""
        if isinstance(fn, str):
            return fn
        return self._activity_names.get(id(fn)) or _default_name(fn, "activity")

    @staticmethod
    def _add(
        table: dict[str, Callable[..., Any]],
        names: dict[int, str],
        fn: Callable[..., Any],
        name: str | None,
        kind: str,
    ) -> str:
        resolved = _default_name(fn, kind) if name is None else name
        if not isinstance(resolved, str) or not resolved.strip():
            raise ValueError(f"{kind} name must be a non-empty string, got {resolved!r}")
        if resolved in table:
            raise ValueError(f"an {kind} named {resolved!r} is already registered")
        table[resolved] = fn
        names.setdefault(id(fn), resolved)
        return resolved
