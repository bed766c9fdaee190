"""Connection and engine settings, read once from the environment.

The same names serve as Azure app settings. A missing or wrong value raises ``ConfigError``
with one line naming the setting, never a traceback to the operator.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Mapping

from .errors import ConfigError

PREFIX_RE = re.compile(r"^[A-Za-z0-9_]+$")
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


def validate_prefix(prefix: str) -> str:
    """Table prefixes end up inside SQL identifiers: allow only ``[A-Za-z0-9_]+``."""
    if not isinstance(prefix, str) or not PREFIX_RE.match(prefix) or len(prefix) > 32:
        raise ConfigError(
            f"WPMSYNC_TABLE_PREFIX {prefix!r} is not a valid table prefix "
            "(letters, digits and _ only, at most 32 characters)"
        )
    return prefix


def _int_setting(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = env.get(name, "").strip()
    if raw == "":
        return default
    if not re.fullmatch(r"[0-9]+", raw) or not low <= int(raw) <= high:
        raise ConfigError(f"{name} must be a whole number from {low} to {high}, got {raw!r}")
    return int(raw)


def _seconds_setting(env: Mapping[str, str], name: str, default: float, low: float, high: float) -> float:
    """Seconds as a plain decimal number (``1``, ``0.5``); nothing else."""
    raw = env.get(name, "").strip()
    if raw == "":
        return default
    if not re.fullmatch(r"[0-9]{1,4}(\.[0-9]{1,3})?", raw) or not low <= float(raw) <= high:
        raise ConfigError(f"{name} must be a number of seconds from {low:g} to {high:g}, got {raw!r}")
    return float(raw)


def _bool_setting(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if raw == "":
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be true or false, got {raw!r}")


@dataclass(frozen=True)
class Config:
    """Everything the engine needs to reach one network of one WordPress database."""

    db_host: str = "127.0.0.1"
    db_port: int = 3306
    db_user: str = "root"
    db_password: str = field(default="", repr=False)
    db_name: str = "wordpress"
    table_prefix: str = "wp_"
    network_id: int = 1
    ssl: bool = False
    ssl_ca: str | None = None
    batch_size: int = 50_000
    role_ceiling_level: int = 10
    lock_timeout: int = 30
    journal_days: int = 30
    outbox_days: int = 14
    # How gently batches use the live database (``throttle.py``): at most this many queue
    # batches write at once, across every instance; each transaction sized to commit within
    # ``batch_seconds`` (``batch_size`` stays the upper bound, in memberships).
    max_parallel_batches: int = 4
    batch_seconds: float = 1.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> "Config":
        """Build from ``WPMSYNC_*`` variables; ``overrides`` win (used by the CLI and tests)."""
        env = os.environ if env is None else env
        host = env.get("WPMSYNC_DB_HOST", "").strip() or "127.0.0.1"
        ssl_ca = env.get("WPMSYNC_DB_SSL_CA", "").strip() or None
        # Azure Database for MySQL requires TLS; a local MariaDB usually has none.
        ssl = _bool_setting(env, "WPMSYNC_DB_SSL", host not in LOCAL_HOSTS or ssl_ca is not None)
        if ssl_ca is not None and not os.path.isfile(ssl_ca):
            raise ConfigError(f"WPMSYNC_DB_SSL_CA points at {ssl_ca!r}, which is not a file")
        values: dict[str, object] = dict(
            db_host=host,
            db_port=_int_setting(env, "WPMSYNC_DB_PORT", 3306, 1, 65535),
            db_user=env.get("WPMSYNC_DB_USER", "").strip() or "root",
            db_password=env.get("WPMSYNC_DB_PASSWORD", ""),
            db_name=env.get("WPMSYNC_DB_NAME", "").strip() or "wordpress",
            table_prefix=env.get("WPMSYNC_TABLE_PREFIX", "").strip() or "wp_",
            network_id=_int_setting(env, "WPMSYNC_NETWORK_ID", 1, 1, 2**31),
            ssl=ssl,
            ssl_ca=ssl_ca,
            batch_size=_int_setting(env, "WPMSYNC_BATCH_SIZE", 50_000, 1, 10_000_000),
            role_ceiling_level=_int_setting(env, "WPMSYNC_ROLE_CEILING_LEVEL", 10, 0, 11),
            lock_timeout=_int_setting(env, "WPMSYNC_LOCK_TIMEOUT", 30, 0, 3600),
            journal_days=_int_setting(env, "WPMSYNC_JOURNAL_DAYS", 30, 1, 3650),
            outbox_days=_int_setting(env, "WPMSYNC_OUTBOX_DAYS", 14, 1, 3650),
            max_parallel_batches=_int_setting(env, "WPMSYNC_MAX_PARALLEL_BATCHES", 4, 1, 64),
            batch_seconds=_seconds_setting(env, "WPMSYNC_BATCH_SECONDS", 1.0, 0.1, 60.0),
        )
        values.update({k: v for k, v in overrides.items() if v is not None})
        config = cls(**values)  # type: ignore[arg-type]
        config.validate()
        return config

    def validate(self) -> None:
        """Check the values that end up in SQL or decide what gets written."""
        validate_prefix(self.table_prefix)
        if not re.fullmatch(r"[A-Za-z0-9_$-]{1,64}", self.db_name):
            raise ConfigError(f"WPMSYNC_DB_NAME {self.db_name!r} is not a valid database name")
        if not isinstance(self.network_id, int) or self.network_id < 1:
            raise ConfigError(f"WPMSYNC_NETWORK_ID must be a positive whole number, got {self.network_id!r}")
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ConfigError(f"WPMSYNC_BATCH_SIZE must be positive, got {self.batch_size!r}")
