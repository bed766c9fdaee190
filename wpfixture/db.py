"""MariaDB/MySQL helpers for scratch WordPress databases (pymysql based).

The server comes from the environment (the test lanes, ``scripts/lanes.sh``): ``WPFIXTURE_DB_*``
first, else the engine's own ``WPMSYNC_DB_HOST`` / ``_PORT`` / ``_USER`` / ``_PASSWORD``, else the
local MariaDB (127.0.0.1:3306, root, empty password). ``WPMSYNC_DB_SSL`` true (with
``WPMSYNC_DB_SSL_CA``) makes the fixtures' connections TLS too.
"""

from __future__ import annotations

import os
import re
from typing import Any, Iterator, Sequence

from contextlib import contextmanager

__all__ = [
    "DBConfig",
    "connect",
    "create_database",
    "drop_database",
    "copy_database",
    "database_exists",
    "list_databases",
    "list_tables",
    "query",
    "default_host",
    "default_port",
    "default_user",
    "default_password",
    "default_ssl_ca",
]



# Read once, at import: a test that points the ENGINE elsewhere (monkeypatch.setenv of
# WPMSYNC_DB_PORT, _USER, _PASSWORD ...) must not move the fixtures' own connections.
_ENV = {k: v for k, v in os.environ.items() if k.startswith(("WPFIXTURE_DB_", "WPMSYNC_DB_"))}


def _env(name: str, default: str) -> str:
    for var in (f"WPFIXTURE_DB_{name}", f"WPMSYNC_DB_{name}"):
        value = _ENV.get(var, "")
        if value.strip() or (name == "PASSWORD" and var in _ENV):
            return value if name == "PASSWORD" else value.strip()
    return default


def default_host() -> str:
    return _env("HOST", "127.0.0.1")


def default_port() -> int:
    return int(_env("PORT", "3306"))


def default_user() -> str:
    return _env("USER", "root")


def default_password() -> str:
    return _env("PASSWORD", "")


def default_ssl_ca() -> str | None:
    """The CA file when the lane talks TLS (``WPMSYNC_DB_SSL`` true), else None."""
    if _ENV.get("WPMSYNC_DB_SSL", "").strip().lower() not in ("1", "true", "yes", "on"):
        return None
    return _ENV.get("WPMSYNC_DB_SSL_CA", "").strip() or ""


_IDENT = re.compile(r"^[A-Za-z0-9_$]{1,64}$")


def _ident(name: str) -> str:
    """Quote a database/table identifier, refusing anything unusual."""
    if not _IDENT.match(name):
        raise ValueError(f"refusing unusual SQL identifier: {name!r}")
    return f"`{name}`"


class DBConfig:
    """Connection parameters of a MariaDB server (defaults: local root, no password)."""

    def __init__(
        self,
        host: str | None = None,
        port: int | None = None,
        user: str | None = None,
        password: str | None = None,
    ) -> None:
        self.host = default_host() if host is None else host
        self.port = default_port() if port is None else int(port)
        self.user = default_user() if user is None else user
        self.password = default_password() if password is None else password

    def as_kwargs(self) -> dict[str, Any]:
        return {"host": self.host, "port": self.port, "user": self.user, "password": self.password}

    def __repr__(self) -> str:
        return f"DBConfig(host={self.host!r}, port={self.port}, user={self.user!r})"


def _pymysql():
    try:
        import pymysql  # noqa: PLC0415
    except ImportError as exc:  # pragma: no cover - environment problem
        raise RuntimeError("wpfixture needs pymysql: python3 -m pip install pymysql (or run scripts/setup.sh)") from exc
    return pymysql


def connect(
    database: str | None = None,
    *,
    host: str | None = None,
    port: int | None = None,
    user: str | None = None,
    password: str | None = None,
    autocommit: bool = True,
    dict_cursor: bool = False,
):
    """Open a pymysql connection (utf8mb4, autocommit by default); unset parameters come from
    the environment (see the module's docstring)."""
    pymysql = _pymysql()
    kwargs: dict[str, Any] = {
        "host": default_host() if host is None else host,
        "port": default_port() if port is None else int(port),
        "user": default_user() if user is None else user,
        "password": default_password() if password is None else password,
        "charset": "utf8mb4",
        "autocommit": autocommit,
    }
    ca = default_ssl_ca()
    if ca is not None:
        kwargs["ssl"] = {"ca": ca} if ca else {"check_hostname": False}
    if database:
        kwargs["database"] = database
    if dict_cursor:
        kwargs["cursorclass"] = pymysql.cursors.DictCursor
    return pymysql.connect(**kwargs)


@contextmanager
def _conn(database: str | None = None, **kw: Any) -> Iterator[Any]:
    c = connect(database, **kw)
    try:
        yield c
    finally:
        c.close()


def query(database: str | None, sql: str, args: Sequence[Any] | dict | None = None, **kw: Any) -> list[tuple]:
    """Run one statement and return all rows (tuples)."""
    with _conn(database, **kw) as c, c.cursor() as cur:
        cur.execute(sql, args)
        return list(cur.fetchall())


def create_database(name: str, **kw: Any) -> None:
    """DROP (if exists) and CREATE database `name` with utf8mb4."""
    with _conn(None, **kw) as c, c.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {_ident(name)}")
        cur.execute(f"CREATE DATABASE {_ident(name)} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")


def drop_database(name: str, **kw: Any) -> None:
    """DROP DATABASE IF EXISTS `name`."""
    with _conn(None, **kw) as c, c.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {_ident(name)}")


def database_exists(name: str, **kw: Any) -> bool:
    rows = query(None, "SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s", (name,), **kw)
    return bool(rows)


def list_databases(prefix: str = "", **kw: Any) -> list[str]:
    """Databases whose name starts with `prefix` (e.g. 'wpfx_' scratch databases)."""
    rows = query(None, "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA ORDER BY SCHEMA_NAME", **kw)
    return [r[0] for r in rows if r[0].startswith(prefix)]


def list_tables(database: str, prefix: str = "", **kw: Any) -> list[str]:
    """Base tables of `database` whose name starts with `prefix`."""
    rows = query(
        None,
        "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s AND TABLE_TYPE = 'BASE TABLE' "
        "ORDER BY TABLE_NAME",
        (database,),
        **kw,
    )
    return [r[0] for r in rows if r[0].startswith(prefix)]


def copy_database(src: str, dst: str, *, tables_prefix: str = "", **kw: Any) -> list[str]:
    """Make `dst` an exact copy of `src` (drops/recreates `dst`).

    Each table is recreated from ``SHOW CREATE TABLE`` (so AUTO_INCREMENT
    counters are preserved too: the two copies hand out the same ids
    afterwards) and filled with ``INSERT INTO dst.t SELECT * FROM src.t``.
    Returns the copied table names.
    """
    if src == dst:
        raise ValueError("copy_database: src and dst are the same")
    tables = list_tables(src, tables_prefix, **kw)
    create_database(dst, **kw)
    with _conn(None, **kw) as c, c.cursor() as cur:
        cur.execute("SET SESSION foreign_key_checks = 0, unique_checks = 0, sql_mode = 'NO_AUTO_VALUE_ON_ZERO'")
        for t in tables:
            cur.execute(f"SHOW CREATE TABLE {_ident(src)}.{_ident(t)}")
            ddl = cur.fetchone()[1]
            cur.execute(f"USE {_ident(dst)}")
            cur.execute(ddl)
            cur.execute(f"INSERT INTO {_ident(dst)}.{_ident(t)} SELECT * FROM {_ident(src)}.{_ident(t)}")
    return tables
