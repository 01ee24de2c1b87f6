"""Optional spans for every storage call, from azure-core's OpenTelemetry plugin.

Off by default: a worker makes many storage requests per episode, and most traces are
clearer without them. ``trace_storage_calls()`` turns azure-core's tracing on for this
process (its spans then nest under ours: an episode's commit shows its table batch and
queue sends). Needs the ``otel`` extra (``azure-core-tracing-opentelemetry``).
"""

from __future__ import annotations

OTEL_EXTRA_HINT = 'storage tracing needs the "otel" extra: pip install "durable-azstorage[otel]"'


def trace_storage_calls(enabled: bool = True) -> None:
    """Make azure-core emit an OpenTelemetry span per storage request (or stop it)."""
    from azure.core.settings import settings

    if not enabled:
        settings.tracing_implementation = None
        return
    try:
        from azure.core.tracing.ext.opentelemetry_span import OpenTelemetrySpan
    except ImportError as exc:
        raise RuntimeError(f"{OTEL_EXTRA_HINT} (missing module {exc.name!r})") from None
    settings.tracing_implementation = OpenTelemetrySpan
