"""Watermarks: what the reconcile timer had seen when its last pass began, so the next pass
reads only what changed since (``reconcile.py``).

Kept in ``{prefix}wpmsync_watermarks``, one row per (network, mark), created on first use like
our other tables (one probe per connection, ``db.ensure_own_tables``) and dropped by
``uninstall`` with every other ``{prefix}wpmsync_*`` table (the next pass is then a full one):

- ``max_user_id``: the highest ``users.ID``; a user above it is new;
- ``max_umeta_id``: the highest ``usermeta.umeta_id``; a membership row above it is new (read as
  a range of usermeta's primary key: it costs the new rows, never the table);
- ``live_sites``: the blog ids that were live (not archived, deleted nor spam, ``Site.live``); a
  site live now and not among them is new or re-activated;
- ``config``: a digest of what decides who belongs where (the switches, the network options, the
  super admins, the main site): when it changed, a pass that looked at changes only could miss
  what the change itself made due, so the next pass is a full one;
- ``job``: the job the pass queued (empty: none); when that job failed, what it should have
  written is nowhere in the new rows, so the next pass is a full one;
- ``full_pass``: the job id of the last full pass, its time in ``updated_at``;
- ``role_report``: the last full pass's role report (role changes are updates in place, which
  no mark sees: the report is the full pass's, repeated with its time by the passes between);
- ``full_requested``: a full pass that had to skip (the lease held, a sync job running) left
  this, so the next pass, whichever timer starts it, is the full one.

The marks are read at the start of a pass and written only when it completed: a pass that
crashed or skipped is repeated from the same marks, and a row written while a pass ran is seen
by the next one.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from . import db
from .db import transaction
from .schema import Network

MAX_USER_ID, MAX_UMETA_ID, LIVE_SITES, CONFIG = "max_user_id", "max_umeta_id", "live_sites", "config"
JOB, FULL_PASS, ROLE_REPORT, FULL_REQUESTED = "job", "full_pass", "role_report", "full_requested"
REQUIRED = (MAX_USER_ID, MAX_UMETA_ID, LIVE_SITES, CONFIG)  # without all of them: a full pass

DDL = """CREATE TABLE IF NOT EXISTS {table} (
    network_id BIGINT NOT NULL,
    name VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    value LONGTEXT NOT NULL,
    updated_at DATETIME(6) NOT NULL,
    PRIMARY KEY (network_id, name)
) DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_520_ci"""


# The id ranges of the rows our own batches inserted (one row per batch step): the incremental
# pass skips them, so a sync's own rows do not make every user it touched "changed" (after a
# sync of every user, the next pass would otherwise check them all: 49 s at 101 x 10,000).
OWN_ROWS_DDL = """CREATE TABLE IF NOT EXISTS {table} (
    first_id BIGINT UNSIGNED NOT NULL PRIMARY KEY,
    last_id BIGINT UNSIGNED NOT NULL
) DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_520_ci"""
GAPS_PER_READ = 200  # id ranges per statement when the new rows are read around ours


def table(network: Network) -> str:
    return network.tables.own_table("watermarks")


def own_rows_table(network: Network) -> str:
    return network.tables.own_table("own_rows")


def create_tables(cur: Any, network: Network) -> None:
    cur.execute(DDL.format(table=table(network)))
    cur.execute(OWN_ROWS_DDL.format(table=own_rows_table(network)))


def ensure_table(conn: Any, network: Network) -> None:
    """The tables exist for this connection: one statement that reads no row, once per
    connection (an ``uninstall`` elsewhere drops them under a running worker); made when missing."""
    db.ensure_own_tables(conn, [table(network), own_rows_table(network)], lambda cur: create_tables(cur, network))


def note_own_rows(cur: Any, network: Network, first_id: int, last_id: int) -> None:
    """Inside a batch step's transaction: usermeta ids ``first_id..last_id`` are that step's own
    insert (they commit, or vanish, with it)."""
    cur.execute(f"INSERT INTO {own_rows_table(network)} (first_id, last_id) VALUES (%s, %s)", (first_id, last_id))


def new_row_ranges(cur: Any, network: Network, after: int, upto: int) -> list[tuple[int, int]]:
    """The usermeta id ranges in ``after+1..upto`` that no batch of ours inserted: where the
    rows WordPress (and our one-user writers) inserted since the last pass are. A handful of
    ranges; our inserts' ranges are read through their primary key."""
    cur.execute(f"SELECT first_id, last_id FROM {own_rows_table(network)} WHERE last_id > %s AND first_id <= %s "
                "ORDER BY first_id", (after, upto))
    gaps, start = [], after + 1
    for first, last in cur.fetchall():
        if int(first) > start:
            gaps.append((start, int(first) - 1))
        start = max(start, int(last) + 1)
    if start <= upto:
        gaps.append((start, upto))
    return gaps


def prune_own_rows(cur: Any, network: Network, upto: int) -> None:
    """Ranges wholly below the marks are of no more use."""
    cur.execute(f"DELETE FROM {own_rows_table(network)} WHERE last_id <= %s", (upto,))


@dataclass(frozen=True)
class Marks:
    """Where a pass starts from (as stored), or where the next one will (``snapshot``)."""

    max_user_id: int
    max_umeta_id: int
    live_sites: frozenset[int]
    config: str
    job_id: str = ""
    full_at: datetime | None = None
    role_report: dict[str, Any] | None = None
    full_requested: bool = False


def config_digest(network: Network, switches: dict[str, bool]) -> str:
    """What decides who should be a member where, as one digest (see ``CONFIG``)."""
    options = network.options.to_dict() if network.options is not None else None
    what = {"switches": switches, "options": options, "super_admins": sorted(network.super_admins),
            "foreign_admins": sorted(network.foreign_admins), "main_site": network.main_site_id}
    return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()


def read(conn: Any, network: Network) -> Marks | None:
    """The stored marks of this network; None when there are none yet (or not all of them):
    the pass is then a full one. One read through the primary key."""
    with conn.cursor() as cur:
        cur.execute(f"SELECT name, value, updated_at FROM {table(network)} WHERE network_id = %s",
                    (network.config.network_id,))
        rows = {name: (value, at) for name, value, at in cur.fetchall()}
    if not all(name in rows for name in REQUIRED):
        return None
    try:
        report = json.loads(rows[ROLE_REPORT][0]) if ROLE_REPORT in rows else None
        return Marks(int(rows[MAX_USER_ID][0]), int(rows[MAX_UMETA_ID][0]),
                     frozenset(int(b) for b in json.loads(rows[LIVE_SITES][0])), rows[CONFIG][0],
                     rows.get(JOB, ("", None))[0], rows.get(FULL_PASS, (None, None))[1],
                     report if isinstance(report, dict) else None, FULL_REQUESTED in rows)
    except (TypeError, ValueError):  # edited by hand into something else: start again
        return None


def snapshot(conn: Any, network: Network, config: str) -> Marks:
    """The marks as they are now, taken when a pass begins: the highest user and usermeta ids
    (each the end of a primary key: no row is read) and the network's live sites (as the engine
    loaded them, just before)."""
    with conn.cursor() as cur:
        cur.execute(f"SELECT (SELECT COALESCE(MAX(ID), 0) FROM {network.tables.users}), "
                    f"(SELECT COALESCE(MAX(umeta_id), 0) FROM {network.tables.usermeta})")
        users, umeta = cur.fetchone()
    return Marks(int(users), int(umeta), frozenset(s.blog_id for s in network.live_sites()), config)


def save(conn: Any, network: Network, marks: Marks, job_id: str, *, full_pass_job: str | None = None,
         role_report: dict[str, Any] | None = None) -> None:
    """Advance the marks after a pass completed (one transaction). A full pass
    (``full_pass_job``) also records itself, its role report, and settles a full pass that was
    requested meanwhile."""
    rows: list[tuple[str, str]] = [
        (MAX_USER_ID, str(marks.max_user_id)), (MAX_UMETA_ID, str(marks.max_umeta_id)),
        (LIVE_SITES, json.dumps(sorted(marks.live_sites))), (CONFIG, marks.config), (JOB, job_id)]
    if full_pass_job is not None:
        rows.append((FULL_PASS, full_pass_job))
        if role_report is not None:
            rows.append((ROLE_REPORT, json.dumps(role_report)))
    network_id = network.config.network_id
    with transaction(conn) as cur:
        # One statement per mark, the value repeated: VALUES() in ON DUPLICATE KEY UPDATE is
        # deprecated in MySQL (1287) and MariaDB has no row alias (INSERT ... AS new).
        for name, value in rows:
            cur.execute(f"INSERT INTO {table(network)} (network_id, name, value, updated_at) VALUES "
                        "(%s, %s, %s, NOW(6)) ON DUPLICATE KEY UPDATE value = %s, updated_at = NOW(6)",
                        (network_id, name, value, value))
        prune_own_rows(cur, network, marks.max_umeta_id)
        if full_pass_job is not None:
            names = [FULL_REQUESTED] + ([] if role_report is not None else [ROLE_REPORT])
            cur.execute(f"DELETE FROM {table(network)} WHERE network_id = %s AND name IN "
                        f"({', '.join(['%s'] * len(names))})", (network_id, *names))


def request_full(conn: Any, network: Network) -> None:
    """A full pass could not run now: the next pass, whichever timer starts it, is the full one."""
    with conn.cursor() as cur:
        cur.execute(f"INSERT INTO {table(network)} (network_id, name, value, updated_at) VALUES "
                    "(%s, %s, '', NOW(6)) ON DUPLICATE KEY UPDATE updated_at = NOW(6)",
                    (network.config.network_id, FULL_REQUESTED))
