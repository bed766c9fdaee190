"""Secrets: the database password (or an Entra token) and the hook secret.

Where they come from
  * ``WPMSYNC_KEY_VAULT_URL`` set (``https://<vault>.vault.azure.net``): Azure Key Vault, read
    with ``DefaultAzureCredential`` (the Function App's managed identity in Azure; ``az login``
    or ``AZURE_*`` variables elsewhere). Secret names: ``WPMSYNC_DB_PASSWORD_SECRET_NAME``
    (default ``wpmsync-db-password``), ``WPMSYNC_HOOK_SECRET_NAME`` (``wpmsync-hook-secret``),
    ``WPMSYNC_HOOK_SECRET_PREVIOUS_NAME`` (``wpmsync-hook-secret-previous``, optional: a
    missing secret means none).
  * otherwise the environment (local runs, or App Service Key Vault references, which the
    platform resolves into plain app settings): ``WPMSYNC_DB_PASSWORD`` (may be empty for a local
    MariaDB), ``WPMSYNC_HOOK_SECRET`` (required, at least 16 characters),
    ``WPMSYNC_HOOK_SECRET_PREVIOUS`` (optional; empty or unset means none).

The hook secret signs both directions: WordPress's callbacks to the functions, and the functions'
cache-cleaning calls back to WordPress (one secret, one ``wp-config.php`` constant). During a
rotation the previous secret is honoured too (``hook_secrets()``; see ``wpmsync.signing`` and
the README's "Rotating the hook secret"). The current and the previous secret are fetched and
cached together, as one pair: an instance never combines a fresh current secret with a stale
"no previous secret", which would refuse the peer still signing with the old one.

Values are cached for ``ttl_seconds`` (600 by default): a rotation in Key Vault is picked up
within that time without a restart, and a request never costs a Key Vault round trip. The
credential and the ``SecretClient`` are created once, on first use. Values are returned exactly
as stored (no stripping): the hook secret must match WordPress's copy byte for byte.

Passwordless sign-in to Azure Database for MySQL (``WPMSYNC_DB_AUTH=entra``; the default is
``password``): ``db_password()`` returns a Microsoft Entra access token for
``https://ossrdbms-aad.database.windows.net/.default``, cached until five minutes before it
expires. ``WPMSYNC_DB_USER`` is then the Entra principal's MySQL user name (for a managed
identity, the name it was created with in MySQL).

PyMySQL and the token (checked in PyMySQL 1.1/1.2 ``connections.py``): the server answers the
first handshake with an auth-switch request to ``mysql_clear_password`` for an Entra user, and
PyMySQL always answers that with the password as given, NUL-terminated; unlike libmysqlclient it
needs no "enable cleartext plugin" option, and the token's length (1-3 KB) is no problem in an
auth-switch packet. Nothing special is needed beyond TLS, and TLS is what matters: PyMySQL sends
the cleartext token even over an unencrypted connection, so keep ``WPMSYNC_DB_SSL`` on (the
default for any non-local host; Azure enforces TLS as well). An open connection stays valid past
the token's expiry: MySQL checks the token only when connecting.

Secret values never appear in logs, reprs or error messages: ``repr(Secrets)`` shows only where
values come from, and Key Vault failures become a one-line ``ConfigError`` naming the vault and
the secret name.
"""
from __future__ import annotations

import os
import threading
import time
from typing import Any, Callable, Mapping

from .errors import ConfigError

KEY_VAULT_URL_SETTING = "WPMSYNC_KEY_VAULT_URL"
DB_AUTH_SETTING = "WPMSYNC_DB_AUTH"
DB_AUTH_MODES = ("password", "entra")
ENTRA_MYSQL_SCOPE = "https://ossrdbms-aad.database.windows.net/.default"
TOKEN_REFRESH_MARGIN = 300  # seconds before expires_on at which a cached token is renewed
MIN_HOOK_SECRET_LENGTH = 16

# (Key Vault name setting, default secret name, environment fallback)
_DB_PASSWORD = ("WPMSYNC_DB_PASSWORD_SECRET_NAME", "wpmsync-db-password", "WPMSYNC_DB_PASSWORD")
_HOOK_SECRET = ("WPMSYNC_HOOK_SECRET_NAME", "wpmsync-hook-secret", "WPMSYNC_HOOK_SECRET")
_HOOK_SECRET_PREVIOUS = ("WPMSYNC_HOOK_SECRET_PREVIOUS_NAME", "wpmsync-hook-secret-previous",
                         "WPMSYNC_HOOK_SECRET_PREVIOUS")
_SECRETS = (_DB_PASSWORD, _HOOK_SECRET, _HOOK_SECRET_PREVIOUS)


def _default_credential() -> Any:
    from azure.identity import DefaultAzureCredential

    return DefaultAzureCredential()


def _default_client(vault_url: str, credential: Any) -> Any:
    from azure.keyvault.secrets import SecretClient

    return SecretClient(vault_url=vault_url, credential=credential)


def _azure_errors() -> tuple[type[BaseException], ...]:
    """Every azure-core error: HttpResponseError (ResourceNotFoundError, ClientAuthenticationError,
    CredentialUnavailableError are kinds of it) and connection failures (ServiceRequestError)."""
    from azure.core.exceptions import AzureError

    return (AzureError,)


def _describe(exc: BaseException) -> str:
    """Class name, HTTP status and the first line of the SDK's message, at most 200 chars."""
    status = getattr(exc, "status_code", None)
    text = str(getattr(exc, "message", None) or exc).strip().splitlines()
    first = text[0][:200] if text else ""
    out = type(exc).__name__
    if status:
        out += f" (HTTP {status})"
    return f"{out}: {first}" if first else out


class Secrets:
    """Reads and caches the app's secrets; see the module docstring."""

    def __init__(
        self,
        env: Mapping[str, str] | None = None,
        *,
        client_factory: Callable[[str, Any], Any] | None = None,
        credential_factory: Callable[[], Any] | None = None,
        ttl_seconds: float = 600,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        env = os.environ if env is None else env
        self._env = env
        self._vault_url = env.get(KEY_VAULT_URL_SETTING, "").strip() or None
        if self._vault_url is not None and not self._vault_url.lower().startswith("https://"):
            raise ConfigError(
                f"{KEY_VAULT_URL_SETTING} must be the vault's https:// URL, got {self._vault_url!r}"
            )
        mode = env.get(DB_AUTH_SETTING, "").strip().lower() or "password"
        if mode not in DB_AUTH_MODES:
            raise ConfigError(f"{DB_AUTH_SETTING} must be password or entra, got {mode!r}")
        self._db_auth = mode
        self._client_factory = client_factory or _default_client
        self._credential_factory = credential_factory or _default_credential
        self._ttl = float(ttl_seconds)
        self._clock = clock
        self._wall_clock = wall_clock
        self._lock = threading.RLock()
        self._credential: Any = None
        self._client: Any = None
        self._cache: dict[str, tuple[float, str | None]] = {}  # secret name -> (fetched at, value)
        self._token: tuple[float, str] | None = None  # (expires_on, token)

    # ------------------------------------------------------------------ public
    def db_password(self) -> str:
        """The MySQL password, or an Entra access token when ``WPMSYNC_DB_AUTH=entra``."""
        if self._db_auth == "entra":
            return self._entra_token()
        value = self._read(_DB_PASSWORD, required=True)
        return value or ""

    def hook_secret(self) -> str:
        """The current shared secret that signs the hooks (at least 16 characters)."""
        return self.hook_secrets()[0]

    def hook_secrets(self) -> tuple[str, ...]:
        """``(current,)`` or, during a rotation, ``(current, previous)``: sign with all of them,
        current first, and accept a signature made with any of them. A previous secret equal to
        the current one is left out (it adds nothing). Both are read as one pair (see the module
        docstring); each must be at least 16 characters."""
        current, previous = self._read_together(((_HOOK_SECRET, True), (_HOOK_SECRET_PREVIOUS, False)))
        current = self._check_hook_secret(_HOOK_SECRET, current)
        if not previous or previous == current:
            return (current,)
        return (current, self._check_hook_secret(_HOOK_SECRET_PREVIOUS, previous))

    @property
    def source(self) -> str:
        return "key-vault" if self._vault_url else "environment"

    def __repr__(self) -> str:
        where = f"key-vault {self._vault_url}" if self._vault_url else "environment"
        return f"<Secrets from {where}, db_auth={self._db_auth}>"

    __str__ = __repr__

    # ------------------------------------------------------------------ internals
    def _check_hook_secret(self, spec: tuple[str, str, str], value: str | None) -> str:
        """``value``, or a one-line ``ConfigError`` naming where a missing or short hook secret
        comes from (never its value)."""
        if value and len(value) >= MIN_HOOK_SECRET_LENGTH:
            return value
        where = (f"Key Vault secret {self._secret_name(spec)!r} in {self._vault_url}"
                 if self._vault_url else spec[2])
        state = "is missing" if not value else "is too short"
        raise ConfigError(
            f"{where} {state}: the hook secret must be at least {MIN_HOOK_SECRET_LENGTH} characters"
        )

    def _secret_name(self, spec: tuple[str, str, str]) -> str:
        name_setting, default_name, _ = spec
        return self._env.get(name_setting, "").strip() or default_name

    def _get_credential(self) -> Any:
        with self._lock:
            if self._credential is None:
                self._credential = self._credential_factory()
            return self._credential

    def _get_client(self) -> Any:
        with self._lock:
            if self._client is None:
                self._client = self._client_factory(self._vault_url, self._get_credential())
            return self._client

    def _read(self, spec: tuple[str, str, str], *, required: bool) -> str | None:
        return self._read_together(((spec, required),))[0]

    def _read_together(self, specs: tuple[tuple[tuple[str, str, str], bool], ...]) -> list[str | None]:
        """The values of ``specs`` (each with whether it is required), from one moment: when any
        of them is not cached or is older than the TTL, all of them are fetched again and cached
        with the same time, so values that change together (a rotation) are seen together."""
        if not self._vault_url:
            values = [self._env.get(spec[2]) for spec, _ in specs]
            return [None if value is None else str(value) for value in values]
        names = [self._secret_name(spec) for spec, _ in specs]
        with self._lock:
            now = self._clock()
            cached = [self._cache.get(name) for name in names]
            if all(c is not None and now - c[0] < self._ttl for c in cached):
                return [c[1] for c in cached if c is not None]
            values: list[str | None] = []
            for name, (_, required) in zip(names, specs):
                try:
                    values.append(self._fetch(name, required=required))
                except ConfigError as exc:  # mask the values of this pass too (not cached yet)
                    raise ConfigError(self._scrub(str(exc), values)) from None
            fetched_at = self._clock()
            for name, value in zip(names, values):
                self._cache[name] = (fetched_at, value)
            return values

    def _fetch(self, name: str, *, required: bool) -> str | None:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            secret = self._get_client().get_secret(name)
        except _azure_errors() as exc:
            if not required and isinstance(exc, ResourceNotFoundError):
                return None
            raise ConfigError(self._scrub(
                f"cannot read secret {name!r} from Key Vault {self._vault_url}: {_describe(exc)}"
            )) from None
        value = getattr(secret, "value", None)
        return None if value is None else str(value)

    def _scrub(self, message: str, also: list[str | None] | None = None) -> str:
        """Belt and braces: mask any secret value we know of should an SDK message carry one."""
        known = [v for _, v in self._cache.values() if v] + [v for v in also or [] if v]
        known += [self._env.get(spec[2]) or "" for spec in _SECRETS]
        if self._token is not None:
            known.append(self._token[1])
        for value in sorted(set(known), key=len, reverse=True):
            if len(value) >= 4:
                message = message.replace(value, "***")
        return message

    def _entra_token(self) -> str:
        with self._lock:
            if self._token is not None and self._wall_clock() < self._token[0] - TOKEN_REFRESH_MARGIN:
                return self._token[1]
            try:
                access = self._get_credential().get_token(ENTRA_MYSQL_SCOPE)
            except _azure_errors() as exc:
                raise ConfigError(self._scrub(
                    "cannot get a Microsoft Entra token for Azure Database for MySQL "
                    f"({DB_AUTH_SETTING}=entra): {_describe(exc)}"
                )) from None
            self._token = (float(access.expires_on), access.token)
            return access.token


_instance: Secrets | None = None
_instance_lock = threading.Lock()


def get_secrets() -> Secrets:
    """The process-wide instance, built from ``os.environ`` on first use."""
    global _instance
    with _instance_lock:
        if _instance is None:
            _instance = Secrets(os.environ)
        return _instance


def reset_secrets() -> None:
    """Forget the process-wide instance (tests; a changed environment)."""
    global _instance
    with _instance_lock:
        _instance = None
