"""The guarantees the torture test checks, from the harness's own view of what happened.

The harness sees every episode that got past checkpoint step 1 (the history commit) and
rebuilds each instance's history from them; it sees every message the backend deletes
(``delete_audit``), every instance state after every step, and every activity execution.
From that it checks:

* **monotonic** — an instance's state never goes backwards (generation, then Pending <
  Running/Suspended < ended; an ended status never changes; never an older committed
  episode's state after a newer one's) and never vanishes unpurged;
* **deleted-unconsumed** — every deleted message was consumed by an episode that committed
  (or was dropped because its instance was purged);
* **event-twice** — no external event is applied twice (each has a unique name);
* **lost-outbound** — in each instance's current generation every scheduled activity, timer
  and sub-orchestration got its answer (a sent event that never arrives leaves its target
  waiting, which **outcome** reports: an event consumed by a generation that continued as new
  in the same episode is never committed, so the harness cannot count it from commits);
* **outcome** — every instance ends with the status and output its program implies (a
  fault-free run produces exactly that: the interpreter is checked against it);
* **activity-runs** — no activity task runs more often than the faults injected on it explain
  (in real time, a work item that outlived its lock on a slow machine counts as one);
* **history-view** — the backend's history equals the one rebuilt from the commits;
* **archive** — every earlier execution the backend lists is readable and begins with the
  history its commits made, and the execution the last committed continue-as-new (or
  restart) replaced is among them (``model.archive``).
"""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from datetime import datetime, timezone
from typing import Any

from durable_azstorage.backend.protocol import OrchestrationCommit, OrchestrationWorkItem
from durable_azstorage.model.history import (
    EventRaised,
    ExecutionStarted,
    ExecutionTerminated,
    HistoryEvent,
    SubOrchestrationInstanceCompleted,
    SubOrchestrationInstanceCreated,
    SubOrchestrationInstanceFailed,
    TaskCompleted,
    TaskFailed,
    TaskScheduled,
    TimerCreated,
    TimerFired,
)
from durable_azstorage.model.state import InstanceState
from durable_azstorage.model.status import OrchestrationStatus
from durable_azstorage.serialization.codec import encode_event, encode_message, encode_state
from durable_azstorage.testing.torture.report import SeedResult, Violation

_ENDED = 2


def _rank(state: InstanceState) -> tuple[int, int]:
    status = state.runtime_status
    phase = 0 if status is OrchestrationStatus.PENDING else _ENDED if status.is_terminal else 1
    return state.generation, phase


class Invariants:
    """Collects observations during a run and reports violations into ``result``."""

    def __init__(self, result: SeedResult) -> None:
        self._result = result
        self.generations: dict[str, list[list[HistoryEvent]]] = {}
        self.fresh_events: Counter[tuple[str, str]] = Counter()
        self.carried: set[tuple[str, str]] = set()
        self._committed: dict[int, set[str]] = {}
        self._tokens: list[object] = []  # keeps committed tokens alive so their ids stay unique
        self.purged: set[str] = set()
        self.seen: dict[str, InstanceState] = {}
        self._states: dict[str, list[str]] = {}  # the states committed episodes wrote, in order
        self._state_index: dict[str, int] = {}
        self.final: dict[str, InstanceState] = {}

    def violate(self, invariant: str, instance_id: str, detail: str) -> None:
        self._result.violations.append(Violation(invariant, instance_id, detail))
        self._result.trace.append(f"VIOLATION [{invariant}] {instance_id}: {detail}")

    # --- during the run -------------------------------------------------------------------
    def committed(self, item: OrchestrationWorkItem, commit: OrchestrationCommit) -> None:
        """Step 1 of ``commit`` happened (its history is durable)."""
        if id(item.lock_token) in self._committed:
            return
        self._tokens.append(item.lock_token)
        self._committed[id(item.lock_token)] = {encode_message(m) for m in item.messages}
        if commit.new_events or commit.new_execution:
            self._states.setdefault(item.instance_id, []).append(_order_key(commit.state))
        gens = self.generations.setdefault(item.instance_id, [])
        if commit.new_execution or not gens:
            gens.append(list(commit.new_events))
        else:
            gens[-1].extend(commit.new_events)
        for event in commit.new_events:
            if not isinstance(event, EventRaised):
                continue
            key = (item.instance_id, event.name)
            if commit.new_execution:  # carried over (or applied in a generation never committed)
                self.carried.add(key)
                continue
            self.fresh_events[key] += 1
            if self.fresh_events[key] > 1 or key in self.carried:
                self.violate("event-twice", item.instance_id, f"event {event.name!r} applied again")

    def audit(self, instance_id: str, text: str, token: object, reason: str) -> None:
        """The backend deleted a control message (``InMemoryBackend.delete_audit``)."""
        if reason == "dropped":
            if instance_id not in self.purged:
                self.violate(
                    "deleted-unconsumed",
                    instance_id,
                    f"message dropped although the instance was never purged: {text[:120]}",
                )
            return
        if reason == "void":  # a carried result whose request runs again: its next result counts
            return
        consumed = self._committed.get(id(token)) if token is not None else None
        if consumed is None:
            self.violate(
                "deleted-unconsumed",
                instance_id,
                f"{reason}: deleted by a work item that never committed: {text[:120]}",
            )
        elif reason != "answered" and text not in consumed:
            self.violate(
                "deleted-unconsumed",
                instance_id,
                f"{reason}: not among its episode's messages: {text[:120]}",
            )

    def observe(self, instance_id: str, state: InstanceState | None) -> None:
        before = self.seen.get(instance_id)
        if state is None:
            if before is not None and instance_id not in self.purged:
                self.violate(
                    "monotonic", instance_id, f"vanished (was {before.runtime_status.value})"
                )
            return
        if state.runtime_status.is_terminal:
            self.final.setdefault(instance_id, state)
        if state is not before:
            self._check_episode_order(instance_id, state)
        if before is not None:
            if _rank(state) < _rank(before):
                self.violate(
                    "monotonic",
                    instance_id,
                    f"went back from {before.runtime_status.value} (generation {before.generation}) "
                    f"to {state.runtime_status.value} (generation {state.generation})",
                )
            elif (
                before.runtime_status.is_terminal
                and _rank(state) == _rank(before)
                and (
                    state.runtime_status is not before.runtime_status
                    or state.output != before.output
                )
            ):
                self.violate(
                    "monotonic",
                    instance_id,
                    f"ended twice: {before.runtime_status.value} then {state.runtime_status.value}",
                )
        self.seen[instance_id] = state

    def _check_episode_order(self, instance_id: str, state: InstanceState) -> None:
        """The stored state is the one of the latest committed episode that wrote one, never an
        older one (the Instances row must not go back even within one status)."""
        if instance_id in self.purged:
            return
        text = _order_key(state)
        written = self._states.get(instance_id, [])
        index = max((i for i, w in enumerate(written) if w == text), default=-1)
        previous = self._state_index.get(instance_id, -1)
        if index < previous:
            self.violate(
                "monotonic",
                instance_id,
                f"state of committed episode #{index + 1} replaced the one of #{previous + 1}",
            )
        self._state_index[instance_id] = max(index, previous)

    # --- after quiescence -----------------------------------------------------------------
    def check_outcome(self, instance_id: str, status: OrchestrationStatus, output: Any) -> None:
        state = self.final.get(instance_id) or self.seen.get(instance_id)
        if state is None:
            self.violate("outcome", instance_id, "never existed")
            return
        got = json.loads(state.output) if state.output is not None else None
        if state.runtime_status is not status:
            why = state.failure_details.message[:200] if state.failure_details else ""
            self.violate(
                "outcome",
                instance_id,
                f"ended {state.runtime_status.value}, expected {status.value} {why}",
            )
        elif got != output:
            self.violate("outcome", instance_id, f"output {got!r}, expected {output!r}")

    def check_outbound(self, instance_id: str) -> None:
        gens = self.generations.get(instance_id)
        if not gens:
            return
        events = gens[-1]
        if any(isinstance(e, ExecutionTerminated) for e in events):
            return
        asked: dict[tuple[str, int], str] = {}
        for event in events:
            if isinstance(event, TaskScheduled):
                asked[("task", event.event_id)] = f"activity {event.name} (task {event.event_id})"
            elif isinstance(event, TimerCreated):
                asked[("timer", event.event_id)] = f"timer {event.event_id}"
            elif isinstance(event, SubOrchestrationInstanceCreated):
                asked[("sub", event.event_id)] = f"sub-orchestration {event.instance_id}"
            elif isinstance(event, (TaskCompleted, TaskFailed)):
                asked.pop(("task", event.task_scheduled_id), None)
            elif isinstance(event, TimerFired):
                asked.pop(("timer", event.timer_id), None)
            elif isinstance(
                event, (SubOrchestrationInstanceCompleted, SubOrchestrationInstanceFailed)
            ):
                asked.pop(("sub", event.task_scheduled_id), None)
        for what in asked.values():
            self.violate("lost-outbound", instance_id, f"{what} committed but never answered")

    def check_history(self, instance_id: str, stored: list[HistoryEvent]) -> None:
        gens = self.generations.get(instance_id)
        mine = [encode_event(e) for e in gens[-1]] if gens else []
        theirs = [encode_event(e) for e in stored]
        if mine != theirs:
            self.violate(
                "history-view",
                instance_id,
                f"backend holds {len(theirs)} events, the commits made {len(mine)}",
            )

    def check_archive(
        self, instance_id: str, listed: list[str], read: dict[str, list[HistoryEvent] | None]
    ) -> None:
        """``listed``: the backend's execution ids (current last); ``read``: their histories."""
        committed = {_execution_id(g): g for g in self.generations.get(instance_id, [])}
        for execution_id in listed:
            stored = read.get(execution_id)
            if stored is None:
                self.violate("archive", instance_id, f"execution {execution_id} listed, unreadable")
                continue
            mine = [encode_event(e) for e in committed.get(execution_id, [])]
            if [encode_event(e) for e in stored[: len(mine)]] != mine:
                self.violate(
                    "archive", instance_id, f"execution {execution_id} differs from its commits"
                )
        gens = self.generations.get(instance_id, [])
        replaced = _execution_id(gens[-2]) if len(gens) > 1 else None
        if replaced is not None and replaced not in listed:
            self.violate("archive", instance_id, f"replaced execution {replaced} is not kept")

    def check_activity_runs(
        self, executions: dict[tuple[str, str, int], int], explained: Counter[tuple[str, int]]
    ) -> None:
        for (instance_id, key, task_id), runs in executions.items():
            allowed = 1 + explained[(key, task_id)]
            if runs > allowed:
                self.violate(
                    "activity-runs",
                    instance_id,
                    f"{key} (task {task_id}) ran {runs} times, faults explain {allowed}",
                )


def _execution_id(events: list[HistoryEvent]) -> str | None:
    started = next((e for e in events if isinstance(e, ExecutionStarted)), None)
    return started.instance.execution_id if started is not None else None


def _order_key(state: InstanceState) -> str:
    """What tells committed episodes' states apart for the order check. A backend that
    repairs a row after a crash rebuilds it from history (Azure), so what history does not
    hold — the last-update time, the custom status, the creation time — may differ from the
    state the episode committed without the row going backwards."""
    return encode_state(
        dataclasses.replace(
            state,
            created_at=_EPOCH,
            last_updated_at=_EPOCH,
            custom_status=None,
        )
    )


_EPOCH = datetime(2000, 1, 1, tzinfo=timezone.utc)
