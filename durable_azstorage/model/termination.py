"""An orchestration terminating another instance: how the request is recorded and sent.

The portable SDK's ``terminateOrchestration`` action is recorded in the sender's history as an
``EventSent`` named ``TERMINATION_REQUEST`` whose input is this module's small JSON document
(the reason and ``recurse``), like messages to entities are. Recording it is what makes the
termination part of the episode's checkpoint: ``model.outbound`` derives the target's
``ExecutionTerminated`` message from the recorded event, both when the episode runs and when
recovery re-sends a committed episode's messages. A re-sent termination is harmless: an
instance that has already ended refuses it (``replay.ledger``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from durable_azstorage.model.history import EventSent, HistoryEvent

TERMINATION_REQUEST = "@terminate"
"""``EventSent.name`` of a termination an orchestration sent to another instance."""


@dataclass(frozen=True, slots=True)
class TerminationRequest:
    """What the target is told: ``reason`` becomes its output; ``recurse`` ends its children."""

    reason: str | None
    recurse: bool

    def encode(self) -> str:
        return json.dumps({"reason": self.reason, "recurse": self.recurse})

    @staticmethod
    def decode(text: str | None) -> TerminationRequest:
        document = json.loads(text) if text else {}
        reason = document.get("reason")
        return TerminationRequest(
            reason=reason if isinstance(reason, str) else None,
            recurse=bool(document.get("recurse", False)),
        )


def is_termination_request(event: HistoryEvent) -> bool:
    return isinstance(event, EventSent) and event.name == TERMINATION_REQUEST
