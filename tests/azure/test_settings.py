"""AzureStorageSettings: validation naming the rule, from_env, secrets never shown."""

from __future__ import annotations

import dataclasses
import threading
from datetime import timedelta
from typing import Any

import pytest
from azure.core.credentials import AccessToken

from durable_azstorage.azure.provider import AzureStorageBackend
from durable_azstorage.azure.settings import AzureStorageSettings
from durable_azstorage.azure.storage.clients import StorageClients
from durable_azstorage.azure.storage.sync_credential import AsyncFromSyncCredential
from durable_azstorage.backend.protocol import (
    CheckpointHooks,
    DeliveryLimit,
    LockTimeout,
    NamedHub,
    OwnClock,
    SettingsBacked,
)

KEY = "c2VjcmV0LWtleS1ub2JvZHktbXVzdC1zZWUtdGhpcw=="
CONN = (
    "DefaultEndpointsProtocol=https;AccountName=myacct;"
    f"AccountKey={KEY};EndpointSuffix=core.windows.net"
)
SAS = "?sv=2024-01-01&ss=qtb&sig=TOPSECRETSIGNATURE"


def test_defaults() -> None:
    s = AzureStorageSettings(connection_string=CONN)
    assert s.task_hub == "default"
    assert s.partition_count == 4
    assert s.extended_sessions is True
    assert s.control_queue_batch_size == 32
    assert s.local_activities == 32
    assert s.control_queue_visibility_timeout == timedelta(seconds=30)
    assert s.work_item_visibility_timeout == timedelta(seconds=30)
    # A crashed worker's messages are visible again by the time its partitions move.
    assert s.control_queue_visibility_timeout <= s.lease_interval
    assert s.max_timer_delay < timedelta(days=7)
    assert s.worker_id
    assert s.account_name == "myacct"
    assert s.names.partitions_table == "defaultPartitions"


@pytest.mark.parametrize(
    ("changes", "pattern"),
    [
        ({"task_hub": "x"}, "task_hub: .*3-45 characters"),
        ({"task_hub": "my-hub"}, "task_hub: .*letters and digits"),
        ({"partition_count": 0}, r"partition_count: .*1 <= partition_count <= 16"),
        ({"partition_count": 17}, r"partition_count: .*1 <= partition_count <= 16"),
        ({"max_poll_interval": timedelta(0)}, "max_poll_interval: must be positive"),
        ({"max_poll_interval": 5}, "max_poll_interval: must be a datetime.timedelta"),
        ({"max_dequeue_count": 0}, "max_dequeue_count: .*1 <= max_dequeue_count"),
        ({"control_queue_batch_size": 33}, r"control_queue_batch_size: .*<= 32"),
        ({"local_activities": -1}, r"local_activities: .*0 <= local_activities"),
        ({"local_activities": 1.5}, r"local_activities: must be an integer"),
        (
            {"work_item_visibility_timeout": timedelta(days=8)},
            "work_item_visibility_timeout: must be at most 7 days",
        ),
        ({"max_timer_delay": timedelta(days=7, seconds=1)}, "max_timer_delay: must be at most"),
        (
            {"lease_renew_interval": timedelta(seconds=30)},
            "lease_renew_interval: must be shorter than lease_interval",
        ),
        (
            {"lease_acquire_interval": timedelta(seconds=-1)},
            "lease_acquire_interval: must be positive",
        ),
        ({"worker_id": " "}, "worker_id: must be a non-empty string"),
        ({"extended_sessions": "yes"}, "extended_sessions: must be a bool"),
        ({"shared_partitions": 1}, "shared_partitions: must be a bool"),
        ({"retry_attempts": 0}, "retry_attempts"),
    ],
)
def test_invalid_values_name_the_setting_and_rule(changes: dict[str, Any], pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern):
        AzureStorageSettings(connection_string=CONN, **changes)


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({}, "connection_string/account_url: one is required"),
        (
            {"connection_string": CONN, "account_url": "https://a.queue.core.windows.net"},
            "not both",
        ),
        ({"connection_string": "garbage-without-equals"}, "connection_string: segment #1"),
        (
            {"connection_string": f"AccountName=a;Key={KEY}"},
            "neither AccountKey nor SharedAccessSignature",
        ),
        ({"connection_string": f"AccountKey={KEY}"}, "neither AccountName nor a service Endpoint"),
        (
            {"connection_string": CONN, "credential": KEY},
            "credential: not used with connection_string",
        ),
        ({"account_url": "ftp://a"}, "account_url: must be an http"),
        (
            {"account_url": "https://a.queue.core.windows.net" + SAS, "credential": KEY},
            "must not carry a query",
        ),
        ({"account_url": "https://a.queue.core.windows.net"}, "credential: required"),
    ],
)
def test_account_errors_never_echo_secrets(kwargs: dict[str, Any], pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern) as info:
        AzureStorageSettings(**kwargs)
    text = str(info.value)
    assert KEY not in text and "TOPSECRET" not in text and "garbage" not in text


class _SyncCredential:
    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken("token-secret", 0)


class _AsyncCredential:
    async def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken("token-secret", 0)


def test_sync_and_async_token_credentials_are_accepted() -> None:
    """The sync client's users hold a sync azure-identity credential; the backend's .aio
    clients get it wrapped (its token requests run on a worker thread)."""
    for credential in (_SyncCredential(), _AsyncCredential()):
        s = AzureStorageSettings(
            account_url="https://acct.queue.core.windows.net", credential=credential
        )
        assert s.account_name == "acct"


async def test_a_sync_credential_is_awaited_off_the_event_loop() -> None:
    loop_thread = threading.get_ident()
    seen: list[tuple[tuple[str, ...], int]] = []

    class Recording:
        def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
            seen.append((scopes, threading.get_ident()))
            return AccessToken("token-secret", 0)

    settings = AzureStorageSettings(
        account_url="https://acct.queue.core.windows.net", credential=Recording()
    )
    async with StorageClients(settings) as clients:
        credential = clients.queue("q").credential  # what the .aio client's auth policy awaits
    assert isinstance(credential, AsyncFromSyncCredential)
    token = await credential.get_token("https://storage.azure.com/.default")
    assert token.token == "token-secret"
    assert seen[0][0] == ("https://storage.azure.com/.default",) and seen[0][1] != loop_thread
    async_one = _AsyncCredential()
    async with StorageClients(dataclasses.replace(settings, credential=async_one)) as clients:
        assert clients.queue("q").credential is async_one


@pytest.mark.parametrize(
    "settings",
    [
        AzureStorageSettings(connection_string=CONN),
        AzureStorageSettings(account_url="https://myacct.blob.core.windows.net", credential=KEY),
        AzureStorageSettings(account_url="https://myacct.blob.core.windows.net", credential=SAS),
        AzureStorageSettings(connection_string="UseDevelopmentStorage=true"),
    ],
)
def test_repr_and_str_hide_secrets(settings: AzureStorageSettings) -> None:
    for text in (repr(settings), str(settings), f"{settings}", repr([settings])):
        assert KEY not in text
        assert "TOPSECRET" not in text
        assert "AccountKey" not in text
        assert "AzureStorageSettings(account=" in text
        assert "task_hub='default'" in text


def test_from_env_reads_prefixed_variables() -> None:
    env = {
        "DURABLE_AZSTORAGE_CONNECTION_STRING": CONN,
        "DURABLE_AZSTORAGE_TASK_HUB": "Orders",
        "DURABLE_AZSTORAGE_PARTITION_COUNT": "8",
        "DURABLE_AZSTORAGE_MAX_POLL_INTERVAL": "2.5",
        "DURABLE_AZSTORAGE_EXTENDED_SESSIONS": "false",
        "DURABLE_AZSTORAGE_WORKER_ID": "w1",
        "DURABLE_AZSTORAGE_SHARED_PARTITIONS": "true",
    }
    s = AzureStorageSettings.from_env(env)
    assert s.shared_partitions is True
    assert (s.task_hub, s.partition_count, s.worker_id) == ("Orders", 8, "w1")
    assert s.max_poll_interval == timedelta(seconds=2.5)
    assert s.extended_sessions is False
    assert AzureStorageSettings.from_env(env, task_hub="Other").task_hub == "Other"


def test_from_env_falls_back_to_the_azure_variable() -> None:
    s = AzureStorageSettings.from_env({"AZURE_STORAGE_CONNECTION_STRING": CONN})
    assert s.account_name == "myacct"
    preferred = AzureStorageSettings.from_env(
        {
            "AZURE_STORAGE_CONNECTION_STRING": "UseDevelopmentStorage=true",
            "DURABLE_AZSTORAGE_CONNECTION_STRING": CONN,
        }
    )
    assert preferred.account_name == "myacct"


def test_from_env_account_url_with_key_or_sas() -> None:
    s = AzureStorageSettings.from_env(
        {
            "DURABLE_AZSTORAGE_ACCOUNT_URL": "https://acct.table.core.windows.net",
            "DURABLE_AZSTORAGE_SAS_TOKEN": SAS[1:],
        }
    )
    assert s.credential == SAS
    assert "TOPSECRET" not in repr(s)


def test_from_env_parse_errors_name_the_variable() -> None:
    with pytest.raises(ValueError, match="DURABLE_AZSTORAGE_PARTITION_COUNT: cannot parse 'four'"):
        AzureStorageSettings.from_env(
            {
                "DURABLE_AZSTORAGE_CONNECTION_STRING": CONN,
                "DURABLE_AZSTORAGE_PARTITION_COUNT": "four",
            }
        )
    with pytest.raises(ValueError, match="partition_count: 20 is out of range"):
        AzureStorageSettings.from_env(
            {"DURABLE_AZSTORAGE_CONNECTION_STRING": CONN, "DURABLE_AZSTORAGE_PARTITION_COUNT": "20"}
        )
    with pytest.raises(ValueError, match="connection_string/account_url: one is required"):
        AzureStorageSettings.from_env({})


def test_settings_are_frozen_and_replace_revalidates() -> None:
    s = AzureStorageSettings(connection_string=CONN)
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.task_hub = "other"  # type: ignore[misc]
    with pytest.raises(ValueError, match="task_hub"):
        dataclasses.replace(s, task_hub="no")
    assert s.with_task_hub("Other").task_hub == "Other"


def test_create_backend_builds_the_azure_backend_on_these_settings() -> None:
    settings = AzureStorageSettings(connection_string=CONN)
    backend = settings.create_backend()
    assert isinstance(backend, AzureStorageBackend) and backend.settings is settings
    # what the worker and the CLI look for on it (backend.protocol's optional capabilities)
    assert isinstance(backend, LockTimeout) and isinstance(backend, SettingsBacked)
    assert isinstance(backend, CheckpointHooks) and not isinstance(backend, OwnClock)
    assert isinstance(settings, DeliveryLimit) and isinstance(settings, NamedHub)


def test_wakeup_interval_can_be_turned_off_or_tuned_from_env() -> None:
    base = {"DURABLE_AZSTORAGE_CONNECTION_STRING": CONN}
    assert AzureStorageSettings.from_env(base).wakeup_interval == timedelta(seconds=2)
    off = AzureStorageSettings.from_env({**base, "DURABLE_AZSTORAGE_WAKEUP_INTERVAL": "off"})
    assert off.wakeup_interval is None
    tuned = AzureStorageSettings.from_env({**base, "DURABLE_AZSTORAGE_WAKEUP_INTERVAL": "0.5"})
    assert tuned.wakeup_interval == timedelta(seconds=0.5)
    with pytest.raises(ValueError, match="wakeup_interval: must be positive"):
        AzureStorageSettings(connection_string=CONN, wakeup_interval=timedelta(seconds=-1))


def test_wakeup_backoff_ratio_is_a_fraction_tunable_from_env() -> None:
    base = {"DURABLE_AZSTORAGE_CONNECTION_STRING": CONN}
    assert AzureStorageSettings.from_env(base).wakeup_backoff_ratio == 0.08
    tuned = AzureStorageSettings.from_env({**base, "DURABLE_AZSTORAGE_WAKEUP_BACKOFF_RATIO": "0.2"})
    assert tuned.wakeup_backoff_ratio == 0.2
    for bad in (0, -0.1, 1.5):
        with pytest.raises(
            ValueError, match=r"wakeup_backoff_ratio: .* 0 < wakeup_backoff_ratio <= 1"
        ):
            AzureStorageSettings(connection_string=CONN, wakeup_backoff_ratio=bad)
    with pytest.raises(ValueError, match="wakeup_backoff_ratio: must be a number, got str"):
        AzureStorageSettings(connection_string=CONN, wakeup_backoff_ratio="fast")  # type: ignore[arg-type]
