"""``--metrics-port``: this process's OpenTelemetry metrics in Prometheus text format.

Installs a meter provider whose reader is OpenTelemetry's Prometheus exporter as the
process's global one (instruments created earlier follow it: they are proxies) and serves
``/metrics`` from ``prometheus_client``'s HTTP server on a daemon thread. Needs the ``otel``
extra; without it ``MetricsUnavailable`` says which package to install.
"""

from __future__ import annotations

from typing import Any

from durable_azstorage.telemetry import otel

OTEL_EXTRA_HINT = 'metrics need the "otel" extra: pip install "durable-azstorage[otel]"'


class MetricsUnavailable(RuntimeError):
    """The packages the Prometheus endpoint needs are not installed."""


class PrometheusEndpoint:
    """A running ``/metrics`` endpoint; ``close()`` stops it."""

    def __init__(self, server: Any, port: int) -> None:
        self._server = server
        self.port = port

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def start_prometheus_endpoint(port: int, host: str = "0.0.0.0") -> PrometheusEndpoint:
    """Serve this process's metrics on ``host:port`` (0: any free port, see ``.port``)."""
    if not otel.AVAILABLE:
        raise MetricsUnavailable(f"{OTEL_EXTRA_HINT} (missing module 'opentelemetry')")
    try:
        from opentelemetry.exporter.prometheus import PrometheusMetricReader
        from opentelemetry.sdk.metrics import MeterProvider
        from prometheus_client import start_http_server
    except ImportError as exc:
        raise MetricsUnavailable(f"{OTEL_EXTRA_HINT} (missing module {exc.name!r})") from None
    otel.metrics.set_meter_provider(MeterProvider(metric_readers=[PrometheusMetricReader()]))
    try:
        server, _thread = start_http_server(port, addr=host)
    except OSError as exc:
        raise MetricsUnavailable(f"--metrics-port: cannot listen on {host}:{port}: {exc}") from None
    return PrometheusEndpoint(server, server.server_port)
