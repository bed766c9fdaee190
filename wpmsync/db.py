"""Connections, and the locks that keep writers of the same users apart.

``usermeta`` has no unique key on (user_id, meta_key), so two writers inserting the same
membership at once would both succeed. Every writer of ours holds the named lock of its users'
id buckets (``GET_LOCK``) around its transaction and inserts only where no row exists. A named
lock is freed by the server when the connection dies, so a crashed worker never wedges anything.

WordPress takes no lock at all: core writes usermeta one autocommitted statement at a time, at
the server's REPEATABLE READ, whose UPDATEs lock index gaps as they scan. Our transactions
(``write_users``) run at READ COMMITTED, read without locking, and hold no lock WordPress could
want except on the rows they insert or change themselves, written in an order that never lands
in a gap a waiting WordPress statement holds (see ``memberships._write_pending``): WordPress's
statements wait at most for one commit of ours and are never chosen as a deadlock's victim by
our doing. (A locking read of the users' rows before deciding, tried first, made WordPress's
own writes the victims: measured in ``bench/outbox_bench.py``.) A deadlock or a lock wait
timeout of ours rolls the whole transaction back; it is tried again with a bounded backoff.
"""
from __future__ import annotations

import contextlib
import hashlib
import logging
import random
import ssl as ssl_module
import time
import weakref
from typing import Any, Callable, Iterable, Iterator, TypeVar

import pymysql
import pymysql.cursors

from .config import Config
from .errors import Busy, Unreachable

T = TypeVar("T")
log = logging.getLogger("wpmsync.db")


# The server is full or out of reach for a moment: too many connections (1040), cannot connect
# (2003), gone away (2006), lost the connection (2013). Worth a few more tries, with a pause.
CONNECTION_ERRORS = (1040, 2003, 2006, 2013)
CONNECT_ATTEMPTS = 4


def connection_error(exc: BaseException) -> bool:
    """A fault of the connection itself (``CONNECTION_ERRORS``), not of a statement."""
    return isinstance(exc, (pymysql.err.OperationalError, pymysql.err.InterfaceError)) and \
        bool(exc.args) and exc.args[0] in CONNECTION_ERRORS


def backoff(attempt: int) -> float:
    """Seconds before try ``attempt + 1``: doubling from 0.1 s, at most 2 s, with jitter (so
    instances turned away together do not come back together)."""
    return min(2.0, 0.05 * 2 ** attempt) * (0.5 + random.random())


def connect(config: Config, password: str | None = None) -> pymysql.connections.Connection:
    """Open an autocommit connection; transactions are explicit (``transaction``). A server
    that is full (1040) or out of reach is tried ``CONNECT_ATTEMPTS`` times, backing off (about
    3 s in all), then ``Unreachable`` (503)."""
    kwargs: dict[str, object] = {}
    if config.ssl:
        context = ssl_module.create_default_context(cafile=config.ssl_ca)
        kwargs["ssl"] = context
    for attempt in range(1, CONNECT_ATTEMPTS + 1):
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
            break
        except pymysql.err.OperationalError as exc:
            code, message = (exc.args + ("",))[:2]
            if connection_error(exc) and attempt < CONNECT_ATTEMPTS:
                log.warning("connecting to MySQL: %s (%s), try %s of %s", message, code, attempt, CONNECT_ATTEMPTS)
                time.sleep(backoff(attempt))
                continue
            raise Unreachable(
                f"cannot connect to MySQL {config.db_user}@{config.db_host}:{config.db_port}"
                f"/{config.db_name}: {message} ({code})"
            ) from None
    with conn.cursor() as cur:
        # Each statement sees what other writers committed before it (no stale snapshot).
        cur.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
    return conn


def retry_connection_loss(work: Callable[[bool], T], what: str) -> T:
    """Run ``work(retried)`` (which opens its own connection) again when the connection was lost
    under it (``CONNECTION_ERRORS``), up to ``CONNECT_ATTEMPTS`` times, backing off; ``retried``
    tells a try after a loss from the first. For work that is idempotent and resumes where it
    stopped (a queue batch): its open transaction was rolled back by the server, its locks freed
    with the connection."""
    for attempt in range(1, CONNECT_ATTEMPTS + 1):
        try:
            return work(attempt > 1)
        except pymysql.MySQLError as exc:
            if not connection_error(exc) or attempt == CONNECT_ATTEMPTS:
                raise
            log.warning("%s: the database connection was lost (%s), try %s of %s", what, exc.args[0],
                        attempt, CONNECT_ATTEMPTS)
            time.sleep(backoff(attempt))
    raise AssertionError("unreachable")


@contextlib.contextmanager
def transaction(conn: pymysql.connections.Connection) -> Iterator[pymysql.cursors.Cursor]:
    """One transaction (READ COMMITTED, as the session): committed on success, rolled back on
    any error."""
    conn.begin()
    try:
        with conn.cursor() as cur:
            yield cur
        conn.commit()
    except BaseException:
        conn.rollback()
        raise


NO_SUCH_TABLE = 1146
# Per connection: the tables of ours already seen there. Not per process: another process's
# ``uninstall`` drops them under a running worker, whose next invocation (a new connection)
# must notice. Weak keys: a closed connection's entry goes with it.
_TABLES_SEEN: "weakref.WeakKeyDictionary[Any, set[str]]" = weakref.WeakKeyDictionary()


def ensure_own_tables(conn: Any, names: list[str], create: Callable[[Any], None]) -> None:
    """Make sure the tables ``names`` (of our own) exist before this connection uses them.

    Checked once per connection by one statement that reads no row (``SELECT 1 FROM each
    WHERE 1 = 0``, which fails with 1146 when any is missing); only then ``create(cursor)``
    runs its ``CREATE TABLE IF NOT EXISTS`` (DDL commits: call this outside transactions)."""
    try:
        seen = _TABLES_SEEN.setdefault(conn, set())
    except TypeError:  # a connection that takes no weak reference: checked every time
        seen = set()
    if all(name in seen for name in names):
        return
    with conn.cursor() as cur:
        try:
            cur.execute(" UNION ALL ".join(f"SELECT 1 FROM {name} WHERE 1 = 0" for name in names))
            cur.fetchall()
        except pymysql.MySQLError as exc:
            if not exc.args or exc.args[0] != NO_SUCH_TABLE:
                raise
            create(cur)
    seen.update(names)


def forget_own_tables() -> None:
    """After our own ``uninstall``: every connection checks again before its next use."""
    _TABLES_SEEN.clear()


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

DEADLOCK, LOCK_WAIT_TIMEOUT = 1213, 1205
# InnoDB reports a deadlock or lock wait met while taking a table's AUTO-INC lock (an
# INSERT ... SELECT into usermeta holds it for the statement) as this error instead.
AUTOINC_READ_FAILED = 1467
ATTEMPTS = 5  # tries of a transaction that met a deadlock or a lock wait timeout


def retryable(exc: BaseException) -> bool:
    """A deadlock or a lock wait timeout: the transaction is rolled back (``transaction`` rolls
    back whatever the server kept), so trying again is safe."""
    return isinstance(exc, pymysql.MySQLError) and bool(exc.args) and \
        exc.args[0] in (DEADLOCK, LOCK_WAIT_TIMEOUT, AUTOINC_READ_FAILED)


def write_users(conn: pymysql.connections.Connection, config: Config, first_user: int,
                last_user: int, work: Callable[[pymysql.cursors.Cursor], T]) -> T:
    """Run ``work(cursor)`` in one transaction that holds users ``first_user..last_user``: their
    buckets' named locks, which every writer of ours takes (and the mu-plugin, for the removal
    record). ``work`` may run more than once (a deadlock or a lock wait timeout is tried again, at
    most ``ATTEMPTS`` times, backing off), so it builds its result afresh each time. After the
    last try: ``Busy``, nothing written."""
    for attempt in range(1, ATTEMPTS + 1):
        try:
            with named_locks(conn, config, user_locks(first_user, last_user)), transaction(conn) as cur:
                return work(cur)
        except pymysql.MySQLError as exc:
            if not retryable(exc):
                raise
            log.warning("users %s..%s: %s (try %s of %s)", first_user, last_user, exc.args[1] if len(exc.args) > 1
                        else exc, attempt, ATTEMPTS)
            if attempt == ATTEMPTS:
                raise Busy(f"users {first_user}..{last_user}: the database kept reporting lock conflicts "
                           f"({exc.args[0]}) after {ATTEMPTS} tries; nothing was written, try again") from None
            time.sleep(backoff(attempt))
    raise AssertionError("unreachable")
