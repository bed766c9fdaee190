"""The batch queue: an Azure Storage queue of JSON messages, one per batch of work.

Connection, like the Functions host reads it (setting prefix ``AzureWebJobsStorage``):
  * ``AzureWebJobsStorage`` = a connection string. ``UseDevelopmentStorage=true`` means Azurite's
    well-known ``devstoreaccount1`` with its queue service on ``http://127.0.0.1:10001``; the
    full connection string is built here rather than left to the SDK's shorthand handling.
  * identity-based: ``AzureWebJobsStorage__queueServiceUri`` (``https://<account>.queue.core.
    windows.net``) or ``AzureWebJobsStorage__accountName`` (that URI is derived from it), with
    ``DefaultAzureCredential``; ``AzureWebJobsStorage__clientId`` picks a user-assigned managed
    identity, as it does for the host.

Messages are plain-text JSON, not base64: ``host.json`` sets the queue extension's
``messageEncoding`` to ``none`` so the queue trigger reads exactly what ``send`` writes. The
Functions host moves a message that failed ``maxDequeueCount`` times to ``<name>-poison``.

``send`` is one HTTP call per message (the service has no batch send); more than a few messages
go out from a small thread pool (8 threads).
"""
from __future__ import annotations

import json
import os
import re
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Iterable, Mapping

from .errors import ConfigError

DEFAULT_QUEUE_NAME = "wpmsync-batches"
POISON_SUFFIX = "-poison"
CONNECTION_SETTING = "AzureWebJobsStorage"
SEND_THREADS = 8
MAX_MESSAGE_BYTES = 64 * 1024  # the service's limit for one message

# Azurite's (and the old storage emulator's) published development account.
DEV_ACCOUNT = "devstoreaccount1"
DEV_ACCOUNT_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
DEV_QUEUE_ENDPOINT = f"http://127.0.0.1:10001/{DEV_ACCOUNT}"
DEV_CONNECTION_STRING = (
    f"DefaultEndpointsProtocol=http;AccountName={DEV_ACCOUNT};AccountKey={DEV_ACCOUNT_KEY};"
    f"QueueEndpoint={DEV_QUEUE_ENDPOINT};"
)

# Queue names: 3-63 chars of lowercase letters, digits and single hyphens, alphanumeric ends.
_QUEUE_NAME_RE = re.compile(r"^[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,62}$")
_ACCOUNT_NAME_RE = re.compile(r"^[a-z0-9]{3,24}$")


def validate_queue_name(name: str, setting: str = "queue name") -> str:
    """Azure's rules, and room for the ``-poison`` suffix (so at most 56 characters)."""
    if not isinstance(name, str) or not _QUEUE_NAME_RE.match(name) or len(name) > 63 - len(POISON_SUFFIX):
        raise ConfigError(
            f"{setting} {name!r} is not a valid queue name (3-56 lowercase letters, digits and "
            "single hyphens, starting and ending with a letter or digit)"
        )
    return name


def dev_storage(connection_string: str) -> bool:
    """True for ``UseDevelopmentStorage=true`` (any case, optional trailing ``;``)."""
    parts = [p.strip() for p in connection_string.strip().strip(";").split(";") if p.strip()]
    return len(parts) == 1 and parts[0].replace(" ", "").lower() == "usedevelopmentstorage=true"


def _default_credential(client_id: str | None) -> Any:
    from azure.identity import DefaultAzureCredential

    if client_id:
        return DefaultAzureCredential(managed_identity_client_id=client_id)
    return DefaultAzureCredential()


def service_client_from_env(
    env: Mapping[str, str] | None = None,
    *,
    credential_factory: Callable[[str | None], Any] | None = None,
) -> Any:
    """A ``QueueServiceClient`` from the ``AzureWebJobsStorage`` settings (see the docstring)."""
    from azure.storage.queue import QueueServiceClient

    env = os.environ if env is None else env
    conn = env.get(CONNECTION_SETTING, "").strip()
    if conn:
        if dev_storage(conn):
            conn = DEV_CONNECTION_STRING
        try:
            return QueueServiceClient.from_connection_string(conn)
        except (ValueError, KeyError, TypeError) as exc:
            # The SDK's message names the missing part; never echo the string (it has the key).
            raise ConfigError(
                f"{CONNECTION_SETTING} is not a usable storage connection string ({exc})"
            ) from None
    uri = env.get(f"{CONNECTION_SETTING}__queueServiceUri", "").strip()
    account = env.get(f"{CONNECTION_SETTING}__accountName", "").strip()
    if uri:
        if not re.fullmatch(r"https?://[^\s/?#]+(/[^\s?#]*)?", uri):
            raise ConfigError(
                f"{CONNECTION_SETTING}__queueServiceUri must be the account's queue URL "
                f"(https://<account>.queue.core.windows.net), got {uri!r}"
            )
        url = uri.rstrip("/")
    elif account:
        if not _ACCOUNT_NAME_RE.match(account):
            raise ConfigError(
                f"{CONNECTION_SETTING}__accountName must be a storage account name "
                f"(3-24 lowercase letters and digits), got {account!r}"
            )
        url = f"https://{account}.queue.core.windows.net"
    else:
        raise ConfigError(
            f"no queue storage configured: set {CONNECTION_SETTING} (a connection string, or "
            f"UseDevelopmentStorage=true for Azurite) or {CONNECTION_SETTING}__queueServiceUri / "
            f"{CONNECTION_SETTING}__accountName (managed identity)"
        )
    client_id = env.get(f"{CONNECTION_SETTING}__clientId", "").strip() or None
    credential = (credential_factory or _default_credential)(client_id)
    return QueueServiceClient(account_url=url, credential=credential)


class BatchQueue:
    """One storage queue of JSON messages (see the module docstring)."""

    def __init__(self, queue_client: Any, *, service_client: Any = None) -> None:
        self._client = queue_client
        self._service = service_client
        self.name: str = queue_client.queue_name

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, name: str | None = None,
                 *, credential_factory: Callable[[str | None], Any] | None = None) -> "BatchQueue":
        """The queue named by ``name`` (default ``wpmsync-batches``, the name the queue trigger
        listens on), in the storage account of ``AzureWebJobsStorage``."""
        env = os.environ if env is None else env
        queue_name = name or DEFAULT_QUEUE_NAME
        validate_queue_name(queue_name)
        service = service_client_from_env(env, credential_factory=credential_factory)
        return cls(service.get_queue_client(queue_name), service_client=service)

    @property
    def client(self) -> Any:
        """The underlying ``QueueClient``."""
        return self._client

    @property
    def url(self) -> str:
        return self._client.url

    def __repr__(self) -> str:
        return f"<BatchQueue {self.name} at {self._client.primary_hostname}>"

    def ensure(self) -> None:
        """Create the queue when it is missing."""
        from azure.core.exceptions import ResourceExistsError

        try:
            self._client.create_queue()
        except ResourceExistsError:
            pass

    @staticmethod
    def encode(message: dict) -> str:
        text = json.dumps(message, separators=(",", ":"), ensure_ascii=False, sort_keys=True)
        if len(text.encode("utf-8")) > MAX_MESSAGE_BYTES:
            raise ValueError(f"queue message of {len(text.encode('utf-8'))} bytes exceeds the 64 KiB limit")
        return text

    def send(self, messages: Iterable[dict], delay: int = 0) -> int:
        """Send each message as compact JSON text; returns how many were sent. With ``delay``,
        each is invisible for that many seconds first (the service's visibility timeout).

        All are encoded (and checked) before the first is sent. A failed send raises after the
        sends already under way finish; messages sent before stay sent (consumers are idempotent).
        """
        texts = [self.encode(m) for m in messages]

        def one(text: str) -> Any:
            return self._client.send_message(text, visibility_timeout=delay or None)
        if len(texts) <= 2:
            for text in texts:
                one(text)
            return len(texts)
        with ThreadPoolExecutor(max_workers=min(SEND_THREADS, len(texts)),
                                thread_name_prefix="wpmsync-queue") as pool:
            futures = [pool.submit(one, text) for text in texts]
            try:
                for future in futures:
                    future.result()
            except BaseException:
                for future in futures:
                    future.cancel()
                raise
        return len(texts)

    def receive(self, max_messages: int = 32, visibility_timeout: int = 60) -> list[tuple[str, Any]]:
        """Up to ``max_messages`` (text, raw message) pairs, hidden for ``visibility_timeout`` s."""
        out: list[tuple[str, Any]] = []
        remaining = max_messages
        while remaining > 0:
            page = min(remaining, 32)  # the service's per-call maximum
            got = list(self._client.receive_messages(
                messages_per_page=page, max_messages=page, visibility_timeout=visibility_timeout,
            ))
            out.extend((m.content, m) for m in got)
            remaining -= len(got)
            if len(got) < page:
                break
        return out

    def delete(self, raw: Any) -> None:
        """Delete a received message (its id and pop receipt)."""
        self._client.delete_message(raw)

    def poison(self) -> "BatchQueue":
        """The ``<name>-poison`` queue the Functions host moves failed messages to."""
        poison_name = self.name + POISON_SUFFIX
        if self._service is not None:
            return BatchQueue(self._service.get_queue_client(poison_name), service_client=self._service)
        from azure.storage.queue import QueueClient

        base = self._client.url.split("?", 1)[0].rstrip("/")
        account_url = base[: base.rindex("/")]
        return BatchQueue(QueueClient(account_url, poison_name, credential=self._client.credential))
