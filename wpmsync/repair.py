"""Repair what WordPress's own races leave in usermeta.

WordPress writes usermeta without transactions, locks or a unique key, so two requests at once
can leave, by themselves:

- a **half membership**: a site's ``capabilities`` row without its ``user_level`` row (a request
  died between the two inserts of ``add_user_to_blog``), or a ``user_level`` row without its
  ``capabilities`` row (between the two deletes of ``remove_user_from_blog``);
- a **duplicate**: two rows of one (user_id, meta_key) (two ``update_user_meta`` calls that
  both found no row and both inserted), for the membership keys and ``primary_blog`` /
  ``source_domain``.

The reconcile pass repairs them the way WordPress reads them: ``get_user_meta( ..., true )``
returns the lowest ``umeta_id``, so that row is kept and the others are deleted; a caps row
gets the ``user_level`` that ``WP_User::update_user_level_from_caps`` would store; a lone
``user_level`` row is deleted (WordPress counts no membership without caps). Every write is
journaled under one change, so ``undo`` puts the rows back, and it is done per user in a
transaction that holds the user (``db.write_users``), re-reading the rows there: a row that
WordPress completed meanwhile is left alone.

Finding them reads the membership rows of the live sites once (two set-based queries), or,
for the incremental reconcile, only the rows of the users that changed since its last pass; the
repairs are per user, as they are few.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Collection
from typing import Any

from . import db, journal, memberships, phpserial
from .errors import BrokenOption
from .journal import USERMETA, Change
from .roles import SiteRoles, load_site_roles
from .schema import Network

GLOBAL_KEYS = ("primary_blog", "source_domain")
REPORTED = 20  # user ids named in the report
USERS_PER_READ = 500  # users per IN list when the search is limited to some users
CAPS_SUFFIX, LEVEL_SUFFIX = "capabilities", "user_level"


def _keys(network: Network, blog_ids: list[int]) -> dict[str, int]:
    """meta_key → blog id (0 for the user's own keys) of everything this module looks at."""
    keys = {k: 0 for k in GLOBAL_KEYS}
    for blog_id in blog_ids:
        keys[network.tables.cap_key(blog_id)] = blog_id
        keys[network.tables.level_key(blog_id)] = blog_id
    return keys


def find(conn: Any, network: Network, blog_ids: list[int], users: Collection[int] | None = None,
         each_chunk: Callable[[], None] = lambda: None) -> set[int]:
    """Users with a duplicate or a half membership on these (live) sites: among every user
    (``users`` None: every user's rows, a user-id range at a time), or among ``users`` only (the
    incremental reconcile's changed users: their own rows, so it costs what they hold, not the
    table). Both read through the ``user_id`` index; ``each_chunk`` runs before each chunk (the
    timer renews its lease there)."""
    keys = _keys(network, blog_ids)
    if not blog_ids or (users is not None and not users):
        return set()
    um = network.tables.usermeta
    marks = ", ".join(["%s"] * len(keys))
    caps = [network.tables.cap_key(b) for b in blog_ids]
    levels = [network.tables.level_key(b) for b in blog_ids]
    membership = caps + levels
    # A chunk of users, read through the user_id index: the given users a few hundred at a
    # time, or every user a batch's user-id range at a time. (One GROUP BY over every
    # membership key of the table took 150 s on a cold buffer pool at 101 sites x 10,000
    # users, range by range 27.5 s: the rows of a user sit together in that index.)
    source = f"{um} FORCE INDEX (user_id)"
    chunks: list[tuple[str, list[int]]]
    if users is None:
        per_range = memberships.users_per_batch(network.config.batch_size, len(blog_ids))
        chunks = [(" AND user_id BETWEEN %s AND %s", [lo, hi])
                  for lo, hi in memberships.user_ranges(conn, network, per_range)]
    else:
        ordered = sorted(set(users))
        chunks = [(f" AND user_id IN ({', '.join(['%s'] * len(part))})", part)
                  for part in (ordered[i:i + USERS_PER_READ] for i in range(0, len(ordered), USERS_PER_READ))]
    found: set[int] = set()
    with conn.cursor() as cur:
        for only, some in chunks:
            each_chunk()
            cur.execute(f"SELECT DISTINCT user_id FROM (SELECT user_id FROM {source} WHERE meta_key IN ({marks})"
                        f"{only} GROUP BY user_id, meta_key HAVING COUNT(*) > 1) d", [*keys, *some])
            found |= {int(r[0]) for r in cur.fetchall()}
            # A caps key is its site's prefix + 'capabilities', the level key the same prefix +
            # 'user_level': grouped by user and prefix, a site with one of the two and not the other
            # shows (one pass over the membership rows, like the duplicates above).
            cur.execute(
                "SELECT DISTINCT user_id FROM (SELECT user_id, IF(RIGHT(meta_key, %s) = %s, "
                "LEFT(meta_key, CHAR_LENGTH(meta_key) - %s), LEFT(meta_key, CHAR_LENGTH(meta_key) - %s)) AS site, "
                "SUM(RIGHT(meta_key, %s) = %s) AS caps_rows, COUNT(*) AS all_rows "
                f"FROM {source} WHERE meta_key IN ({', '.join(['%s'] * len(membership))}){only} GROUP BY user_id, site "
                "HAVING caps_rows = 0 OR caps_rows = all_rows) h",
                (len(CAPS_SUFFIX), CAPS_SUFFIX, len(CAPS_SUFFIX), len(LEVEL_SUFFIX), len(CAPS_SUFFIX), CAPS_SUFFIX,
                 *membership, *some))
            found |= {int(r[0]) for r in cur.fetchall()}
    return found


def repair(conn: Any, network: Network, blog_ids: list[int], change: Change,
           users: Collection[int] | None = None,
           each_chunk: Callable[[], None] = lambda: None) -> tuple[dict[str, Any], set[int]]:
    """Find and repair (among ``users`` only, when given); returns the report (with the
    change's id, for undo) and the users whose rows were looked at (for WordPress's cache
    cleaning)."""
    users = find(conn, network, blog_ids, users, each_chunk)
    report: dict[str, Any] = {"duplicates_deleted": 0, "user_levels_added": 0, "user_levels_deleted": 0,
                              "users": sorted(users)[:REPORTED], "job_id": None}
    if not users:
        return report, users
    keys = _keys(network, blog_ids)
    loaded: dict[int, SiteRoles | None] = {}

    def roles_of(blog_id: int) -> SiteRoles | None:
        """A site's roles, read once; None when its roles option cannot be read (left alone)."""
        if blog_id not in loaded:
            try:
                loaded[blog_id] = load_site_roles(conn, network.tables, [blog_id])[blog_id]
            except BrokenOption:
                loaded[blog_id] = None
        return loaded[blog_id]

    for user_id in sorted(users):
        done = db.write_users(conn, network.config, user_id, user_id,
                              lambda cur, u=user_id: _repair_user(cur, network, u, keys, roles_of, change))
        for name, count in done.items():
            report[name] += count
    if any(report[k] for k in ("duplicates_deleted", "user_levels_added", "user_levels_deleted")):
        report["job_id"] = change.job_id
    return report, users


def _repair_user(cur: Any, network: Network, user_id: int, keys: dict[str, int],
                 roles_of: Callable[[int], SiteRoles | None], change: Change) -> dict[str, int]:
    """One user's rows of ``keys``, read in the transaction that holds the user, repaired."""
    um = network.tables.usermeta
    cur.execute(f"SELECT umeta_id, meta_key, meta_value FROM {network.tables.usermeta_by_user('m')} "
                f"WHERE user_id = %s AND meta_key IN ({', '.join(['%s'] * len(keys))}) ORDER BY umeta_id",
                (user_id, *keys))
    rows: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for row_id, key, value in cur.fetchall():
        rows[key].append((int(row_id), value))
    done = {"duplicates_deleted": 0, "user_levels_added": 0, "user_levels_deleted": 0}
    doomed: list[tuple] = []
    for key, found in rows.items():
        for row_id, value in found[1:]:  # get_user_meta( ..., true ) reads the lowest umeta_id
            doomed.append((USERMETA, row_id, user_id, keys[key], key, value, None))
    done["duplicates_deleted"] = len(doomed)
    inserted: list[tuple] = []
    for blog_id in sorted({b for k, b in keys.items() if b}):
        caps_rows, level_rows = rows.get(network.tables.cap_key(blog_id)), rows.get(network.tables.level_key(blog_id))
        if caps_rows and not level_rows:
            caps, site = _caps(caps_rows[0][1]), roles_of(blog_id)
            if caps is None or site is None:
                continue  # not an array, or the site's roles unreadable: nothing to compute from
            level = str(site.user_level(caps))
            key = network.tables.level_key(blog_id)
            cur.execute(f"INSERT INTO {um} (user_id, meta_key, meta_value) VALUES (%s, %s, %s)", (user_id, key, level))
            inserted.append((USERMETA, cur.lastrowid, user_id, blog_id, key, None, level))
        elif level_rows and not caps_rows:
            key = network.tables.level_key(blog_id)
            doomed.append((USERMETA, level_rows[0][0], user_id, blog_id, key, level_rows[0][1], None))
            done["user_levels_deleted"] += 1
    done["user_levels_added"] = len(inserted)
    if doomed:
        cur.execute(f"DELETE FROM {um} WHERE umeta_id IN ({', '.join(['%s'] * len(doomed))})", [d[1] for d in doomed])
    journal.record_rows(cur, network, change, doomed + inserted)
    return done


def _caps(raw: str | None) -> dict[str, Any] | None:
    try:
        value = phpserial.loads(raw or "")
    except phpserial.PHPSerialError:
        return None
    return value if isinstance(value, dict) else None
