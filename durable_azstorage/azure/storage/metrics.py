"""Counting storage requests by service and operation: the basis of cost reporting.

``RequestCountingPolicy`` is an azure-core pipeline policy installed on every client built by
``durable_azstorage.azure.storage.clients``. It counts each HTTP *response* the service returned
(errors included — a 412 or 404 is a billed transaction too) under an operation name derived
from method, path, query and the If-Match header, named after the Azure REST API
(``PutMessage``, ``GetMessages``, ``QueryEntities``, ``InsertOrMergeEntity`` (an upsert),
``Batch``, ...). Requests that never got a
response (connection refused, timeout) are counted separately under ``failed``.

An entity-group transaction is one request (``Batch``) whatever the number of rows in it.
Each count also goes to the OpenTelemetry counter ``durable_azstorage.storage.requests``.
"""

from __future__ import annotations

import ipaddress
import threading
from collections import Counter
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from azure.core.pipeline import PipelineRequest, PipelineResponse
from azure.core.pipeline.policies import SansIOHTTPPolicy

from durable_azstorage.telemetry.metrics import record_storage_request

SERVICES = ("queue", "table", "blob")


@dataclass(frozen=True, slots=True)
class RequestCounts:
    """An immutable snapshot: ``counts[(service, operation)]`` responses, plus ``failed``."""

    counts: dict[tuple[str, str], int]
    failed: dict[tuple[str, str], int]

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def by_service(self) -> dict[str, int]:
        out: Counter[str] = Counter()
        for (service, _), n in self.counts.items():
            out[service] += n
        return dict(out)

    def __sub__(self, other: RequestCounts) -> RequestCounts:
        """What happened between two snapshots."""
        return RequestCounts(
            counts=_minus(self.counts, other.counts), failed=_minus(self.failed, other.failed)
        )


def _minus(
    a: dict[tuple[str, str], int], b: dict[tuple[str, str], int]
) -> dict[tuple[str, str], int]:
    return {k: v - b.get(k, 0) for k, v in a.items() if v - b.get(k, 0)}


class RequestCounter:
    """Thread-safe tally shared by all clients of one backend (or one test)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[tuple[str, str]] = Counter()
        self._failed: Counter[tuple[str, str]] = Counter()

    def record(self, service: str, operation: str, *, failed: bool = False) -> None:
        with self._lock:
            (self._failed if failed else self._counts)[(service, operation)] += 1
        record_storage_request(service, operation, failed=failed)

    def snapshot(self) -> RequestCounts:
        with self._lock:
            return RequestCounts(counts=dict(self._counts), failed=dict(self._failed))

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()
            self._failed.clear()

    @property
    def total(self) -> int:
        """Responses received so far (all services and operations)."""
        with self._lock:
            return sum(self._counts.values())


class RequestCountingPolicy(SansIOHTTPPolicy[Any, Any]):
    """Counts every response of one service client into a shared ``RequestCounter``."""

    def __init__(self, counter: RequestCounter, service: str) -> None:
        if service not in SERVICES:
            raise ValueError(f"service: must be one of {SERVICES}, got {service!r}")
        self._counter = counter
        self._service = service

    def on_response(
        self, request: PipelineRequest[Any], response: PipelineResponse[Any, Any]
    ) -> None:
        self._counter.record(self._service, self._operation(request))

    def on_exception(self, request: PipelineRequest[Any]) -> None:
        self._counter.record(self._service, self._operation(request), failed=True)

    def _operation(self, request: PipelineRequest[Any]) -> str:
        http = request.http_request
        return operation_name(self._service, http.method, http.url, http.headers)


def operation_name(service: str, method: str, url: str, headers: Any = None) -> str:
    """The REST operation name of a storage request (``"Unknown<Method>"`` if unrecognised)."""
    parts = urlsplit(url)
    segments = [unquote(s) for s in parts.path.split("/") if s]
    if _is_path_style(parts.hostname or "") and segments:
        segments = segments[1:]  # emulator URLs carry the account name as first segment
    query = {k.lower(): v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
    method = method.upper()
    has_if_match = bool(headers and any(h.lower() == "if-match" for h in headers))
    if service == "queue":
        return _queue_operation(method, segments, query)
    if service == "table":
        return _table_operation(method, segments, has_if_match)
    return _blob_operation(method, segments, query)


def _is_path_style(host: str) -> bool:
    if host in ("localhost", "host.docker.internal"):
        return True
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


_SERVICE_COMP = {
    ("GET", "list"): "List",
    ("GET", "properties"): "GetServiceProperties",
    ("PUT", "properties"): "SetServiceProperties",
    ("GET", "stats"): "GetServiceStats",
}


def _queue_operation(method: str, seg: list[str], q: dict[str, str]) -> str:
    comp = q.get("comp", "")
    if not seg:
        name = _SERVICE_COMP.get((method, comp))
        return "ListQueues" if name == "List" else name or f"Unknown{method}"
    if len(seg) == 1:
        if comp == "metadata":
            return "SetQueueMetadata" if method == "PUT" else "GetQueueMetadata"
        if comp == "acl":
            return "SetQueueACL" if method == "PUT" else "GetQueueACL"
        return {"PUT": "CreateQueue", "DELETE": "DeleteQueue"}.get(method, f"Unknown{method}")
    if len(seg) == 2:
        if method == "GET":
            return "PeekMessages" if q.get("peekonly", "").lower() == "true" else "GetMessages"
        return {"POST": "PutMessage", "DELETE": "ClearMessages"}.get(method, f"Unknown{method}")
    return {"DELETE": "DeleteMessage", "PUT": "UpdateMessage"}.get(method, f"Unknown{method}")


def _table_operation(method: str, seg: list[str], if_match: bool) -> str:
    if not seg:
        return {"GET": "GetServiceProperties", "PUT": "SetServiceProperties"}.get(
            method, f"Unknown{method}"
        )
    first = seg[0]
    if first == "$batch":
        return "Batch"
    if first == "Tables":
        return {"GET": "QueryTables", "POST": "CreateTable"}.get(method, f"Unknown{method}")
    if first.startswith("Tables("):
        return "DeleteTable" if method == "DELETE" else f"Unknown{method}"
    keyed = "(" in first and not first.endswith("()")
    if method == "GET":
        return "GetEntity" if keyed else "QueryEntities"
    if method == "POST":
        return "InsertEntity"
    if method == "DELETE":
        return "DeleteEntity"
    if method == "PUT":
        return "UpdateEntity" if if_match else "InsertOrReplaceEntity"
    if method in ("MERGE", "PATCH"):
        return "MergeEntity" if if_match else "InsertOrMergeEntity"
    return f"Unknown{method}"


def _blob_operation(method: str, seg: list[str], q: dict[str, str]) -> str:
    comp = q.get("comp", "")
    restype = q.get("restype", "")
    if not seg:
        name = _SERVICE_COMP.get((method, comp))
        return "ListContainers" if name == "List" else name or f"Unknown{method}"
    if len(seg) == 1 and restype == "container":
        if comp == "list":
            return "ListBlobs"
        if comp in ("metadata", "acl", "lease"):
            return f"{'Set' if method == 'PUT' else 'Get'}Container{comp.capitalize()}"
        return {
            "PUT": "CreateContainer",
            "DELETE": "DeleteContainer",
            "GET": "GetContainerProperties",
            "HEAD": "GetContainerProperties",
        }.get(method, f"Unknown{method}")
    blob_comps = {"block": "PutBlock", "blocklist": "PutBlockList", "lease": "LeaseBlob"}
    if comp in blob_comps and method == "PUT":
        return blob_comps[comp]
    if comp == "metadata":
        return "SetBlobMetadata" if method == "PUT" else "GetBlobMetadata"
    return {
        "PUT": "PutBlob",
        "GET": "GetBlob",
        "HEAD": "GetBlobProperties",
        "DELETE": "DeleteBlob",
    }.get(method, f"Unknown{method}")
