"""Values typed on the command line: JSON payloads, times, statuses, tags.

Each parser names the option in its error (a ``CliError`` with exit code 2), so a script's
author sees which argument to fix.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

from durable_azstorage.cli.output import EXIT_USAGE, CliError
from durable_azstorage.model.status import OrchestrationStatus


def json_value(text: str | None, option: str) -> Any:
    """``None`` stays ``None``; anything else must be JSON (quote strings: '"text"')."""
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise CliError(
            f"{option} is not valid JSON ({exc}); quote strings: {option} '\"text\"'", EXIT_USAGE
        ) from None


def utc_time(text: str | None, option: str) -> datetime | None:
    """ISO 8601; a trailing Z means UTC, and so does no offset at all."""
    if text is None:
        return None
    raw = text.strip()
    if raw[-1:] in ("Z", "z"):
        raw = raw[:-1] + "+00:00"
    try:
        when = datetime.fromisoformat(raw)
    except ValueError:
        raise CliError(
            f"{option}: {text!r} is not an ISO 8601 time such as 2026-11-23T18:00:00Z", EXIT_USAGE
        ) from None
    return when if when.tzinfo is not None else when.replace(tzinfo=timezone.utc)


def statuses(values: list[str] | None) -> tuple[OrchestrationStatus, ...] | None:
    """Repeated and/or comma-separated ``--status`` values, case-insensitive."""
    if not values:
        return None
    try:
        return tuple(
            OrchestrationStatus.parse(part)
            for value in values
            for part in value.split(",")
            if part.strip()
        )
    except ValueError as exc:
        raise CliError(f"--status: {exc}", EXIT_USAGE) from None


def tags(values: list[str] | None) -> dict[str, str] | None:
    """``--tag KEY=VALUE`` options as a dict (the value may contain ``=``)."""
    if not values:
        return None
    tags: dict[str, str] = {}
    for value in values:
        key, sep, text = value.partition("=")
        if not sep or not key.strip():
            raise CliError(f"--tag: expected KEY=VALUE, got {value!r}", EXIT_USAGE)
        tags[key.strip()] = text
    return tags
