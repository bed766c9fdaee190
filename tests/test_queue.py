"""The batch queue against a real Azurite, and its settings without any network."""
from __future__ import annotations

import json
import time
import uuid

import pytest


from wpmsync.errors import ConfigError
from wpmsync.queue import (
    DEFAULT_QUEUE_NAME,
    DEV_CONNECTION_STRING,
    BatchQueue,
    dev_storage,
    service_client_from_env,
)


class NoTokenCredential:
    """A TokenCredential stand-in: these tests never send a request with it."""

    def __init__(self, client_id=None):
        self.client_id = client_id

    def get_token(self, *scopes, **kwargs):  # pragma: no cover - never called
        raise AssertionError("no network in this test")


def fresh_queue(conn: str, **env) -> BatchQueue:
    name = f"t{uuid.uuid4().hex[:12]}"
    q = BatchQueue.from_env({"AzureWebJobsStorage": conn, **env}, name=name)
    q.ensure()
    return q


def drain(q: BatchQueue, expected: int, timeout: float = 30) -> list[str]:
    texts: list[str] = []
    deadline = time.monotonic() + timeout
    while len(texts) < expected and time.monotonic() < deadline:
        got = q.receive(max_messages=32, visibility_timeout=60)
        for text, raw in got:
            texts.append(text)
            q.delete(raw)
        if not got:
            time.sleep(0.05)
    return texts


# ---------------------------------------------------------------- real Azurite
def test_ensure_send_receive_delete_200(azurite):
    q = fresh_queue(azurite)
    q.ensure()  # idempotent: an existing queue is fine
    messages = [{"job": "j1", "site": 2 + i % 7, "from": i * 100, "to": i * 100 + 99, "n": i} for i in range(200)]
    started = time.perf_counter()
    assert q.send(messages) == 200
    elapsed = time.perf_counter() - started
    print(f"sent 200 messages in {elapsed:.2f} s ({200 / elapsed:.0f}/s)")
    texts = drain(q, 200)
    assert len(texts) == 200
    assert sorted(json.loads(t)["n"] for t in texts) == list(range(200))
    assert q.receive() == []  # all deleted
    assert q.client.get_queue_properties().approximate_message_count == 0


def test_json_round_trip_plain_text(azurite):
    q = fresh_queue(azurite)
    message = {"job": "abc", "site": 7, "users": [1, 2, 3], "role": "éditeur", "nested": {"x": None, "y": True}}
    assert q.send([message]) == 1
    [text] = drain(q, 1)
    assert json.loads(text) == message
    # Plain compact JSON on the wire (host.json: messageEncoding none), not base64.
    assert text.startswith("{") and ", " not in text and ": " not in text
    assert q.send([]) == 0


def test_received_message_hidden_then_deleted(azurite):
    q = fresh_queue(azurite)
    q.send([{"n": 1}])
    [(text, raw)] = q.receive(visibility_timeout=30)
    assert q.receive() == []  # invisible while being processed
    q.delete(raw)
    assert q.client.get_queue_properties().approximate_message_count == 0


def test_poison_queue(azurite):
    q = fresh_queue(azurite)
    p = q.poison()
    assert p.name == q.name + "-poison"
    p.ensure()
    p.send([{"bad": True}])
    assert [json.loads(t) for t in drain(p, 1)] == [{"bad": True}]
    assert q.receive() == []
    # Also from a bare QueueClient (no service client to derive it from).
    bare = BatchQueue(q.client)
    assert bare.poison().name == q.name + "-poison"
    assert bare.poison().url == p.url


def test_send_rate_1000(azurite):
    q = fresh_queue(azurite)
    started = time.perf_counter()
    assert q.send({"n": i, "site": 3, "from": i * 2000} for i in range(1000)) == 1000
    elapsed = time.perf_counter() - started
    print(f"sent 1000 messages in {elapsed:.2f} s ({1000 / elapsed:.0f}/s)")
    assert q.client.get_queue_properties().approximate_message_count == 1000


def test_oversized_message_refused_before_sending(azurite):
    q = fresh_queue(azurite)
    with pytest.raises(ValueError, match="64 KiB"):
        q.send([{"n": 1}, {"blob": "x" * 70_000}])
    assert q.receive() == []  # nothing went out


# ---------------------------------------------------------------- settings (no network)
@pytest.mark.parametrize("value", ["UseDevelopmentStorage=true", "UseDevelopmentStorage=true;",
                                   " usedevelopmentstorage=True "])
def test_use_development_storage_maps_to_azurite_account(value):
    assert dev_storage(value)
    q = BatchQueue.from_env({"AzureWebJobsStorage": value})
    assert q.name == DEFAULT_QUEUE_NAME
    assert q.url == "http://127.0.0.1:10001/devstoreaccount1/wpmsync-batches"
    assert q.client.account_name == "devstoreaccount1"
    assert q.poison().url == "http://127.0.0.1:10001/devstoreaccount1/wpmsync-batches-poison"
    assert "AccountKey=" in DEV_CONNECTION_STRING and "QueueEndpoint=http://127.0.0.1:10001/" in DEV_CONNECTION_STRING


def test_not_dev_storage():
    assert not dev_storage("UseDevelopmentStorage=false")
    assert not dev_storage("AccountName=x;AccountKey=eA==")


def test_connection_string_account():
    conn = ("DefaultEndpointsProtocol=https;AccountName=wpmsyncstore;AccountKey=c2VjcmV0a2V5;"
            "EndpointSuffix=core.windows.net")
    q = BatchQueue.from_env({"AzureWebJobsStorage": conn}, name="my-batches")
    assert q.url == "https://wpmsyncstore.queue.core.windows.net/my-batches"
    assert q.poison().name == "my-batches-poison"
    assert "c2VjcmV0a2V5" not in repr(q)


def test_default_name_is_the_one_the_trigger_listens_on():
    q = BatchQueue.from_env({"AzureWebJobsStorage": "UseDevelopmentStorage=true"})
    assert q.name == "wpmsync-batches" and q.poison().name == "wpmsync-batches-poison"


def test_identity_based_account_name():
    made = []

    def factory(client_id):
        made.append(NoTokenCredential(client_id))
        return made[-1]

    q = BatchQueue.from_env({"AzureWebJobsStorage__accountName": "wpmsyncstore"}, credential_factory=factory)
    assert q.url == "https://wpmsyncstore.queue.core.windows.net/wpmsync-batches"
    assert q.client.credential is made[0] and made[0].client_id is None
    assert q.poison().url == "https://wpmsyncstore.queue.core.windows.net/wpmsync-batches-poison"


def test_identity_based_queue_service_uri_and_client_id():
    made = []
    q = BatchQueue.from_env(
        {"AzureWebJobsStorage__queueServiceUri": "https://other.queue.core.windows.net/",
         "AzureWebJobsStorage__accountName": "ignored", "AzureWebJobsStorage__clientId": "1234-abcd"},
        credential_factory=lambda cid: made.append(NoTokenCredential(cid)) or made[-1],
    )
    assert q.url == "https://other.queue.core.windows.net/wpmsync-batches"
    assert made[0].client_id == "1234-abcd"


def test_identity_based_default_credential_builds_without_network():
    q = BatchQueue.from_env({"AzureWebJobsStorage__accountName": "wpmsyncstore"})
    assert type(q.client.credential).__name__ == "DefaultAzureCredential"


def test_connection_string_wins_over_identity_settings():
    q = BatchQueue.from_env({"AzureWebJobsStorage": "UseDevelopmentStorage=true",
                             "AzureWebJobsStorage__accountName": "wpmsyncstore"})
    assert q.url.startswith("http://127.0.0.1:10001/")


@pytest.mark.parametrize("env, needle", [
    ({}, "no queue storage configured"),
    ({"AzureWebJobsStorage": "   "}, "no queue storage configured"),
    ({"AzureWebJobsStorage": "not a connection string"}, "AzureWebJobsStorage is not a usable"),
    ({"AzureWebJobsStorage": "AccountName=onlyname"}, "AzureWebJobsStorage is not a usable"),
    ({"AzureWebJobsStorage__accountName": "Bad_Name!"}, "AzureWebJobsStorage__accountName"),
    ({"AzureWebJobsStorage__queueServiceUri": "ftp://x"}, "AzureWebJobsStorage__queueServiceUri"),
])
def test_bad_settings_are_one_line_config_errors(env, needle):
    with pytest.raises(ConfigError) as info:
        BatchQueue.from_env(env)
    assert needle in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("name", ["Bad_Queue", "a--b", "q" * 57])
def test_bad_queue_names_are_refused(name):
    with pytest.raises(ConfigError) as info:
        BatchQueue.from_env({"AzureWebJobsStorage": "UseDevelopmentStorage=true"}, name=name)
    assert "not a valid queue name" in str(info.value)
    assert "\n" not in str(info.value)


def test_bad_connection_string_error_never_echoes_the_key():
    conn = "AccountName=x;AccountKey=super-secret-key-value;Bogus"
    with pytest.raises(ConfigError) as info:
        service_client_from_env({"AzureWebJobsStorage": conn})
    assert "super-secret-key-value" not in str(info.value)
