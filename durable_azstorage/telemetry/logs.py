"""Structured logs: the task hub, partition, instance and execution ids on every record.

The ids live in context variables set where they become known (the worker's start, a
partition's receive loop, one work item's processing); ``LogFields``, a handler filter,
copies them onto each record as attributes (``record.task_hub`` ...), unless the call passed
them with ``extra=``. ``JsonFormatter`` writes one JSON object per line with those fields and
any other ``extra=`` ones: what ``--log-format json`` installs. Applications that configure
logging themselves add ``LogFields()`` to their handler.
"""

from __future__ import annotations

import contextvars
import json
import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any

FIELDS = ("task_hub", "partition", "instance_id", "execution_id")

_current: dict[str, contextvars.ContextVar[Any]] = {
    name: contextvars.ContextVar(f"durable_azstorage_{name}", default=None) for name in FIELDS
}
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message",
    "asctime",
}


def set_log_field(name: str, value: Any) -> None:
    """Set one of ``FIELDS`` for the rest of this context: the current task, and the tasks
    it creates later (a backend's start names the hub; a receive loop its partition)."""
    _check([name])
    _current[name].set(value)


@contextmanager
def log_fields(**fields: Any) -> Iterator[None]:
    """Set some of ``FIELDS`` for the block (e.g. one work item's processing)."""
    _check(fields)
    tokens = [(_current[name], _current[name].set(value)) for name, value in fields.items()]
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


def _check(names: Iterable[str]) -> None:
    unknown = set(names) - set(FIELDS)
    if unknown:
        raise ValueError(f"unknown log fields {sorted(unknown)}; known: {', '.join(FIELDS)}")


def current_fields() -> dict[str, Any]:
    """The fields set in this context (those not set are left out)."""
    return {name: value for name, var in _current.items() if (value := var.get()) is not None}


class LogFields(logging.Filter):
    """Puts the context's ids on every record passing the handler it is added to."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, var in _current.items():
            if getattr(record, name, None) is None:
                setattr(record, name, var.get())
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, the ids, other extras."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and value is not None and not key.startswith("_"):
                doc[key] = value
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str, ensure_ascii=False)
