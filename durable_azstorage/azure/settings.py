"""``AzureStorageSettings``: where a task hub lives and how the Azure backend behaves.

The settings are a frozen value, validated on construction (``ValueError`` naming the setting
and the rule). Secrets — the connection string, account keys, SAS tokens and credential
objects — are never shown: ``repr``/``str`` print only the account name, and no error message
echoes a secret value. (``dataclasses.asdict`` still returns them; do not log its result.)

This module imports no Azure SDK package at import time, so the package facade stays cheap;
the worker and client obtain a backend through ``create_backend()`` and never import ``azure``.
"""

from __future__ import annotations

import dataclasses
import os
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from durable_azstorage.azure.storage.naming import (
    TaskHubNames,
    validate_partition_count,
    validate_task_hub_name,
)
from durable_azstorage.model.archive import DEFAULT_ARCHIVED_EXECUTIONS, MAX_ARCHIVED_EXECUTIONS

if TYPE_CHECKING:  # pragma: no cover
    from durable_azstorage.backend.protocol import Backend

ENV_PREFIX = "DURABLE_AZSTORAGE_"
MAX_QUEUE_VISIBILITY = timedelta(days=7)  # Azure Queue Storage's limit for visibility timeouts

# The account Azurite (and the old storage emulator) always has; the key is public.
DEV_ACCOUNT_NAME = "devstoreaccount1"
DEV_ACCOUNT_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)


def _default_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


def parse_connection_string(connection_string: str) -> dict[str, str]:
    """Split ``Key=Value;...`` into a dict; errors name the problem, never the value."""
    parts: dict[str, str] = {}
    for index, segment in enumerate(connection_string.split(";")):
        segment = segment.strip()
        if not segment:
            continue
        key, sep, value = segment.partition("=")
        if not sep or not key.strip():
            raise ValueError(
                f"connection_string: segment #{index + 1} is not of the form Key=Value "
                "(value not shown: connection strings are secret)"
            )
        parts[key.strip()] = value
    return parts


@dataclass(frozen=True, kw_only=True, repr=False)
class AzureStorageSettings:
    """Settings of one task hub in one storage account.

    Give either ``connection_string`` (Azurite: ``UseDevelopmentStorage=true`` or the string
    printed by ``durable-azstorage azurite``) or ``account_url`` plus ``credential``.
    ``account_url`` is any one service endpoint, e.g. ``https://acct.queue.core.windows.net``;
    the blob/queue/table endpoints are derived by swapping the service label. ``credential`` is
    an account key (str), a SAS token (str starting with ``?`` or containing ``sig=``), an
    ``AzureNamedKeyCredential``/``AzureSasCredential``, or an azure-identity credential, sync
    (``azure.identity.DefaultAzureCredential()``: its token requests run on a worker thread,
    ``azure.storage.sync_credential``) or async (``azure.identity.aio.DefaultAzureCredential()``).

    Defaults and what they cost (prices: queue/table operations are billed per 10,000):

    * ``task_hub="default"``, ``partition_count=4``: 4 control queues, so at most 4 workers
      share orchestration work (activities scale independently); every idle partition is polled.
      Fixed when the hub is created.
    * ``max_poll_interval=10 s``: the upper bound of the idle back-off. An idle worker owning all
      4 partitions polls 5 queues, ≈ 43,000 requests/day (≈ $0.02/day); messages enqueued by
      another process wait at most this long, unless the wake-up signal (below) is on.
      DTFx uses 30 s (cheaper, slower to wake).
    * ``wakeup_interval=2 s``, ``wakeup_backoff_ratio=0.08``: while its queue receivers poll
      slower than this watch would, a worker reads one small blob (``$wakeup``): every 50 ms
      right after it saw work, then every ``wakeup_backoff_ratio`` times the time since it last
      saw work, at most every ``wakeup_interval`` (reached after 25 s idle: then ≈ 30 requests/min
      per worker; a quiet period costs ≈ 60 reads on the way there). A client touches the blob
      after sending (one write, at most one per 0.1 s plus one trailing), so a start from
      another process reaches a worker in about 8 % of the worker's quiet time before it (at
      least 50 ms, at most ``wakeup_interval``) instead of ``max_poll_interval``. ``None`` turns
      it off (no reads, no touches).
    * ``max_dequeue_count=10``: a message delivered more often is poison and is set aside.
      Legitimate redeliveries (lease moves, crashes, long episodes) stay well below it; a
      poison message costs at most 10 visibility timeouts before it is stopped.
    * ``extended_sessions=True``: live orchestration states are cached while the partition is
      owned, saving a History read (one table query per episode) at the cost of memory.
    * ``archived_executions=10``: histories of earlier executions (ended by continue-as-new
      or replaced by a restart) kept per instance, one blob each, readable with
      ``get_orchestration_history(id, execution_id=...)``; 0 keeps none. Costs one blob
      write per continue-as-new (and one delete once the limit is reached); nothing for
      instances that never continue as new.
    * ``local_activities=32``: activity requests a worker may run itself when it commits the
      episode that scheduled them (and runs activities), instead of sending them through the
      work-item queue: up to this many waiting or running at once; the rest use the queue.
      Saves a send, a receive and a delete per activity (a 5-activity sequence: about 10 of
      25 requests). The consumed message stays hidden as their durable record (renewed in
      the last third of its visibility timeout: ≈ one request per 20 s); after a crash they run
      again, like any activity. 0 turns it off. Off with ``shared_partitions``.
    * ``control_queue_batch_size=32`` (Azure maximum): messages per control-queue receive.
    * ``control_queue_visibility_timeout`` / ``work_item_visibility_timeout`` = 30 s: how long
      a received message stays hidden; renewed while work runs (every third of it: one
      UpdateMessage per message of a work item every 10 s, so a long activity costs 6 requests
      a minute), so it bounds the delay before a crashed worker's messages are redelivered. At
      most ``lease_interval`` (keep it so) so that, after a crash, they are visible again by the time the
      partition is taken over: every instance makes progress within ≈ 40 s (the .NET
      provider's 5 minutes stalled them that long).
    * ``max_timer_delay = 7 days - 1 h``: timers further out are chained through intermediate
      messages (queue visibility cannot exceed 7 days; the margin absorbs clock skew). Tests
      shorten it to exercise chaining.
    * ``worker_id = "<hostname>-<pid>"``: the lease owner name written to the Partitions table.
    * ``lease_interval=30 s``, ``lease_renew_interval=10 s``, ``lease_acquire_interval=10 s``
      (DTFx defaults): a crashed worker's partitions are taken over within ~30–40 s; each
      worker renews its leases (1 table write per owned partition) every 10 s and scans the
      lease table every 10 s.
    * ``retry_attempts=6``: attempts per storage operation on transient errors (408/429/5xx,
      connection failures), with exponential back-off and full jitter (at most ≈ 3 s of waiting in total).
    * ``shared_partitions=False``: with True, every worker receives every control queue
      (competing consumers; commits stay ETag-guarded) instead of leasing partitions. Then an
      instance a worker defers (a version its ``use_versioning`` rejects, no connected SDK
      worker whose work-item filters accept it) reaches any worker of the hub, not only the
      partition's owner. Costs: every worker polls every control queue, and an instance's
      messages may be split between workers (the loser of the commit race retries).
    """

    connection_string: str | None = None
    account_url: str | None = None
    credential: Any = None
    task_hub: str = "default"
    partition_count: int = 4
    max_poll_interval: timedelta = timedelta(seconds=10)
    wakeup_interval: timedelta | None = timedelta(seconds=2)
    wakeup_backoff_ratio: float = 0.08
    max_dequeue_count: int = 10
    extended_sessions: bool = True
    archived_executions: int = DEFAULT_ARCHIVED_EXECUTIONS
    local_activities: int = 32
    control_queue_batch_size: int = 32
    control_queue_visibility_timeout: timedelta = timedelta(seconds=30)
    work_item_visibility_timeout: timedelta = timedelta(seconds=30)
    max_timer_delay: timedelta = MAX_QUEUE_VISIBILITY - timedelta(hours=1)
    worker_id: str = field(default_factory=_default_worker_id)
    lease_interval: timedelta = timedelta(seconds=30)
    lease_renew_interval: timedelta = timedelta(seconds=10)
    lease_acquire_interval: timedelta = timedelta(seconds=10)
    retry_attempts: int = 6
    shared_partitions: bool = False

    def __post_init__(self) -> None:
        self._validate_account()
        validate_task_hub_name(self.task_hub)
        validate_partition_count(self.partition_count)
        _positive_duration("max_poll_interval", self.max_poll_interval)
        if self.wakeup_interval is not None:
            _positive_duration("wakeup_interval", self.wakeup_interval)
        _ratio("wakeup_backoff_ratio", self.wakeup_backoff_ratio)
        _int_in_range("max_dequeue_count", self.max_dequeue_count, 1, 1000)
        for flag in ("extended_sessions", "shared_partitions"):
            if not isinstance(getattr(self, flag), bool):
                raise ValueError(f"{flag}: must be a bool")
        _int_in_range("archived_executions", self.archived_executions, 0, MAX_ARCHIVED_EXECUTIONS)
        _int_in_range("local_activities", self.local_activities, 0, 10_000)
        _int_in_range("control_queue_batch_size", self.control_queue_batch_size, 1, 32)
        for name in ("control_queue_visibility_timeout", "work_item_visibility_timeout"):
            _positive_duration(name, getattr(self, name), maximum=MAX_QUEUE_VISIBILITY)
        _positive_duration("max_timer_delay", self.max_timer_delay, maximum=MAX_QUEUE_VISIBILITY)
        if not isinstance(self.worker_id, str) or not self.worker_id.strip():
            raise ValueError("worker_id: must be a non-empty string")
        for name in ("lease_interval", "lease_renew_interval", "lease_acquire_interval"):
            _positive_duration(name, getattr(self, name))
        if self.lease_renew_interval >= self.lease_interval:
            raise ValueError(
                "lease_renew_interval: must be shorter than lease_interval "
                f"({self.lease_renew_interval} >= {self.lease_interval}), or leases expire "
                "between renewals"
            )
        _int_in_range("retry_attempts", self.retry_attempts, 1, 100)

    def _validate_account(self) -> None:
        if self.connection_string is not None and self.account_url is not None:
            raise ValueError("connection_string/account_url: give one of them, not both")
        if self.connection_string is not None:
            if self.credential is not None:
                raise ValueError(
                    "credential: not used with connection_string (the key or SAS is in it)"
                )
            if not isinstance(self.connection_string, str) or not self.connection_string.strip():
                raise ValueError("connection_string: must be a non-empty string")
            parts = parse_connection_string(self.connection_string)
            if parts.get("UseDevelopmentStorage", "").lower() == "true":
                return
            if "AccountName" not in parts and not any(k.endswith("Endpoint") for k in parts):
                raise ValueError(
                    "connection_string: has neither AccountName nor a service Endpoint "
                    "(value not shown: connection strings are secret)"
                )
            if "AccountKey" not in parts and "SharedAccessSignature" not in parts:
                raise ValueError(
                    "connection_string: has neither AccountKey nor SharedAccessSignature "
                    "(value not shown: connection strings are secret)"
                )
            return
        if self.account_url is None:
            raise ValueError(
                "connection_string/account_url: one is required (set "
                f"{ENV_PREFIX}CONNECTION_STRING, or start Azurite with `durable-azstorage azurite`)"
            )
        url = urlsplit(self.account_url) if isinstance(self.account_url, str) else None
        if url is None or url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError(
                "account_url: must be an http(s) URL such as https://acct.queue.core.windows.net"
            )
        if url.query:
            raise ValueError("account_url: must not carry a query (pass a SAS as credential)")
        if self.credential is None:
            raise ValueError("credential: required with account_url (key, SAS or TokenCredential)")

    # ----------------------------------------------------------------- non-secret views

    @property
    def account_name(self) -> str:
        """The storage account name (not secret), e.g. ``devstoreaccount1``."""
        if self.connection_string is not None:
            parts = parse_connection_string(self.connection_string)
            if parts.get("UseDevelopmentStorage", "").lower() == "true":
                return DEV_ACCOUNT_NAME
            if "AccountName" in parts:
                return parts["AccountName"]
            endpoint = next(v for k, v in parts.items() if k.endswith("Endpoint"))
            return _account_from_url(endpoint)
        assert self.account_url is not None
        return _account_from_url(self.account_url)

    @property
    def names(self) -> TaskHubNames:
        """The resource names of this task hub (ARCHITECTURE.md §4)."""
        return TaskHubNames(self.task_hub, self.partition_count)

    def __repr__(self) -> str:
        shown = ", ".join(
            f"{f.name}={getattr(self, f.name)!r}"
            for f in dataclasses.fields(self)
            if f.name not in ("connection_string", "account_url", "credential")
        )
        kind = "connection_string" if self.connection_string is not None else "account_url"
        return f"AzureStorageSettings(account={self.account_name!r} via {kind}, {shown})"

    __str__ = __repr__

    # ----------------------------------------------------------------- construction

    def with_task_hub(self, task_hub: str) -> AzureStorageSettings:
        """A copy for another task hub in the same account."""
        return dataclasses.replace(self, task_hub=task_hub)

    @classmethod
    def from_connection_string(
        cls, connection_string: str, *, task_hub: str = "default", **overrides: Any
    ) -> AzureStorageSettings:
        """Settings for the account of ``connection_string`` (the Azure SDKs' constructor name)."""
        if not isinstance(connection_string, str) or not connection_string.strip():
            raise ValueError(
                "connection_string: must be a non-empty Azure Storage connection string"
            )
        return cls(connection_string=connection_string, task_hub=task_hub, **overrides)

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, **overrides: Any
    ) -> AzureStorageSettings:
        """Build settings from ``DURABLE_AZSTORAGE_*`` environment variables.

        ``DURABLE_AZSTORAGE_CONNECTION_STRING`` (fallback ``AZURE_STORAGE_CONNECTION_STRING``),
        or ``DURABLE_AZSTORAGE_ACCOUNT_URL`` with ``DURABLE_AZSTORAGE_ACCOUNT_KEY``,
        ``DURABLE_AZSTORAGE_SAS_TOKEN`` or ``DURABLE_AZSTORAGE_USE_IDENTITY=true``
        (``azure.identity.aio.DefaultAzureCredential``, needs the ``identity`` extra). Every
        other field maps to ``DURABLE_AZSTORAGE_<FIELD NAME>``; durations are seconds.
        Keyword ``overrides`` win over the environment.
        """
        source = os.environ if env is None else env
        kwargs: dict[str, Any] = {}
        conn = source.get(ENV_PREFIX + "CONNECTION_STRING") or source.get(
            "AZURE_STORAGE_CONNECTION_STRING"
        )
        if conn:
            kwargs["connection_string"] = conn
        url = source.get(ENV_PREFIX + "ACCOUNT_URL")
        if url:
            kwargs["account_url"] = url
            kwargs["credential"] = _credential_from_env(source)
        for f in dataclasses.fields(cls):
            parse = _ENV_PARSERS.get(f.name)
            name = ENV_PREFIX + f.name.upper()
            raw = source.get(name)
            if parse is None or raw is None or raw == "":
                continue
            try:
                kwargs[f.name] = parse(raw)
            except ValueError:
                raise ValueError(f"{name}: cannot parse {raw!r} as {f.name}") from None
        kwargs.update(overrides)
        return cls(**kwargs)

    def create_backend(self) -> Backend:
        """The Azure Storage backend for these settings (imported lazily: the worker and the
        client call this and so never import the Azure SDK themselves)."""
        from durable_azstorage.azure.provider import AzureStorageBackend

        backend: Backend = AzureStorageBackend(self)
        return backend


def _account_from_url(url: str) -> str:
    parsed = urlsplit(url)
    host = parsed.hostname or ""
    if host.replace(".", "").isdigit() or host in ("localhost", "host.docker.internal"):
        return parsed.path.strip("/").split("/")[0]  # path-style (emulator) URL
    return host.split(".")[0]


def _credential_from_env(source: Mapping[str, str]) -> Any:
    key = source.get(ENV_PREFIX + "ACCOUNT_KEY")
    sas = source.get(ENV_PREFIX + "SAS_TOKEN")
    if key:
        return key
    if sas:
        return sas if sas.startswith("?") else "?" + sas
    if _parse_bool(source.get(ENV_PREFIX + "USE_IDENTITY", "false")):
        from azure.identity.aio import DefaultAzureCredential

        return DefaultAzureCredential()
    return None


def _parse_bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError(raw)


def _parse_seconds(raw: str) -> timedelta:
    return timedelta(seconds=float(raw))


def _parse_optional_seconds(raw: str) -> timedelta | None:
    """Seconds, or ``off``/``none`` to disable the feature."""
    if raw.strip().lower() in ("off", "none", "0"):
        return None
    return _parse_seconds(raw)


_ENV_PARSERS: dict[str, Callable[[str], Any]] = {
    "task_hub": str,
    "partition_count": int,
    "max_poll_interval": _parse_seconds,
    "wakeup_interval": _parse_optional_seconds,
    "wakeup_backoff_ratio": float,
    "max_dequeue_count": int,
    "extended_sessions": _parse_bool,
    "shared_partitions": _parse_bool,
    "archived_executions": int,
    "local_activities": int,
    "control_queue_batch_size": int,
    "control_queue_visibility_timeout": _parse_seconds,
    "work_item_visibility_timeout": _parse_seconds,
    "max_timer_delay": _parse_seconds,
    "worker_id": str,
    "lease_interval": _parse_seconds,
    "lease_renew_interval": _parse_seconds,
    "lease_acquire_interval": _parse_seconds,
    "retry_attempts": int,
}


def _positive_duration(name: str, value: object, maximum: timedelta | None = None) -> None:
    if not isinstance(value, timedelta):
        raise ValueError(f"{name}: must be a datetime.timedelta, got {type(value).__name__}")
    if value <= timedelta(0):
        raise ValueError(f"{name}: must be positive, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name}: must be at most {maximum}, got {value}")


def _ratio(name: str, value: object) -> None:
    """A fraction in (0, 1]: above 1 a poller would wait longer than it has been idle."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name}: must be a number, got {type(value).__name__}")
    if not 0 < value <= 1:
        raise ValueError(f"{name}: {value} is out of range; the rule is 0 < {name} <= 1")


def _int_in_range(name: str, value: object, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name}: must be an integer, got {type(value).__name__}")
    if not low <= value <= high:
        raise ValueError(f"{name}: {value} is out of range; the rule is {low} <= {name} <= {high}")
