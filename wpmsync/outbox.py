"""The outbox table: WordPress's events, kept in its own database until they are applied.

The mu-plugin writes every event to ``{prefix}wpmsync_outbox`` the moment it happens (see
``wordpress/mu-plugins/wpmsync/includes/class-wpmsync-outbox.php``; the table's definition is the
same text in both languages, and whichever side comes first creates it). It sends them at
shutdown and deletes each one the functions acknowledge; WP-Cron retries the rest with backoff.
The functions do not depend on either: ``delivery.drain`` reads the due rows straight from the
database (the timer calls it, and each hook drains a few) and applies them in order.

A row that stays too long (``WPMSYNC_OUTBOX_DAYS``) is reported (logged at error level with its
event, and in the timer's result) and then pruned, never dropped silently. Until its events are
applied a user is left out of every sync that is not forced (``users_waiting``).
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from .schema import Network

log = logging.getLogger("wpmsync.outbox")

REPORTED = 20        # expired rows named in a report

# Word for word the mu-plugin's CREATE TABLE (a test compares the tables both make).
DDL = ("CREATE TABLE IF NOT EXISTS {table} ("
       "id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT, "
       "event_id VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL, "
       "event VARCHAR(32) CHARACTER SET ascii COLLATE ascii_bin NOT NULL, "
       "network_id BIGINT UNSIGNED NOT NULL DEFAULT 1, "
       "user_id BIGINT UNSIGNED NOT NULL DEFAULT 0, "
       "blog_id BIGINT UNSIGNED NOT NULL DEFAULT 0, "
       "data LONGTEXT NOT NULL, "
       "created_at DATETIME NOT NULL, "
       "attempts INT UNSIGNED NOT NULL DEFAULT 0, "
       "next_try DATETIME NOT NULL, "
       "last_error VARCHAR(500) NULL, "
       "PRIMARY KEY (id), UNIQUE KEY event_id (event_id), KEY next_try (next_try), "
       "KEY user_event (user_id, id)) DEFAULT CHARSET=utf8mb4")


@dataclass(frozen=True)
class Row:
    """One outbox row."""

    id: int
    event_id: str
    event: str
    user_id: int
    blog_id: int
    data: Any


def table(network: Network) -> str:
    return network.tables.own_table("outbox")


def ensure_table(cur: Any, network: Network) -> None:
    cur.execute(DDL.format(table=table(network)))


# ---------------------------------------------------------------- reading

COLUMNS = "id, event_id, event, user_id, blog_id, data"


def rows(cur: Any) -> list[Row]:
    out = []
    for row_id, event_id, event, user_id, blog_id, data in cur.fetchall():
        try:
            parsed = json.loads(data)
        except (TypeError, ValueError):
            parsed = None
        out.append(Row(int(row_id), str(event_id), str(event), int(user_id), int(blog_id), parsed))
    return out


def due(conn: Any, network: Network, limit: int) -> list[Row]:
    """Rows of this network whose next try has come, oldest first."""
    with conn.cursor() as cur:
        cur.execute(f"SELECT {COLUMNS} FROM {table(network)} WHERE network_id = %s "
                    "AND next_try <= UTC_TIMESTAMP() ORDER BY id LIMIT %s", (network.config.network_id, limit))
        return rows(cur)


def find(conn: Any, network: Network, event_id: str) -> Row | None:
    """The row of one event, if it is in the outbox."""
    with conn.cursor() as cur:
        cur.execute(f"SELECT {COLUMNS} FROM {table(network)} WHERE event_id = %s", (event_id,))
        found = rows(cur)
    return found[0] if found else None


def users_waiting(cur: Any, network: Network, first_user: int, last_user: int) -> set[int]:
    """Users in the range with events still in the outbox: no sync that is not forced adds them
    anywhere until those events are applied (one of them may be a removal)."""
    cur.execute(f"SELECT DISTINCT user_id FROM {table(network)} WHERE user_id BETWEEN %s AND %s",
                (max(1, first_user), last_user))
    return {int(r[0]) for r in cur.fetchall()}


def stats(conn: Any, network: Network) -> dict[str, Any]:
    """Rows waiting, the oldest one's age, how many failed a try, and the last error."""
    with conn.cursor() as cur:
        cur.execute(f"SELECT COUNT(*), COALESCE(TIMESTAMPDIFF(SECOND, MIN(created_at), UTC_TIMESTAMP()), 0), "
                    f"COALESCE(SUM(attempts > 0), 0) FROM {table(network)} WHERE network_id = %s",
                    (network.config.network_id,))
        pending, oldest, failing = (int(x) for x in cur.fetchone())
        error = None
        if failing:
            cur.execute(f"SELECT last_error FROM {table(network)} WHERE network_id = %s AND attempts > 0 "
                        "ORDER BY id DESC LIMIT 1", (network.config.network_id,))
            error = cur.fetchone()[0]
    return {"pending": pending, "oldest_seconds": oldest, "failing": failing, "last_error": error}


# ---------------------------------------------------------------- settling rows

def earlier(conn: Any, network: Network, user_id: int, before: int | None) -> list[Row]:
    """The user's rows of this network older than row ``before`` (all of them: None)."""
    with conn.cursor() as cur:
        cur.execute(f"SELECT {COLUMNS} FROM {table(network)} WHERE user_id = %s AND id < %s "
                    "AND network_id = %s ORDER BY id",
                    (user_id, before if before is not None else 2**63, network.config.network_id))
        return rows(cur)


def delete(conn: Any, network: Network, row_id: int) -> None:
    with conn.cursor() as cur:
        cur.execute(f"DELETE FROM {table(network)} WHERE id = %s", (row_id,))


def note_failure(conn: Any, network: Network, row_id: int, error: str) -> None:
    """The same backoff as the mu-plugin's: 1, 2, 4 ... minutes, at most an hour."""
    with conn.cursor() as cur:
        cur.execute(f"UPDATE {table(network)} SET attempts = attempts + 1, last_error = %s, next_try = "
                    "UTC_TIMESTAMP() + INTERVAL LEAST(3600, 60 * POW(2, LEAST(attempts, 11) - 1)) SECOND "
                    "WHERE id = %s", (error[:500], row_id))


# ---------------------------------------------------------------- retention

def prune(conn: Any, network: Network, days: int) -> dict[str, Any]:
    """Rows older than ``days`` are reported (logged at error level, each with its event) and
    then deleted; the report says how many and names the first ones."""
    with conn.cursor() as cur:
        cur.execute(f"SELECT {COLUMNS} FROM {table(network)} WHERE network_id = %s AND created_at < "
                    "UTC_TIMESTAMP() - INTERVAL %s DAY ORDER BY id", (network.config.network_id, days))
        expired = rows(cur)
        for row in expired:
            log.error("outbox event expired after %s days, never applied: %s %s", days, row.event,
                      json.dumps(row.data), extra={"event_id": row.event_id})
            cur.execute(f"DELETE FROM {table(network)} WHERE id = %s", (row.id,))
    return {"expired": len(expired), "first": [
        {"event_id": r.event_id, "event": r.event, "data": r.data} for r in expired[:REPORTED]]}
