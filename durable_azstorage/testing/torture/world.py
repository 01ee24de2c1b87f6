"""One seeded simulation: instances, workers, a client, a clock and a schedule of faults.

Everything runs in one task and every choice comes from one ``random.Random(seed)``, so a
seed replays exactly. Each step picks one action: a worker locks and processes the next
orchestration or activity work item (with a fate: normal, crash at a checkpoint step, storage
error, crash while holding it, hold it while time passes, abandon it with a delay), a held item
is finished, the clock moves (forwards, past the lock timeout, or backwards), the client acts
(raise an event, suspend, resume, terminate, purge an ended instance), a message copy is
delivered again, or a worker restarts. Then the run drains without faults until nothing is
left to do, and the invariants are checked.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from durable_azstorage.authoring.registry import Registry
from durable_azstorage.backend.protocol import (
    ActivityWorkItem,
    CheckpointHooks,
    ExecutionArchive,
    OrchestrationCommit,
    OrchestrationWorkItem,
)
from durable_azstorage.model.history import (
    EventRaised,
    ExecutionStarted,
    TaskCompleted,
    TaskFailed,
    TaskScheduled,
)
from durable_azstorage.model.messages import TaskMessage
from durable_azstorage.model.status import OrchestrationStatus
from durable_azstorage.testing.torture import programs
from durable_azstorage.testing.torture.client import TERMINATED_OUTPUT, TortureClient
from durable_azstorage.testing.torture.clock import SkewClock, Time
from durable_azstorage.testing.torture.faults import (
    CRASH_STEPS,
    Crash,
    Fault,
    TransientStorageError,
)
from durable_azstorage.testing.torture.invariants import Invariants
from durable_azstorage.testing.torture.report import SeedResult
from durable_azstorage.testing.torture.storage import StorageFactory, memory_storage
from durable_azstorage.testing.torture.workers import (
    InlineExecutor,
    SimulatedWorker,
    activity_key,
    program_key,
)


@dataclass(frozen=True)
class Options:
    """How a run is shaped; ``faults=False`` is the fault-free reference run."""

    faults: bool = True
    min_steps: int = 80
    max_steps: int = 260
    storage: StorageFactory = memory_storage
    time: Callable[[], Time] = SkewClock
    timers: tuple[int, ...] = (1, 5, 30, 90)
    stale_starts: bool = True
    """Also deliver copies of ExecutionStarted messages (a client retrying a create, a parent
    re-sending a child's start). Off in CI until the stale-start restart defect is fixed
    (``tests/unit/replay/test_stale_start.py``)."""


def _pick(rng: random.Random, weighted: list[tuple[str, int]]) -> str:
    names = [n for n, _ in weighted]
    return rng.choices(names, weights=[w for _, w in weighted])[0]


class World:
    """A run of one seed; ``await World(seed).run()`` returns its ``SeedResult``."""

    def __init__(self, seed: int, options: Options | None = None) -> None:
        self.options = options or Options()
        self.rng = random.Random(seed)
        self.result = SeedResult(seed)
        self.time = self.options.time()
        self.inv = Invariants(self.result)
        self.storage = self.options.storage(self.time, self.inv.audit)
        self.backend = self.storage.client
        self.hooks = isinstance(self.storage.workers, CheckpointHooks)
        self.ledger = programs.ActivityLedger()
        registry = Registry()
        registry.add_orchestrator(programs.orchestrator, programs.ORCHESTRATOR)
        registry.add_activity(self.ledger, programs.ACTIVITY)
        pool = InlineExecutor()
        self.workers = [
            SimulatedWorker(
                f"w{n}", self.storage.workers, registry, now=self.time.now, episode_pool=pool
            )
            for n in range(self.rng.choice((2, 3)))
        ]
        self.instances = programs.generate(
            self.rng, self.rng.randint(3, 6), timers=self.options.timers
        )
        self.client = TortureClient(
            self.backend, self.instances, rng=self.rng, invariants=self.inv, trace=self._trace
        )
        self.children: dict[str, programs.Program] = {}
        for top in self.instances:
            self.children.update(programs.children(top.instance_id, top.steps))
        self.known = [i.instance_id for i in self.instances] + list(self.children)
        self.explained: Counter[tuple[str, int]] = Counter()
        self._runs_at_last_crash: dict[tuple[str, str, int], int] = {}
        """Activity runs per task when the backend object last died (``_explain_lost_buffer``)."""
        self.duplicable: list[TaskMessage] = []
        self._plan: tuple[str, type[BaseException]] | None = None
        self._completing: SimulatedWorker | None = None
        self._step1: tuple[OrchestrationWorkItem, OrchestrationCommit] | None = None
        """The work item being processed and its commit, once step 1 wrote it."""
        self._answer_takers: dict[int, tuple[str, frozenset[int], list[tuple[str, int]]]] = {}
        """Committed episodes (by lock token: a commit may be reported twice) that applied
        results and requested activities: instance, the task ids answered, the tasks
        requested (``_explain_late_answers``)."""
        for worker in self.workers:
            worker.faulty.observe_commit = self._committed

    # --- the run --------------------------------------------------------------------------
    async def run(self) -> SeedResult:
        try:
            await self.storage.open()
            self._install_hook()
            starts = await self.client.create_all()
            if self.options.stale_starts:
                self.duplicable.extend(starts)
            steps = self.rng.randint(self.options.min_steps, self.options.max_steps)
            for n in range(steps):
                self.result.steps = n + 1
                await self._step(n)
                await self._observe()
            await self._drain()
            await self._check()
        except Exception as exc:  # noqa: BLE001 - an engine call failed: report it with the trace
            self.inv.violate("no-exception", "-", f"{type(exc).__name__}: {exc}")
        finally:
            for worker in self.workers:
                worker.close()
            await self.storage.close()
        return self.result

    def _install_hook(self) -> None:
        if isinstance(self.storage.workers, CheckpointHooks):
            self.storage.workers.checkpoint_hook = self._hook

    async def _crashed(self, worker: SimulatedWorker) -> None:
        """``worker``'s process died (it already dropped what it held)."""
        worker.restart()
        if await self.storage.crash():  # the backend object died with it: everyone restarts
            self._explain_lost_buffer()
            for other in self.workers:
                other.restart()
                other.faulty.inner = self.storage.workers
            self._install_hook()

    def _trace(self, line: str) -> None:
        self.result.trace.append(f"{self.result.steps:4d} {self.time.elapsed:8.1f}s {line}")

    def _fault(self, fault: Fault) -> None:
        self.result.faults[fault] += 1

    async def _step(self, n: int) -> None:
        faults = self.options.faults
        actions = [("orch", 34), ("act", 24), ("tick", 14), ("client", 10)]
        if faults:
            actions += [("held", 6), ("expire", 3), ("back", 2), ("dup", 4), ("restart", 2)]
        action = _pick(self.rng, actions)
        worker = self.rng.choice(self.workers)
        if action == "orch":
            await self._orchestration(worker)
        elif action == "act":
            await self._activity(worker)
        elif action == "held":
            holders = [w for w in self.workers if w.held]
            if holders:
                holder = self.rng.choice(holders)
                item = holder.held.pop(self.rng.randrange(len(holder.held)))
                self._trace(f"{holder.name} finishes held {self._describe(item)}")
                await self._process(holder, item)
        elif action == "tick":
            seconds = self.rng.choice((0.5, 1, 2, 5, 10))
            await self.time.advance(seconds)
            self._trace(f"clock +{seconds}s")
        elif action == "expire":
            self._fault(Fault.LOCK_EXPIRY)
            await self.time.advance(self.time.lock_timeout + 1)
            self._trace("clock past the lock timeout")
        elif action == "back" and self.time.backwards:
            seconds = self.rng.choice((1, 5, 20))
            self._fault(Fault.CLOCK_BACK)
            await self.time.advance(-seconds)
            self._trace(f"clock -{seconds}s (backwards)")
        elif action == "client":
            await self.client.act()
        elif action == "dup" and self.duplicable:
            await self._duplicate()
        elif action == "restart" and worker.held:
            self._fault(Fault.CRASH_HOLDING_EPISODE)
            self._trace(
                f"{worker.name} restarts, dropping {[self._describe(i) for i in worker.held]}"
            )
            await self._crashed(worker)

    # --- work items -----------------------------------------------------------------------
    async def _orchestration(self, worker: SimulatedWorker) -> None:
        asked = self.time.elapsed
        item = await worker.faulty.lock_next_orchestration(self.time.lock_wait)
        if item is None:
            return
        fates = [("normal", 62)]
        if self.options.faults:
            fates += [("drop", 4), ("hold", 6), ("abandon", 5), ("transient", 5)]
            if self.hooks:
                fates += [("crash_at", 12), ("step_error", 5)]
        fate = _pick(self.rng, fates)
        what = f"{worker.name} orch {self._describe(item)}"
        if fate not in ("normal", "abandon"):
            self._explain_carried_results(item)
        if fate == "drop":
            self._fault(Fault.CRASH_HOLDING_EPISODE)
            self._trace(f"{what} -> crash before completing")
            await self._crashed(worker)
            return
        if fate == "hold":
            self._fault(Fault.SLOW_EPISODE)
            self._trace(f"{what} -> held")
            worker.held.append(item)
            return
        if fate == "abandon":
            self._fault(Fault.ABANDON_DELAYED)
            delay = self.rng.choice((1, 5, 20))
            self._trace(f"{what} -> abandoned for {delay}s")
            await worker.faulty.abandon_orchestration(item, delay=timedelta(seconds=delay))
            return
        if fate == "crash_at":
            step = self.rng.choice(tuple(CRASH_STEPS))
            self._fault(CRASH_STEPS[step])
            self._plan = (step, Crash)
            what += f" -> crash after step {step}"
        elif fate == "step_error":
            step = self.rng.choice(tuple(CRASH_STEPS))
            self._fault(Fault.TRANSIENT_AT_STEP)
            self._plan = (step, TransientStorageError)
            what += f" -> storage error after step {step}"
        elif fate == "transient":
            after = self.rng.random() < 0.5
            self._fault(Fault.TRANSIENT_AFTER if after else Fault.TRANSIENT_BEFORE)
            worker.faulty.arm("complete_orchestration", after=after)
            what += f" -> storage error {'after' if after else 'before'} complete"
        self._trace(what)
        await self._process(worker, item, asked=asked if fate == "normal" else None)

    def _explain_lost_buffer(self) -> None:
        """The backend object died with its process (Azure): results it held in its message
        buffer, carried by their still-hidden requests, died with it, and each such request
        runs again. Every run since the previous such crash may have left its result there,
        each carried by its own request (the original and a duplicate's copy are two), so a
        task may run again once per run it had since then (seed 17 on Azurite: a task run
        twice, by its request and a copy, both results buffered, then ran twice more)."""
        for run, count in self.ledger.executions.items():
            since = count - self._runs_at_last_crash.get(run, 0)
            if since > 0:
                _, key, task_id = run
                self.explained[(key, task_id)] += since
        self._runs_at_last_crash = dict(self.ledger.executions)

    def _explain_carried_results(self, item: OrchestrationWorkItem) -> None:
        """A result handed over in process is carried by its request: when the episode holding
        it dies or outlives its lock, the request reappears and the activity runs again."""
        answered = Counter(
            e.task_scheduled_id
            for e in (m.event for m in item.messages)
            if isinstance(e, (TaskCompleted, TaskFailed))
        )
        # A result may answer a task of an earlier generation: explain each run of that task
        # id of this instance (the result does not say which activity it came from).
        for instance_id, key, task_id in list(self.ledger.executions):
            if instance_id == item.instance_id and task_id in answered:
                self.explained[(key, task_id)] += answered[task_id]

    async def _activity(self, worker: SimulatedWorker) -> None:
        asked = self.time.elapsed
        item = await worker.faulty.lock_next_activity(self.time.lock_wait)
        if item is None:
            return
        fates = [("normal", 70)]
        if self.options.faults:
            fates += [("crash_before", 5), ("crash_after", 7), ("hold", 8), ("transient", 10)]
        fate = _pick(self.rng, fates)
        what = f"{worker.name} act {self._describe(item)}"
        key = activity_key(item)
        if fate == "crash_before":
            self._fault(Fault.CRASH_BEFORE_ACTIVITY)
            self._trace(f"{what} -> crash before running it")
            await self._crashed(worker)
            return
        if fate == "crash_after":
            self._fault(Fault.CRASH_AFTER_ACTIVITY)
            self.explained[key] += 1
            self._trace(f"{what} -> ran, crash before completing")
            await worker.run_without_completing(item)
            await self._crashed(worker)
            return
        if fate == "hold":
            self._fault(Fault.SLOW_ACTIVITY)
            self.explained[key] += 1
            self._trace(f"{what} -> held")
            worker.held.append(item)
            return
        if fate == "transient":
            after = self.rng.random() < 0.5
            self._fault(Fault.TRANSIENT_AFTER if after else Fault.TRANSIENT_BEFORE)
            self.explained[key] += 0 if after else 1
            worker.faulty.arm("complete_activity", after=after)
            what += f" -> storage error {'after' if after else 'before'} complete"
        self._trace(what)
        await self._process(worker, item, asked=asked if fate == "normal" else None)

    async def _process(
        self,
        worker: SimulatedWorker,
        item: OrchestrationWorkItem | ActivityWorkItem,
        *,
        asked: float | None = None,
    ) -> None:
        """Run ``item`` on ``worker``; ``asked``: when the worker asked for it, if no fault
        already explains what its lock running out would cause."""
        self._completing = worker
        try:
            if not await worker.process(item):
                self._trace(f"{worker.name} crashed and restarted")
                await self._crashed(worker)
            elif asked is not None:
                self._explain_outlived_lock(worker, item, self.time.elapsed - asked)
        finally:
            self._completing = None
            self._plan = None
            self._step1 = None

    def _explain_outlived_lock(
        self,
        worker: SimulatedWorker,
        item: OrchestrationWorkItem | ActivityWorkItem,
        took: float,
    ) -> None:
        """A work item is handed out with at least half its lock left (both backends refresh
        or drop older ones), so one that took longer than that, with nobody renewing it (the
        simulated worker does not), may have outlived its lock although no fault was injected
        (real time on a loaded machine): what its lock running out causes is explained as for
        a held one. Simulated time does not move while an item is processed."""
        if took < self.time.lock_timeout / 2:
            return
        self._fault(Fault.OUTLIVED_LOCK)
        self._trace(
            f"{worker.name} took {took:.1f}s over {self._describe(item)}: lock may have run out"
        )
        if isinstance(item, ActivityWorkItem):
            self.explained[activity_key(item)] += 1  # its request reappears and runs again
            return
        self._explain_carried_results(item)
        if self._step1 is not None and self._step1[0] is item:  # consumed messages come back
            self._explain_recoveries(*self._step1, sent=True)

    async def _hook(self, step: str, instance_id: str) -> None:
        """The backend's checkpoint hook: records step 1, then fires the planned fault."""
        worker = self._completing
        if step == "history" and worker is not None and worker.faulty.completing is not None:
            self._step1 = worker.faulty.completing
            self._committed(*worker.faulty.completing)
        plan = self._plan
        if plan is not None and plan[0] == step:
            self._plan = None
            if worker is not None and worker.faulty.completing is not None:
                self._explain_recoveries(*worker.faulty.completing, sent=step != "history")
            raise plan[1](f"injected after checkpoint step {step!r} of {instance_id}")

    def _explain_recoveries(
        self, item: OrchestrationWorkItem, commit: OrchestrationCommit, *, sent: bool
    ) -> None:
        """The consumed messages of a committed episode may come back (a crash after step 1,
        or its lock ran out before step 4). A backend that re-derives the episode's messages
        (Azure) re-sends them at each recovery, and each consumed message may come back on
        its own (a carried result only once its request ran again), so each activity request
        may be sent once more per consumed message, besides step 2's send (``sent``)."""
        if not self.storage.resends_on_recovery:
            return
        resends = len(item.messages) - (0 if sent else 1)
        for request in commit.activity_messages:
            if isinstance(request.event, TaskScheduled):
                task = (program_key(request.event.input), request.event.event_id)
                self.explained[task] += resends

    def _committed(self, item: OrchestrationWorkItem, commit: OrchestrationCommit) -> None:
        self.inv.committed(item, commit)
        answered = frozenset(
            e.task_scheduled_id
            for e in (m.event for m in item.messages)
            if isinstance(e, (TaskCompleted, TaskFailed))
        )
        requested = [
            (program_key(r.event.input), r.event.event_id)
            for r in commit.activity_messages
            if isinstance(r.event, TaskScheduled)
        ]
        if answered and requested:
            self._answer_takers[id(item.lock_token)] = (item.instance_id, answered, requested)
        for message in commit.outbound_messages:
            if isinstance(message.event, ExecutionStarted) and not self.options.stale_starts:
                continue
            if not isinstance(message.event, EventRaised):  # a copy of an event is a new event
                self.duplicable.append(message)

    async def _duplicate(self) -> None:
        """Deliver a copy of a message sent earlier (never of an event: a copy is a new one)."""
        message = self.rng.choice(self.duplicable)
        if message.instance.instance_id.split("/")[0] in self.inv.purged:
            return
        self._fault(Fault.DUPLICATE)
        event = message.event
        if isinstance(event, ExecutionStarted):
            self.client.restartable.add(
                message.instance.instance_id
            )  # a purge would let it start anew
        if isinstance(event, TaskScheduled):
            self.explained[(program_key(event.input), event.event_id)] += 1
        await self.backend.send_message(message)
        self._trace(f"duplicate {type(message.event).__name__} to {message.instance.instance_id}")

    # --- duplicates, quiescence and checks ------------------------------------------------------------
    async def _observe(self) -> None:
        for instance_id in self.known:
            self.inv.observe(instance_id, await self.backend.get_instance(instance_id))

    def _ended(self) -> bool:
        return all(i in self.inv.final or i in self.inv.purged for i in self.known)

    async def _drain(self) -> None:
        self._trace("drain: no more faults")
        for worker in self.workers:
            held, worker.held = list(worker.held), []
            for held_item in held:
                await self._process(worker, held_item)
        idle = 0
        resumed: set[str] = set()
        for rounds in range(1, self.time.drain_rounds + 1):
            busy = False
            for worker in self.workers:
                asked = self.time.elapsed
                item = await worker.faulty.lock_next_orchestration(self.time.lock_wait)
                busy = await self._drain_one(worker, item, asked) or busy
                asked = self.time.elapsed
                task = await worker.faulty.lock_next_activity(self.time.lock_wait)
                busy = await self._drain_one(worker, task, asked) or busy
            busy = await self.client.finish(resumed) or busy
            await self._observe()
            if busy:
                idle = 0
                continue
            idle += 1
            if idle >= 3 and self._ended():
                self._trace(f"drain: done after {rounds} rounds")
                return
            await self.time.advance(self.time.idle_step)
            resumed.clear()
        self._trace("drain: gave up")

    async def _drain_one(
        self,
        worker: SimulatedWorker,
        item: OrchestrationWorkItem | ActivityWorkItem | None,
        asked: float,
    ) -> bool:
        if item is None:
            return False
        self._trace(f"{worker.name} drains {self._describe(item)}")
        await self._process(worker, item, asked=asked)
        return True

    async def _check(self) -> None:
        for top in self.instances:
            if top.terminate:
                self.inv.check_outcome(
                    top.instance_id, OrchestrationStatus.TERMINATED, TERMINATED_OUTPUT
                )
            else:
                self.inv.check_outcome(
                    top.instance_id,
                    OrchestrationStatus.COMPLETED,
                    programs.expected_output(top.instance_id, top.steps),
                )
        for child, steps in self.children.items():
            self.inv.check_outcome(
                child, OrchestrationStatus.COMPLETED, programs.expected_output(child, steps)
            )
        for instance_id in self.known:
            self.inv.check_outbound(instance_id)
            if instance_id not in self.inv.purged:
                self.inv.check_history(instance_id, await self.backend.get_history(instance_id))
                await self._check_archive(instance_id)
        self._explain_late_answers()
        self.inv.check_activity_runs(self.ledger.executions, self.explained)

    def _explain_late_answers(self) -> None:
        """A result that arrives after the episode that consumed its request committed (a
        task that ran again) is matched to that episode by the request's id, and a backend
        that re-derives messages (Azure) recovers the episode: it re-sends the episode's
        requests. So each extra run of a task an episode answered explains one more run of
        each task it requested (seed 10 under load: task 1 ran twice, a held fault, and the
        task its episode requested ran twice). A task id may name a task of an earlier
        generation too (results do not say which): each is counted."""
        if not self.storage.resends_on_recovery:
            return
        for instance_id, answered, requested in self._answer_takers.values():
            extra = sum(
                runs - 1
                for (run_instance, _, task_id), runs in self.ledger.executions.items()
                if run_instance == instance_id and task_id in answered
            )
            for task in requested:
                self.explained[task] += extra

    async def _check_archive(self, instance_id: str) -> None:
        backend = self.backend
        if not isinstance(backend, ExecutionArchive):
            return
        listed = await backend.list_executions(instance_id)
        read = {e: await backend.get_execution_history(instance_id, e) for e in listed}
        self.inv.check_archive(instance_id, listed, read)

    def _describe(self, item: OrchestrationWorkItem | ActivityWorkItem) -> str:
        if isinstance(item, ActivityWorkItem):
            key, task = activity_key(item)
            return f"{item.instance.instance_id} task {task} ({key})"
        kinds = ",".join(_short(m) for m in item.messages)
        return f"{item.instance_id} [{kinds}]"


def _short(message: TaskMessage) -> str:
    event = message.event
    name = type(event).__name__
    detail = (
        getattr(event, "name", None)
        if isinstance(event, EventRaised)
        else getattr(event, "task_scheduled_id", getattr(event, "timer_id", None))
    )
    return f"{name}:{detail}" if detail is not None else name
