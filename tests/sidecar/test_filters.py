"""Work-item filters decide per kind; entity names are matched without case or version."""

from __future__ import annotations

from durabletask.internal import orchestrator_service_pb2 as pb

from durable_azstorage.sidecar.filters import WorkItemFilter


def _filter(
    **kinds: list[pb.OrchestrationFilter] | list[pb.ActivityFilter] | list[pb.EntityFilter],
) -> WorkItemFilter:
    request = pb.GetWorkItemsRequest()
    request.workItemFilters.CopyFrom(pb.WorkItemFilters(**kinds))
    parsed = WorkItemFilter.from_request(request)
    assert parsed is not None
    return parsed


def test_entity_batches_are_filtered_by_entity_name_ignoring_case() -> None:
    accepts = _filter(entities=[pb.EntityFilter(name="Counter")])
    assert accepts.accepts("entity", "counter", None)
    assert not accepts.accepts("entity", "account", None)
    assert not accepts.accepts("orchestration", "counter", None)


def test_a_filter_without_entities_takes_no_entity_batch() -> None:
    accepts = _filter(orchestrations=[pb.OrchestrationFilter(name="Flow")])
    assert accepts.accepts("orchestration", "Flow", None)
    assert not accepts.accepts("entity", "counter", None)


def test_no_filters_at_all_accept_everything() -> None:
    assert WorkItemFilter.from_request(pb.GetWorkItemsRequest()) is None
