"""Client RPCs of the sidecar, driven by the real portable SDK (``durabletask``) on Azurite.

One sidecar (one task hub) and one SDK worker serve the whole module; every test uses its
own instance ids (a uuid prefix), so tests do not see each other's instances.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import grpc
import pytest
from durabletask import task
from durabletask.client import (
    OrchestrationQuery,
    OrchestrationStatus,
    TaskHubGrpcClient,
)
from durabletask.entities import EntityInstanceId
from durabletask.internal import orchestrator_service_pb2 as pb
from durabletask.internal import orchestrator_service_pb2_grpc as pb_grpc
from durabletask.worker import TaskHubGrpcWorker
from google.protobuf import empty_pb2, wrappers_pb2
from sidecar_support import RunningSidecar

from durable_azstorage.model.errors import TaskHubNotFoundError
from durable_azstorage.model.taskhub import TaskHubInfo
from durable_azstorage.testing.eventually import eventually

pytestmark = pytest.mark.azurite

FAR_FUTURE = datetime.now(timezone.utc) + timedelta(days=30)
_flaky_failures: dict[str, int] = {}
_flaky_lock = threading.Lock()


# --- the app the SDK worker runs ----------------------------------------------------------------
def echo(ctx: task.OrchestrationContext, value: Any) -> Any:
    return value


def wait_for_go(ctx: task.OrchestrationContext, _: Any) -> Any:
    data = yield ctx.wait_for_external_event("go")
    return {"got": data}


def parent(ctx: task.OrchestrationContext, child_id: str) -> Any:
    result = yield ctx.call_sub_orchestrator(wait_for_go, input=None, instance_id=child_id)
    return result


def flaky_activity(ctx: task.ActivityContext, key: str) -> str:
    """Fails the first time it runs for ``key``, then succeeds."""
    with _flaky_lock:
        failures = _flaky_failures.get(key, 0)
        _flaky_failures[key] = failures + 1
    if failures == 0:
        raise ValueError(f"first attempt for {key} fails")
    return f"ok:{key}"


def uses_flaky(ctx: task.OrchestrationContext, key: str) -> Any:
    result = yield ctx.call_activity(flaky_activity, input=key)
    return result


@pytest.fixture(scope="module")
def sdk_worker(sidecar_address: str) -> Iterator[TaskHubGrpcWorker]:
    worker = TaskHubGrpcWorker(host_address=sidecar_address)
    for orchestrator in (echo, wait_for_go, parent, uses_flaky):
        worker.add_orchestrator(orchestrator)
    worker.add_activity(flaky_activity)
    worker.start()
    try:
        yield worker
    finally:
        worker.stop()


@pytest.fixture
def ids() -> Iterator[Any]:
    """A unique instance-id prefix for this test, and a maker of ids under it."""
    prefix = f"t{uuid.uuid4().hex[:8]}-"
    yield type("Ids", (), {"prefix": prefix, "new": staticmethod(lambda name: prefix + name)})


@pytest.fixture(scope="module")
def stub(sidecar_address: str) -> Iterator[Any]:
    """The raw generated stub, for fields the SDK client does not expose."""
    channel = grpc.insecure_channel(sidecar_address)
    try:
        yield pb_grpc.TaskHubSidecarServiceStub(channel)
    finally:
        channel.close()


def _code(exc: pytest.ExceptionInfo[grpc.RpcError]) -> grpc.StatusCode:
    return exc.value.code()  # type: ignore[no-any-return,attr-defined]


def _details(exc: pytest.ExceptionInfo[grpc.RpcError]) -> str:
    return exc.value.details()  # type: ignore[no-any-return,attr-defined]


# --- without a worker: scheduling, reading, errors ------------------------------------------------
def test_start_and_get_carry_every_field(
    sdk_client: TaskHubGrpcClient, stub: Any, ids: Any
) -> None:
    assert stub.Hello(empty_pb2.Empty()) == empty_pb2.Empty()
    iid = ids.new("later")
    returned = sdk_client.schedule_new_orchestration(
        "echo",
        input={"n": 1, "s": "ä"},
        instance_id=iid,
        start_at=FAR_FUTURE,
        tags={"team": "a"},
        version="2.0",
    )
    assert returned == iid
    state = sdk_client.get_orchestration_state(iid)
    assert state is not None
    assert state.runtime_status is OrchestrationStatus.PENDING
    assert state.name == "echo" and state.instance_id == iid
    assert state.get_input() == {"n": 1, "s": "ä"}  # the SDK's own JSON, stored as sent
    assert state.serialized_output is None and state.failure_details is None
    assert (
        abs(
            (
                datetime.now(timezone.utc) - state.created_at.replace(tzinfo=timezone.utc)
            ).total_seconds()
        )
        < 120
    )

    light = sdk_client.get_orchestration_state(iid, fetch_payloads=False)
    assert light is not None and light.serialized_input is None

    raw = stub.GetInstance(pb.GetInstanceRequest(instanceId=iid, getInputsAndOutputs=True))
    assert raw.exists
    got = raw.orchestrationState
    assert got.version.value == "2.0" and dict(got.tags) == {"team": "a"}
    assert got.orchestrationStatus == pb.ORCHESTRATION_STATUS_PENDING
    assert not got.HasField("completedTimestamp")
    scheduled = got.scheduledStartTimestamp.ToDatetime(tzinfo=timezone.utc)
    assert abs(scheduled - FAR_FUTURE) < timedelta(milliseconds=1)
    assert got.executionId.value  # the current execution, as StreamInstanceHistory takes it


def test_generated_instance_id(sdk_client: TaskHubGrpcClient, stub: Any) -> None:
    response = stub.StartInstance(
        pb.CreateInstanceRequest(name="echo", scheduledStartTimestamp=None)
    )
    assert len(response.instanceId) == 32  # a uuid4 hex, made by the sidecar
    assert sdk_client.get_orchestration_state(response.instanceId) is not None


def test_unknown_instances(sdk_client: TaskHubGrpcClient, ids: Any) -> None:
    missing = ids.new("missing")
    assert sdk_client.get_orchestration_state(missing) is None
    assert sdk_client.wait_for_orchestration_start(missing, timeout=5) is None
    assert sdk_client.wait_for_orchestration_completion(missing, timeout=5) is None
    calls = [
        lambda: sdk_client.raise_orchestration_event(missing, "go", data=1),
        lambda: sdk_client.terminate_orchestration(missing),
        lambda: sdk_client.suspend_orchestration(missing),
        lambda: sdk_client.resume_orchestration(missing),
        lambda: sdk_client.restart_orchestration(missing),
        lambda: sdk_client.rewind_orchestration(missing),
        lambda: sdk_client.get_orchestration_history(missing),
    ]
    for call in calls:
        with pytest.raises(grpc.RpcError) as exc:
            call()
        assert _code(exc) is grpc.StatusCode.NOT_FOUND
        assert repr(missing) in _details(exc)
    assert sdk_client.purge_orchestration(missing).deleted_instance_count == 0  # idempotent


def test_existing_id_and_reuse_policy(sdk_client: TaskHubGrpcClient, ids: Any) -> None:
    iid = ids.new("dup")
    sdk_client.schedule_new_orchestration("echo", input=1, instance_id=iid, start_at=FAR_FUTURE)
    with pytest.raises(grpc.RpcError) as exc:
        sdk_client.schedule_new_orchestration("echo", input=2, instance_id=iid)
    assert _code(exc) is grpc.StatusCode.ALREADY_EXISTS
    assert "already exists with status Pending" in _details(exc)

    refuse_all = pb.OrchestrationIdReusePolicy(
        replaceableStatus=[pb.ORCHESTRATION_STATUS_COMPLETED]
    )
    with pytest.raises(grpc.RpcError) as exc:
        sdk_client.schedule_new_orchestration(
            "echo", input=3, instance_id=iid, reuse_id_policy=refuse_all
        )
    assert _code(exc) is grpc.StatusCode.ALREADY_EXISTS

    replace_pending = pb.OrchestrationIdReusePolicy(
        replaceableStatus=[pb.ORCHESTRATION_STATUS_PENDING]
    )
    sdk_client.schedule_new_orchestration(
        "echo", input=4, instance_id=iid, start_at=FAR_FUTURE, reuse_id_policy=replace_pending
    )
    state = sdk_client.get_orchestration_state(iid)
    assert state is not None and state.get_input() == 4


def test_wait_on_a_pending_instance_times_out(sdk_client: TaskHubGrpcClient, ids: Any) -> None:
    iid = ids.new("waits")
    sdk_client.schedule_new_orchestration("echo", instance_id=iid, start_at=FAR_FUTURE)
    with pytest.raises(TimeoutError):
        sdk_client.wait_for_orchestration_start(iid, timeout=1)
    with pytest.raises(TimeoutError):
        sdk_client.wait_for_orchestration_completion(iid, timeout=1)


def test_bad_requests_name_the_field(stub: Any) -> None:
    with pytest.raises(grpc.RpcError) as exc:
        stub.StartInstance(pb.CreateInstanceRequest(instanceId="x"))
    assert _code(exc) is grpc.StatusCode.INVALID_ARGUMENT
    assert _details(exc).startswith("name:")
    with pytest.raises(grpc.RpcError) as exc:
        stub.GetInstance(pb.GetInstanceRequest())
    assert _code(exc) is grpc.StatusCode.INVALID_ARGUMENT
    assert _details(exc).startswith("instanceId:")
    with pytest.raises(grpc.RpcError) as exc:
        stub.QueryInstances(
            pb.QueryInstancesRequest(
                query=pb.InstanceQuery(continuationToken=wrappers_pb2.StringValue(value="garbage!"))
            )
        )
    assert _code(exc) is grpc.StatusCode.INVALID_ARGUMENT
    assert _details(exc).startswith("query.continuationToken:")


def test_entity_rpcs_refuse_bad_ids_and_read_missing_entities(
    sdk_client: TaskHubGrpcClient, stub: Any
) -> None:
    assert sdk_client.get_entity(EntityInstanceId("counter", "nobody")) is None
    with pytest.raises(grpc.RpcError) as exc:
        stub.GetEntity(pb.GetEntityRequest(instanceId="counter-without-at"))
    assert _code(exc) is grpc.StatusCode.INVALID_ARGUMENT
    assert _details(exc).startswith("instanceId:") and "'@name@key'" in _details(exc)
    with pytest.raises(grpc.RpcError) as exc:
        stub.SignalEntity(pb.SignalEntityRequest(instanceId="@counter@c1"))
    assert _code(exc) is grpc.StatusCode.INVALID_ARGUMENT
    assert _details(exc).startswith("name:")


def test_query_pages_visit_each_instance_once(
    sdk_client: TaskHubGrpcClient, stub: Any, ids: Any
) -> None:
    made = {ids.new(f"q{i}") for i in range(7)}
    for iid in sorted(made):
        sdk_client.schedule_new_orchestration(
            "echo", input=iid, instance_id=iid, start_at=FAR_FUTURE
        )

    states = sdk_client.get_all_orchestration_states(
        OrchestrationQuery(
            instance_id_prefix=ids.prefix, max_instance_count=3, fetch_inputs_and_outputs=True
        )
    )
    assert sorted(s.instance_id for s in states) == sorted(made)  # each exactly once
    assert all(s.get_input() == s.instance_id for s in states)

    pages, token, seen = 0, None, []
    while True:
        query = pb.InstanceQuery(
            instanceIdPrefix=wrappers_pb2.StringValue(value=ids.prefix), maxInstanceCount=3
        )
        if token is not None:
            query.continuationToken.value = token
        response = stub.QueryInstances(pb.QueryInstancesRequest(query=query))
        pages += 1
        assert len(response.orchestrationState) <= 3
        seen += [s.instanceId for s in response.orchestrationState]
        assert all(not s.HasField("input") for s in response.orchestrationState)
        if not response.HasField("continuationToken"):
            break
        token = response.continuationToken.value
    assert sorted(seen) == sorted(made) and pages >= 3

    pending = sdk_client.get_all_orchestration_states(
        OrchestrationQuery(
            instance_id_prefix=ids.prefix, runtime_status=[OrchestrationStatus.RUNNING]
        )
    )
    assert pending == []


def test_purge_by_filter_refuses_running_statuses(sdk_client: TaskHubGrpcClient) -> None:
    with pytest.raises(grpc.RpcError) as exc:
        sdk_client.purge_orchestrations_by(runtime_status=[OrchestrationStatus.RUNNING])
    assert _code(exc) is grpc.StatusCode.INVALID_ARGUMENT
    assert "cannot purge instances that are Running" in _details(exc)


# --- with the SDK worker: orchestrations run ------------------------------------------------------
def test_run_raise_and_history(
    sdk_client: TaskHubGrpcClient, sdk_worker: TaskHubGrpcWorker, stub: Any, ids: Any
) -> None:
    quick = ids.new("echo")
    sdk_client.schedule_new_orchestration(echo, input=["a", 1], instance_id=quick)
    waiting = ids.new("go")
    sdk_client.schedule_new_orchestration(wait_for_go, instance_id=waiting)

    done = sdk_client.wait_for_orchestration_completion(quick, timeout=60)
    assert done is not None and done.runtime_status is OrchestrationStatus.COMPLETED
    assert done.get_output() == ["a", 1]

    started = sdk_client.wait_for_orchestration_start(waiting, timeout=60)
    assert started is not None and started.runtime_status is OrchestrationStatus.RUNNING
    sdk_client.raise_orchestration_event(waiting, "go", data={"x": 2})
    finished = sdk_client.wait_for_orchestration_completion(waiting, timeout=60)
    assert finished is not None and finished.get_output() == {"got": {"x": 2}}

    history = sdk_client.get_orchestration_history(waiting)
    kinds = [type(e).__name__ for e in history]
    assert "ExecutionStartedEvent" in kinds and "EventRaisedEvent" in kinds
    assert "ExecutionCompletedEvent" in kinds

    execution = stub.GetInstance(
        pb.GetInstanceRequest(instanceId=waiting)
    ).orchestrationState.executionId
    chunks = list(
        stub.StreamInstanceHistory(
            pb.StreamInstanceHistoryRequest(instanceId=waiting, executionId=execution)
        )
    )
    assert sum(len(c.events) for c in chunks) == len(history)
    with pytest.raises(grpc.RpcError) as exc:
        list(
            stub.StreamInstanceHistory(
                pb.StreamInstanceHistoryRequest(
                    instanceId=waiting, executionId=wrappers_pb2.StringValue(value="old-execution")
                )
            )
        )
    assert _code(exc) is grpc.StatusCode.INVALID_ARGUMENT
    assert _details(exc).startswith(
        f"executionId: execution 'old-execution' of orchestration {waiting!r} is not kept"
    )


def test_suspend_resume_and_terminate_recursive(
    sdk_client: TaskHubGrpcClient, sdk_worker: TaskHubGrpcWorker, ids: Any
) -> None:
    lone = ids.new("lone")
    sdk_client.schedule_new_orchestration(wait_for_go, instance_id=lone)
    sdk_client.wait_for_orchestration_start(lone, timeout=60)
    sdk_client.suspend_orchestration(lone, reason="maintenance")
    _wait_for_status(sdk_client, lone, OrchestrationStatus.SUSPENDED)
    sdk_client.raise_orchestration_event(lone, "go", data="while suspended")
    sdk_client.resume_orchestration(lone, reason="done")
    resumed = sdk_client.wait_for_orchestration_completion(lone, timeout=60)
    assert resumed is not None and resumed.get_output() == {"got": "while suspended"}

    top, child = ids.new("parent"), ids.new("child")
    sdk_client.schedule_new_orchestration(parent, input=child, instance_id=top)
    _wait_for_status(sdk_client, child, OrchestrationStatus.RUNNING)
    sdk_client.terminate_orchestration(top, output="stopped", recursive=True)
    ended = sdk_client.wait_for_orchestration_completion(top, timeout=60)
    assert ended is not None and ended.runtime_status is OrchestrationStatus.TERMINATED
    assert ended.get_output() == "stopped"
    child_state = sdk_client.wait_for_orchestration_completion(child, timeout=60)
    assert child_state is not None and child_state.runtime_status is OrchestrationStatus.TERMINATED


def test_restart_rewind_list_and_purge(
    sdk_client: TaskHubGrpcClient, sdk_worker: TaskHubGrpcWorker, stub: Any, ids: Any
) -> None:
    before = datetime.now(timezone.utc)
    first = ids.new("first")
    sdk_client.schedule_new_orchestration(echo, input="one", instance_id=first)
    assert sdk_client.wait_for_orchestration_completion(first, timeout=60) is not None

    renamed = sdk_client.restart_orchestration(first, restart_with_new_instance_id=True)
    assert renamed != first
    assert sdk_client.restart_orchestration(first) == first  # same id, from Completed
    for iid in (first, renamed):
        state = sdk_client.wait_for_orchestration_completion(iid, timeout=60)
        assert state is not None and state.get_output() == "one"

    flaky = ids.new("flaky")
    sdk_client.schedule_new_orchestration(uses_flaky, input=flaky, instance_id=flaky)
    failed = sdk_client.wait_for_orchestration_completion(flaky, timeout=60)
    assert failed is not None and failed.runtime_status is OrchestrationStatus.FAILED
    assert failed.failure_details is not None and "first attempt" in failed.failure_details.message
    with pytest.raises(grpc.RpcError) as exc:
        sdk_client.restart_orchestration(ids.new("never"))
    assert _code(exc) is grpc.StatusCode.NOT_FOUND
    sdk_client.rewind_orchestration(flaky, reason="fixed")
    rewound = _wait_for_status(sdk_client, flaky, OrchestrationStatus.COMPLETED)
    assert rewound.get_output() == f"ok:{flaky}"
    with pytest.raises(grpc.RpcError) as exc:
        sdk_client.rewind_orchestration(flaky)  # not failed any more
    assert _code(exc) is grpc.StatusCode.FAILED_PRECONDITION

    ended = {first, flaky}  # ``renamed`` is a uuid outside this test's prefix
    listed: list[str] = []
    token = None
    while True:
        page = sdk_client.list_instance_ids(
            runtime_status=[OrchestrationStatus.COMPLETED],
            completed_time_from=before,
            page_size=2,
            continuation_token=token,
        )
        listed += page.items
        if page.continuation_token is None:
            break
        token = page.continuation_token
    mine = [i for i in listed if i.startswith(ids.prefix)]
    assert sorted(mine) == sorted(ended) and renamed in listed
    assert len(listed) == len(set(listed))
    earlier = sdk_client.list_instance_ids(completed_time_to=before, page_size=1000)
    assert not [i for i in earlier.items if i.startswith(ids.prefix)]

    running = ids.new("running")
    sdk_client.schedule_new_orchestration(wait_for_go, instance_id=running)
    sdk_client.wait_for_orchestration_start(running, timeout=60)
    with pytest.raises(grpc.RpcError) as exc:
        sdk_client.purge_orchestration(running)
    assert _code(exc) is grpc.StatusCode.FAILED_PRECONDITION

    assert sdk_client.purge_orchestration(first).deleted_instance_count == 1
    assert sdk_client.get_orchestration_state(first) is None
    result = sdk_client.purge_orchestrations_by(
        created_time_from=before, runtime_status=[OrchestrationStatus.COMPLETED]
    )
    assert result.deleted_instance_count >= 2 and result.is_complete is True
    assert sdk_client.get_orchestration_state(renamed) is None
    assert sdk_client.get_orchestration_state(flaky) is None
    assert sdk_client.get_orchestration_state(running) is not None  # running: never purged
    sdk_client.terminate_orchestration(running)


def _wait_for_status(client: TaskHubGrpcClient, iid: str, status: OrchestrationStatus) -> Any:
    return eventually(
        lambda: client.get_orchestration_state(iid),
        until=lambda state: state is not None and state.runtime_status is status,
        timeout=60,
        interval=0.1,
        what=f"{iid} to become {status}",
    )


def test_hub_wiping_rpcs_are_refused_without_allow_hub_management(
    new_sidecar: Callable[..., RunningSidecar],
) -> None:
    running = new_sidecar()
    with grpc.insecure_channel(running.address) as channel:
        hub_stub = pb_grpc.TaskHubSidecarServiceStub(channel)
        for call, rpc in (
            (lambda: hub_stub.DeleteTaskHub(pb.DeleteTaskHubRequest()), "DeleteTaskHub"),
            (
                lambda: hub_stub.CreateTaskHub(pb.CreateTaskHubRequest(recreateIfExists=True)),
                "CreateTaskHub(recreateIfExists=true)",
            ),
        ):
            with pytest.raises(grpc.RpcError) as refused:
                call()
            assert _code(refused) is grpc.StatusCode.PERMISSION_DENIED
            assert _details(refused).startswith(rpc) and "--allow-hub-management" in _details(
                refused
            )
        hub_stub.CreateTaskHub(pb.CreateTaskHubRequest())  # creates what is missing: harmless

    async def hub_intact() -> bool:
        backend = running.settings.create_backend()
        try:
            info = await backend.get_task_hub_info()
            return not info.missing
        finally:
            await backend.stop()

    assert running.run(hub_intact())


def test_task_hub_rpcs(new_sidecar: Callable[..., RunningSidecar]) -> None:
    running = new_sidecar(allow_hub_management=True)

    async def hub_info() -> TaskHubInfo:
        backend = running.settings.create_backend()
        try:
            return await backend.get_task_hub_info()
        finally:
            await backend.stop()

    with grpc.insecure_channel(running.address) as channel:
        hub_stub = pb_grpc.TaskHubSidecarServiceStub(channel)
        hub_stub.DeleteTaskHub(pb.DeleteTaskHubRequest())
        with pytest.raises(TaskHubNotFoundError):
            running.run(hub_info())
        hub_stub.CreateTaskHub(pb.CreateTaskHubRequest(recreateIfExists=True))
        info = running.run(hub_info())
        assert info.partition_count == running.settings.partition_count and not info.missing
