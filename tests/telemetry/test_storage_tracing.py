"""Storage calls traced through azure-core's OpenTelemetry plugin, only when asked."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from durable_azstorage import TaskHubClient
from durable_azstorage.azure.settings import AzureStorageSettings
from durable_azstorage.azure.storage.tracing import trace_storage_calls


@pytest.fixture
def storage_tracing() -> Iterator[None]:
    trace_storage_calls()
    try:
        yield
    finally:
        trace_storage_calls(False)


def _list_hubs(settings: AzureStorageSettings) -> None:
    with (
        trace.get_tracer("test").start_as_current_span("around"),
        TaskHubClient(settings) as client,
    ):
        client.list_task_hubs()


def test_storage_calls_are_not_traced_by_default(
    azure_settings: AzureStorageSettings, spans: InMemorySpanExporter
) -> None:
    _list_hubs(azure_settings)
    assert [s.name for s in spans.get_finished_spans()] == ["around"]


def test_storage_calls_nest_under_the_current_span_when_asked(
    azure_settings: AzureStorageSettings, spans: InMemorySpanExporter, storage_tracing: None
) -> None:
    _list_hubs(azure_settings)
    finished = spans.get_finished_spans()
    around = next(s for s in finished if s.name == "around")
    storage = [s for s in finished if s is not around]
    assert storage, "azure-core emitted no span"
    assert all(s.context.trace_id == around.context.trace_id for s in storage)
    assert any(s.parent is not None and s.parent.span_id == around.context.span_id for s in storage)
