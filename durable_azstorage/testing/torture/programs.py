"""Random orchestration programs and the one interpreter orchestrator that runs them.

A program is JSON: a list of steps the ``torture_program`` orchestrator executes in order,
appending one result per step to an accumulator that becomes its output. Because every
result is a pure function of the program (activity results of their key, event payloads of
their name), ``expected_output`` computes what a correct engine must produce, whatever faults
hit the run. Steps:

* ``["act", fail, attempts]`` an activity that fails its first ``fail`` attempts, called with
  a ``RetryPolicy`` of ``attempts`` (1 = none); exhausted retries are caught (``x:`` result);
* ``["fan", n]`` n activities at once, joined with ``when_all``;
* ``["timer", seconds]`` a durable timer;
* ``["sub", program]`` a sub-orchestration running ``program`` under a derived id;
* ``["wait", name]`` wait for an external event (raised by the client or a ``send``);
* ``["send", target, name]`` ``send_event`` to another top-level instance;
* ``["can"]`` continue-as-new with the remaining steps (carrying unconsumed events);
* ``["forever"]`` wait for an event nobody sends (the client terminates such instances).
"""

from __future__ import annotations

import random
from collections.abc import Generator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from durable_azstorage.authoring.context import ActivityContext, OrchestrationContext
from durable_azstorage.authoring.retry import RetryPolicy
from durable_azstorage.authoring.tasks import when_all
from durable_azstorage.model.errors import TaskFailedError

ORCHESTRATOR = "torture_program"
ACTIVITY = "torture_work"
Step = list[Any]
Program = list[Step]


class ActivityFailure(Exception):
    """The deterministic failure of an activity attempt the program asked to fail."""


def sub_instance_id(parent: str, generation: int, index: int) -> str:
    return f"{parent}/g{generation}s{index}"


def event_payload(target: str, name: str) -> str:
    return f"event:{target}:{name}"


def orchestrator(ctx: OrchestrationContext, state: dict[str, Any]) -> Generator[Any, Any, Any]:
    """Interpret ``state = {"steps", "acc", "gen", "base"}`` (``base``: index of steps[0])."""
    steps: Program = state["steps"]
    acc: list[Any] = list(state["acc"])
    gen: int = state["gen"]
    base: int = state.get("base", 0)
    me = ctx.instance_id
    for offset, step in enumerate(steps):
        index = base + offset
        key = f"{me}/g{gen}s{index}"
        kind = step[0]
        if kind == "act":
            fail, attempts = step[1], step[2]
            policy = (
                RetryPolicy(
                    first_retry_interval=timedelta(seconds=1), max_number_of_attempts=attempts
                )
                if attempts > 1
                else None
            )
            try:
                acc.append(
                    (
                        yield ctx.call_activity(
                            ACTIVITY, input={"key": key, "fail": fail}, retry_policy=policy
                        )
                    )
                )
            except TaskFailedError:
                acc.append(f"x:{key}")
        elif kind == "fan":
            tasks = [
                ctx.call_activity(ACTIVITY, input={"key": f"{key}.{j}", "fail": 0})
                for j in range(step[1])
            ]
            acc.append((yield when_all(tasks)))
        elif kind == "timer":
            yield ctx.create_timer(timedelta(seconds=step[1]))
            acc.append("t")
        elif kind == "sub":
            child = {"steps": step[1], "acc": [], "gen": 0}
            acc.append(
                (
                    yield ctx.call_sub_orchestrator(
                        ORCHESTRATOR, input=child, instance_id=sub_instance_id(me, gen, index)
                    )
                )
            )
        elif kind == "wait":
            acc.append((yield ctx.wait_for_external_event(step[1])))
        elif kind == "send":
            ctx.send_event(step[1], step[2], data=event_payload(step[1], step[2]))
            acc.append("sent")
        elif kind == "can":
            rest = {
                "steps": steps[offset + 1 :],
                "acc": acc + ["can"],
                "gen": gen + 1,
                "base": index + 1,
            }
            ctx.continue_as_new(rest, save_events=True)
            return None
        elif kind == "forever":
            yield ctx.wait_for_external_event("never")
        else:
            raise ValueError(f"unknown step {step!r}")
    return acc


def expected_output(instance_id: str, steps: Program) -> list[Any]:
    """What ``orchestrator`` must return for ``steps`` (None for a ``forever`` program)."""
    acc: list[Any] = []
    gen = 0
    for index, step in enumerate(steps):
        key = f"{instance_id}/g{gen}s{index}"
        kind = step[0]
        if kind == "act":
            acc.append(f"w:{key}" if step[1] < step[2] else f"x:{key}")
        elif kind == "fan":
            acc.append([f"w:{key}.{j}" for j in range(step[1])])
        elif kind == "timer":
            acc.append("t")
        elif kind == "sub":
            acc.append(expected_output(sub_instance_id(instance_id, gen, index), step[1]))
        elif kind == "wait":
            acc.append(event_payload(instance_id, step[1]))
        elif kind == "send":
            acc.append("sent")
        elif kind == "can":
            acc.append("can")
            gen += 1
    return acc


@dataclass
class ActivityLedger:
    """Every execution of the activity, so attempts are counted by orchestrator task, not by
    delivery: attempt n of a key is the n-th distinct task id that scheduled it."""

    attempts: dict[str, list[int]] = field(default_factory=dict)
    executions: dict[tuple[str, str, int], int] = field(default_factory=dict)

    async def __call__(self, ctx: ActivityContext, data: dict[str, Any]) -> str:
        key: str = data["key"]
        tasks = self.attempts.setdefault(key, [])
        if ctx.task_id not in tasks:
            tasks.append(ctx.task_id)
        run = (ctx.orchestration_id, key, ctx.task_id)
        self.executions[run] = self.executions.get(run, 0) + 1
        if tasks.index(ctx.task_id) < data["fail"]:
            raise ActivityFailure(f"attempt {tasks.index(ctx.task_id) + 1} of {key} fails")
        return f"w:{key}"


@dataclass(frozen=True)
class Instance:
    """A top-level instance of one run: its id, program, and what the client does to it."""

    instance_id: str
    steps: Program
    terminate: bool = False
    suspend: bool = False
    client_events: tuple[str, ...] = ()


def generate(
    rng: random.Random, count: int, *, timers: tuple[int, ...] = (1, 5, 30, 90)
) -> list[Instance]:
    """``count`` top-level instances. Instance i only waits for events from the client or from
    instances j < i (and sends only to j > i), so no two instances wait for each other."""
    ids = [f"i{n}" for n in range(count)]
    waits: list[list[str]] = [[] for _ in ids]
    sends: list[list[tuple[str, str]]] = [[] for _ in ids]
    client: list[list[str]] = [[] for _ in ids]
    terminable = [rng.random() < 0.15 for _ in ids]
    counter = 0
    for i in range(count):
        for _ in range(rng.choice((0, 0, 1, 2))):
            counter += 1
            name = f"e{counter}"
            waits[i].append(name)
            senders = [j for j in range(i) if not terminable[j]]
            if senders and rng.random() < 0.5:
                sends[rng.choice(senders)].append((ids[i], name))
            else:
                client[i].append(name)
    result = []
    for i, instance_id in enumerate(ids):
        steps = _steps(rng, depth=0, budget=rng.randint(2, 7), plain=terminable[i], timers=timers)
        for name in waits[i]:
            steps.insert(rng.randint(0, len(steps)), ["wait", name])
        for target, name in sends[i]:
            at = rng.randint(0, len(steps))
            steps.insert(at, ["send", target, name])
            if rng.random() < 0.3:  # a message sent just before continue-as-new
                steps.insert(at + 1, ["can"])
        if terminable[i]:
            steps.append(["forever"])
        result.append(
            Instance(
                instance_id,
                steps,
                terminate=terminable[i],
                suspend=rng.random() < 0.2,
                client_events=tuple(client[i]),
            )
        )
    return result


def _steps(
    rng: random.Random, *, depth: int, budget: int, plain: bool, timers: tuple[int, ...]
) -> Program:
    steps: Program = []
    for _ in range(budget):
        roll = rng.random()
        if roll < 0.35:
            attempts = rng.choice((1, 1, 2, 3))
            steps.append(["act", rng.randint(0, attempts) if attempts > 1 else 0, attempts])
        elif roll < 0.5:
            steps.append(["fan", rng.randint(1, 4)])
        elif roll < 0.65:
            steps.append(["timer", rng.choice(timers)])
        elif roll < 0.8 and depth < 2 and not plain:
            steps.append(
                [
                    "sub",
                    _steps(
                        rng, depth=depth + 1, budget=rng.randint(1, 4), plain=False, timers=timers
                    ),
                ]
            )
        elif roll < 0.9 and not plain:
            steps.append(["can"])
        else:
            steps.append(["act", 0, 1])
    return steps


def children(instance_id: str, steps: Program) -> dict[str, Program]:
    """Every sub-orchestration instance ``steps`` creates (recursively), by id."""
    found: dict[str, Program] = {}
    gen = 0
    for index, step in enumerate(steps):
        if step[0] == "sub":
            child = sub_instance_id(instance_id, gen, index)
            found[child] = step[1]
            found.update(children(child, step[1]))
        elif step[0] == "can":
            gen += 1
    return found
