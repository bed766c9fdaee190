"""Connections and the named locks that keep writers of the same users apart.

``usermeta`` has no unique key on (user_id, meta_key), so two writers inserting the same
membership at once would both succeed. Every writer of a user's memberships holds the named lock
of that user's id bucket (``GET_LOCK``) around its transaction and inserts only where no row
exists. A named lock is freed by the server when the connection dies, so a crashed worker never
wedges anything.
"""
from __future__ import annotations

import contextlib
import hashlib
import ssl as ssl_module
from typing import Iterable, Iterator

import pymysql
import pymysql.cursors

from .config import Config
from .errors import Busy, ConfigError


def connect(config: Config, password: str | None = None) -> pymysql.connections.Connection:
    """Open an autocommit connection; transactions are explicit (``transaction``)."""
    kwargs: dict[str, object] = {}
    if config.ssl:
        context = ssl_module.create_default_context(cafile=config.ssl_ca)
        kwargs["ssl"] = context
    try:
        conn = pymysql.connect(
            host=config.db_host,
            port=config.db_port,
            user=config.db_user,
            password=config.db_password if password is None else password,
            database=config.db_name,
            charset="utf8mb4",
            autocommit=True,
            connect_timeout=10,
            **kwargs,
        )
    except pymysql.err.OperationalError as exc:
        code, message = (exc.args + ("",))[:2]
        raise ConfigError(
            f"cannot connect to MySQL {config.db_user}@{config.db_host}:{config.db_port}"
            f"/{config.db_name}: {message} ({code})"
        ) from None
    with conn.cursor() as cur:
        # Each statement sees what other writers committed before it (no stale snapshot).
        cur.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
    return conn


@contextlib.contextmanager
def transaction(conn: pymysql.connections.Connection) -> Iterator[pymysql.cursors.Cursor]:
    """One transaction: committed on success, rolled back on any error."""
    conn.begin()
    try:
        with conn.cursor() as cur:
            yield cur
        conn.commit()
    except BaseException:
        conn.rollback()
        raise


def lock_name(config: Config, scope: str) -> str:
    """A server-wide lock name for (database, prefix, scope), within MySQL's 64 characters."""
    digest = hashlib.sha1(f"{config.db_name}\0{config.table_prefix}".encode()).hexdigest()[:16]
    return f"wpmsync:{digest}:{scope}"[:64]


@contextlib.contextmanager
def named_locks(conn: pymysql.connections.Connection, config: Config,
                scopes: Iterable[str]) -> Iterator[None]:
    """Hold the named locks of ``scopes`` (taken in sorted order, so writers never deadlock)."""
    names = sorted({lock_name(config, s) for s in scopes})
    held: list[str] = []
    try:
        with conn.cursor() as cur:
            for name in names:
                cur.execute("SELECT GET_LOCK(%s, %s)", (name, config.lock_timeout))
                (got,) = cur.fetchone()
                if got != 1:
                    raise Busy(
                        f"another sync holds the lock {name!r} for more than "
                        f"{config.lock_timeout}s; nothing was written, try again"
                    )
                held.append(name)
        yield
    finally:
        if held:
            with conn.cursor() as cur:
                for name in reversed(held):
                    cur.execute("SELECT RELEASE_LOCK(%s)", (name,))


LOCK_BUCKET = 256  # user ids per lock: writers of users in the same bucket take turns


def user_locks(first_user: int, last_user: int) -> list[str]:
    """Lock scopes for writing the memberships of users ``first_user..last_user``: one per
    bucket of ``LOCK_BUCKET`` user ids. Whoever writes a user's rows on any site holds its
    bucket, so two writers of one (user, site) never interleave; batches of one job cover
    whole, disjoint buckets and run side by side."""
    return [f"users:{b}" for b in range(first_user // LOCK_BUCKET, last_user // LOCK_BUCKET + 1)]


SITEMETA_LOCK = "sitemeta"
