"""The one gate to OpenTelemetry: imported here if installed, else ``AVAILABLE`` is False.

Callers test ``AVAILABLE`` before touching ``trace``/``metrics``; so an application without
the ``otel`` extra pays one attribute read per would-be span and never imports anything.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from opentelemetry import context, metrics, trace

try:
    # F811: the same names as the TYPE_CHECKING import above, bound only when installed
    from opentelemetry import context, metrics, trace  # noqa: F811

    AVAILABLE = True
except ImportError:  # pragma: no cover - exercised in environments without the extra
    AVAILABLE = False

TRACER_NAME = "durabletask"
"""The instrumentation scope of our spans: the portable SDK's, so dashboards built for its
traces match ours."""

METER_NAME = "durable_azstorage"

__all__ = ["AVAILABLE", "METER_NAME", "TRACER_NAME", "context", "metrics", "trace"]
