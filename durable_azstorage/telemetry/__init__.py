"""Observability: OpenTelemetry traces and metrics, structured logs.

OpenTelemetry is optional (the ``otel`` extra). ``telemetry.otel`` is the one module that
imports it; without it every helper here is a no-op that costs a flag test, and nothing
else in the package imports OpenTelemetry (an import-linter contract keeps it so).
"""
