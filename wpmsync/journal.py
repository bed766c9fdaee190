"""The undo journal: every row the sync adds, changes or removes, so any change can be undone.

Each write operation (a hook, a manual action, a queued job, an undo) is one *change*, named by
a 32-character id: a queued job's id, or a fresh one for inline work (answers carry it as
``job_id``). Per changed row the journal keeps which table and row (``umeta_id`` / ``option_id``),
whose and which site's it is, the old value (NULL: the row did not exist) and the new value
(NULL: the row was removed). Journal rows are written in the same transaction as the rows they
describe, set-based where the write is set-based (a batch journals its inserts with one
``INSERT … SELECT``), so the journal is never out of step with the data.

``undo`` puts back the exact previous rows: a row we added is deleted, a row we changed gets its
old value back, a row we removed is inserted again with its old ``umeta_id``. It only touches a
row whose current value is still what the change left; when someone changed a membership since
(WordPress, a person, a later sync), that membership's rows are left alone and reported as a
conflict, so undo never overwrites newer work. Undo is itself a journaled change, so it can be
undone too; running it again restores only what is left.

Tables of our own: ``{prefix}wpmsync_changes`` (one row per change: trigger, times, undone by)
and ``{prefix}wpmsync_journal`` (one row per changed row). ``prune`` drops what is older than
``WPMSYNC_JOURNAL_DAYS`` (the timer calls it).
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any, Iterable

from . import db, inputs
from .errors import Conflict, NotFound
from .schema import Network

USERMETA, OPTIONS = 1, 2  # the table a journal row names (a number: every byte counts per row)
# TEMPORARY tables of an undo: the range's journal ids, the last write of rows written twice,
# one entry per row to put back, the memberships that conflict.
IDS, LAST, UNDO, BAD = "wpmsync_undo_ids", "wpmsync_undo_last", "wpmsync_undo", "wpmsync_undo_bad"
SAMPLE = 50

DDL = [
    """CREATE TABLE IF NOT EXISTS {changes} (
        seq BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
        job_id CHAR(32) NOT NULL,
        network_id BIGINT NOT NULL,
        trigger_info VARCHAR(255) NOT NULL,
        undo_of CHAR(32) NULL,
        created_at DATETIME(6) NOT NULL,
        undone_by CHAR(32) NULL,
        undone_at DATETIME(6) NULL,
        UNIQUE KEY job_id (job_id),
        KEY network_created (network_id, created_at)
    ) DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_520_ci""",
    """CREATE TABLE IF NOT EXISTS {journal} (
        id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
        change_seq BIGINT UNSIGNED NOT NULL,
        tbl TINYINT UNSIGNED NOT NULL,
        row_id BIGINT UNSIGNED NOT NULL,
        user_id BIGINT UNSIGNED NOT NULL,
        blog_id BIGINT NOT NULL,
        meta_key VARCHAR(255) COLLATE {collation} NOT NULL,
        old_value LONGTEXT NULL,
        new_value LONGTEXT NULL,
        undone_by BIGINT UNSIGNED NOT NULL DEFAULT 0,
        KEY change_user (change_seq, user_id)
    ) DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_520_ci""",
]


@dataclass(frozen=True)
class Change:
    """Who writes: the id undo will know this change by, and what triggered it."""

    job_id: str
    trigger: str
    undo_of: str | None = None

    @classmethod
    def new(cls, trigger: str, undo_of: str | None = None) -> "Change":
        return cls(uuid.uuid4().hex, trigger[:255], undo_of)

    @classmethod
    def undoing(cls, job_id: str, trigger: str) -> "Change":
        """The change an undo of ``job_id`` makes, asked for by ``trigger``."""
        return cls.new(f"undo {job_id} ({trigger})", undo_of=job_id)


def own_tables(network: Network) -> list[str]:
    """The journal's tables (``jobs.ensure_tables`` checks them with its own, in one statement)."""
    return [_changes(network), _journal(network)]


def create_tables(cur: Any, network: Network) -> None:
    for ddl in DDL:
        cur.execute(ddl.format(changes=_changes(network), journal=_journal(network),
                               collation=network.meta_key_collation))


def ensure_tables(conn: Any, network: Network) -> None:
    """The journal's tables exist: checked once per connection, so an ``uninstall`` done by
    another process is noticed by this one's next invocation (see ``db.ensure_own_tables``)."""
    db.ensure_own_tables(conn, own_tables(network), lambda cur: create_tables(cur, network))


def forget_tables() -> None:
    """After uninstall: the next use checks (and makes) the tables again."""
    db.forget_own_tables()


def _changes(network: Network) -> str:
    return network.tables.own_table("changes")


def _journal(network: Network) -> str:
    return network.tables.own_table("journal")


# ---------------------------------------------------------------- writing the journal

def open_change(cur: Any, network: Network, change: Change) -> int:
    """Register the change (once; later calls are no-ops) and return its number, which its
    journal rows carry instead of the 32-character id. Runs inside the writer's transaction, so
    a change with no committed rows leaves no trace. A queued job registers at creation, so its
    parallel batches only read this row and never wait on each other."""
    # Looked up first: a plain read takes no lock (INSERT IGNORE of an existing id would take a
    # shared lock that holds up every new change's insert until this transaction ends).
    cur.execute(f"SELECT seq FROM {_changes(network)} WHERE job_id = %s", (change.job_id,))
    row = cur.fetchone()
    if row is None:
        cur.execute(f"INSERT IGNORE INTO {_changes(network)} (job_id, network_id, trigger_info, undo_of, created_at) "
                    "VALUES (%s, %s, %s, %s, NOW(6))",
                    (change.job_id, network.config.network_id, change.trigger, change.undo_of))
        cur.execute(f"SELECT seq FROM {_changes(network)} WHERE job_id = %s", (change.job_id,))
        row = cur.fetchone()
    return int(row[0])


def record_select(cur: Any, network: Network, change: Change, select: str, params: Iterable[Any] = ()) -> int:
    """Journal the rows a SELECT names, set-based. ``select`` is the part after ``SELECT`` and
    yields: tbl, row_id, user_id, blog_id, meta_key, old_value, new_value."""
    seq = open_change(cur, network, change)
    return cur.execute(
        f"INSERT INTO {_journal(network)} (change_seq, tbl, row_id, user_id, blog_id, meta_key, "
        f"old_value, new_value) SELECT %s, {select}", (seq, *params))


def record_rows(cur: Any, network: Network, change: Change, rows: list[tuple]) -> None:
    """Journal rows known in Python: (tbl, row_id, user_id, blog_id, meta_key, old, new)."""
    if not rows:
        return
    seq = open_change(cur, network, change)
    cur.execute(
        f"INSERT INTO {_journal(network)} (change_seq, tbl, row_id, user_id, blog_id, meta_key, "
        "old_value, new_value) VALUES " + ", ".join(["(%s, %s, %s, %s, %s, %s, %s, %s)"] * len(rows)),
        [x for row in rows for x in (seq, *row)])


def update_meta(cur: Any, network: Network, change: Change | None, user_id: int, blog_id: int,
                key: str, value: str) -> None:
    """``update_user_meta``, journaled: every row of the key gets ``value`` (a row whose value
    was already that is left as it is), or one row is added when there is none."""
    um = network.tables.usermeta
    cur.execute(f"SELECT umeta_id, meta_value FROM {network.tables.usermeta_by_user('m')} WHERE user_id = %s "
                "AND meta_key = %s ORDER BY umeta_id FOR UPDATE", (user_id, key))
    rows = cur.fetchall()
    if rows:
        changed = [(int(row_id), old) for row_id, old in rows if old != value]
        if changed:
            cur.execute(f"UPDATE {um} SET meta_value = %s WHERE umeta_id IN ({', '.join(['%s'] * len(changed))})",
                        (value, *[r for r, _ in changed]))
        journaled = [(USERMETA, r, user_id, blog_id, key, old, value) for r, old in changed]
    else:
        cur.execute(f"INSERT INTO {um} (user_id, meta_key, meta_value) VALUES (%s, %s, %s)",
                    (user_id, key, value))
        journaled = [(USERMETA, cur.lastrowid, user_id, blog_id, key, None, value)]
    if change is not None:
        record_rows(cur, network, change, journaled)


def delete_meta(cur: Any, network: Network, change: Change | None, user_id: int,
                keys: dict[str, int]) -> int:
    """``delete_user_meta`` of these keys (meta_key → blog id it belongs to), journaled."""
    if not keys:
        return 0
    um = network.tables.usermeta
    cur.execute(f"SELECT umeta_id, meta_key, meta_value FROM {network.tables.usermeta_by_user('m')} "
                f"WHERE user_id = %s AND meta_key IN ({', '.join(['%s'] * len(keys))}) ORDER BY umeta_id FOR UPDATE",
                (user_id, *keys))
    rows = cur.fetchall()
    if not rows:
        return 0
    if change is not None:
        record_rows(cur, network, change, [(USERMETA, int(r), user_id, keys.get(k, 0), k, v, None)
                                            for r, k, v in rows])
    return cur.execute(f"DELETE FROM {um} WHERE umeta_id IN ({', '.join(['%s'] * len(rows))})",
                       [int(r[0]) for r in rows])


def update_option(cur: Any, network: Network, change: Change | None, blog_id: int, name: str,
                  value: str, autoload: str | None = None) -> None:
    """``update_option`` on one site's options table, journaled (the role definitions).
    ``autoload`` (``'on'``, as ``update_option(..., true)`` writes since WordPress 6.6) is set
    with a changed value; None leaves the row's as it is (the journal keeps the value only)."""
    table = network.tables.options(blog_id)
    cur.execute(f"SELECT option_id, option_value FROM {table} WHERE option_name = %s FOR UPDATE", (name,))
    row = cur.fetchone()
    if row is None:
        raise NotFound(f"site {blog_id} has no option {name!r}")
    if row[1] == value:
        return
    if autoload is None:
        cur.execute(f"UPDATE {table} SET option_value = %s WHERE option_id = %s", (value, row[0]))
    else:
        cur.execute(f"UPDATE {table} SET option_value = %s, autoload = %s WHERE option_id = %s",
                    (value, autoload, row[0]))
    if change is not None:
        record_rows(cur, network, change, [(OPTIONS, int(row[0]), 0, blog_id, name, row[1], value)])


# ---------------------------------------------------------------- reading it

def recent(conn: Any, network: Network, limit: int = 20) -> list[dict[str, Any]]:
    """The newest changes with rows, newest first: id, trigger, rows, undone by."""
    ensure_tables(conn, network)
    limit = inputs.whole_number(limit, "limit", 1, 500)
    with conn.cursor() as cur:
        cur.execute(
            f"SELECT c.job_id, c.trigger_info, c.created_at, c.undone_by, c.undone_at, c.undo_of, "
            f"(SELECT COUNT(*) FROM {_journal(network)} j WHERE j.change_seq = c.seq) AS rows_ "
            f"FROM {_changes(network)} c WHERE c.network_id = %s ORDER BY c.created_at DESC LIMIT %s",
            (network.config.network_id, int(limit)))
        rows = cur.fetchall()
    return [{"job_id": j, "trigger": t, "created_at": _iso(c), "undone_by": u, "undone_at": _iso(ua),
             "undo_of": of, "rows": int(n)} for j, t, c, u, ua, of, n in rows]


def _iso(value: Any) -> str | None:
    return value.isoformat() + "Z" if value is not None else None


def prune(conn: Any, network: Network, days: int, chunk: int = 10_000) -> int:
    """Forget changes older than ``days``, change by change in chunked deletes (no long lock on a
    big journal; the journal has one secondary index, ``change_user``, because every index costs
    each journaled row of a sync)."""
    ensure_tables(conn, network)
    removed = 0
    with conn.cursor() as cur:
        cur.execute(f"SELECT seq FROM {_changes(network)} WHERE network_id = %s AND created_at < "
                    "NOW(6) - INTERVAL %s DAY", (network.config.network_id, days))
        for (seq,) in cur.fetchall():
            while True:
                n = cur.execute(f"DELETE FROM {_journal(network)} WHERE change_seq = %s LIMIT %s", (seq, chunk))
                removed += n
                if n < chunk:
                    break
            cur.execute(f"DELETE FROM {_changes(network)} WHERE seq = %s", (seq,))
    return removed


# ---------------------------------------------------------------- undo

@dataclass
class UndoOutcome:
    """What an undo did (or, dry run, would do)."""

    job_id: str | None
    undo_of: str
    dry_run: bool = False
    next_user: int | None = None  # where a queued undo goes on (None: done)
    restored: int = 0
    conflicts: int = 0
    sites: dict[int, dict[str, int]] = field(default_factory=dict)
    skipped: list[dict[str, Any]] = field(default_factory=list)
    touched_users: set[int] = field(default_factory=set, repr=False)
    touched_sites: set[int] = field(default_factory=set, repr=False)
    touched_roles: set[int] = field(default_factory=set, repr=False)

    def merge(self, part: "UndoOutcome") -> None:
        """Add one range's outcome (``part.skipped`` continues this one's sample)."""
        self.restored += part.restored
        self.conflicts += part.conflicts
        for blog_id, entry in part.sites.items():
            mine = self.sites.setdefault(blog_id, {"rows_restored": 0})
            mine["rows_restored"] += entry["rows_restored"]
        self.skipped = part.skipped
        self.touched_users |= part.touched_users
        self.touched_sites |= part.touched_sites
        self.touched_roles |= part.touched_roles

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "UndoOutcome":
        """Back from ``to_dict`` (a queued undo preview keeps its running total as JSON)."""
        return cls(job_id=data["job_id"], undo_of=data["undo_of"], dry_run=data["dry_run"],
                   restored=data["restored"], conflicts=data["conflicts"],
                   sites={int(k): v for k, v in data["sites"].items()}, skipped=list(data["skipped"]))

    def to_dict(self) -> dict[str, Any]:
        return {"job_id": self.job_id, "undo_of": self.undo_of, "dry_run": self.dry_run,
                "remaining": self.next_user is not None,
                "restored": self.restored, "conflicts": self.conflicts,
                "sites": {str(b): v for b, v in sorted(self.sites.items())}, "skipped": self.skipped}


def rows_to_undo(conn: Any, network: Network, job_id: Any, at_most: int) -> int:
    """Rows of change ``job_id`` not undone yet, counted up to ``at_most`` (a bounded read: the
    caller only asks whether the undo fits in one request). Refuses an unknown change (404) or
    a job still running (409)."""
    _, seq = _require_change(conn, network, job_id)
    with conn.cursor() as cur:
        cur.execute(f"SELECT COUNT(*) FROM (SELECT 1 FROM {_journal(network)} WHERE change_seq = %s "
                    "AND undone_by = 0 LIMIT %s) r", (seq, at_most))
        return int(cur.fetchone()[0])


def undo(conn: Any, network: Network, job_id: Any, *, dry_run: bool = False,
         trigger: str = "api", rows_per_chunk: int = 50_000, change: Change | None = None,
         from_user: int = 0, max_ranges: int | None = None) -> UndoOutcome:
    """Put back the rows change ``job_id`` wrote, user-id range by user-id range, each range in
    one transaction under the lock of its users' buckets (the locks every sync takes).
    A queued undo passes its own ``change`` and does ``max_ranges`` ranges per message, starting
    at ``from_user``; ``outcome.next_user`` says where the next message starts."""
    job_id, seq = _require_change(conn, network, job_id)
    change = None if dry_run else (change or Change.undoing(job_id, trigger))
    outcome = UndoOutcome(job_id=change.job_id if change else None, undo_of=job_id, dry_run=dry_run)
    done = 0
    while (found := _next_range(conn, network, seq, from_user, rows_per_chunk)) is not None:
        if max_ranges is not None and done == max_ranges:
            outcome.next_user = from_user
            break
        lo, hi = found

        def undo_range(cur: Any, lo: int = lo, hi: int = hi) -> UndoOutcome:
            part = UndoOutcome(job_id=outcome.job_id, undo_of=job_id, dry_run=dry_run,
                               skipped=list(outcome.skipped))  # the sample of conflicts continues
            _undo_range(cur, network, seq, lo, hi, change, part)
            if dry_run:
                conn.rollback()  # nothing of a preview stays (only temporary tables were written)
            return part

        outcome.merge(db.write_users(conn, network.config, lo, hi, undo_range))
        done += 1
        from_user = hi + 1
    if change is not None and outcome.next_user is None:
        with conn.cursor() as cur:
            cur.execute(f"UPDATE {_changes(network)} SET undone_by = %s, undone_at = NOW(6) WHERE job_id = %s",
                        (change.job_id, job_id))
        if not outcome.restored:
            outcome.job_id = None  # nothing was written: there is nothing to undo in turn
    return outcome


def _require_change(conn: Any, network: Network, job_id: Any) -> tuple[str, int]:
    """(job id, change number) of a known change of this network that is not still running."""
    job_id = inputs.job_id(job_id)
    ensure_tables(conn, network)
    with conn.cursor() as cur:
        cur.execute(f"SELECT seq FROM {_changes(network)} WHERE job_id = %s AND network_id = %s",
                    (job_id, network.config.network_id))
        row = cur.fetchone()
        if row is None:
            raise NotFound(f"no journaled change {job_id}: it wrote nothing, or the journal was pruned")
    from . import jobs  # jobs imports memberships, which imports this module

    if any(other == job_id for other, _ in jobs.active_jobs(conn, network)):
        raise Conflict(f"job {job_id} is still running; undo it once it has finished")
    return job_id, int(row[0])


def _next_range(conn: Any, network: Network, seq: int, from_user: int,
                per_chunk: int) -> tuple[int, int] | None:
    """The next user-id range of the change from ``from_user`` on, on lock-bucket boundaries,
    holding about ``per_chunk`` journal rows. Two short reads of the (change_seq, user_id) index,
    however big the change: a queued undo never rescans what it has done."""
    width = db.LOCK_BUCKET
    journal = _journal(network)
    with conn.cursor() as cur:
        # ORDER BY ... LIMIT 1, not MIN(): undone_by is not in the index, and MIN() read every
        # row left to check it (a quadratic undo at a million rows); this stops at the first.
        cur.execute(f"SELECT user_id FROM {journal} WHERE change_seq = %s AND user_id >= %s "
                    "AND undone_by = 0 ORDER BY user_id LIMIT 1", (seq, from_user))
        found = cur.fetchone()
        if found is None:
            return None
        (first,) = found
        lo = int(first) // width * width
        cur.execute(f"SELECT user_id FROM {journal} WHERE change_seq = %s AND user_id >= %s "
                    "ORDER BY user_id LIMIT 1 OFFSET %s", (seq, lo, max(0, per_chunk - 1)))
        row = cur.fetchone()
        if row is None:  # fewer rows than a chunk are left: up to the change's last user
            cur.execute(f"SELECT MAX(user_id) FROM {journal} WHERE change_seq = %s", (seq,))
            row = cur.fetchone()
    return lo, int(row[0]) // width * width + width - 1


def _undo_range(cur: Any, network: Network, seq: int, lo: int, hi: int, change: Change | None,
                outcome: UndoOutcome) -> None:
    """One range: load the change's rows (first old value, last new value per row), mark the
    memberships that changed since, put the rest back, journal it. About a dozen statements,
    whatever the number of rows."""
    um, users, journal = network.tables.usermeta, network.tables.users, _journal(network)
    # Dropped and made again, empty: faster than deleting their rows, and (unlike TRUNCATE, which
    # commits) it leaves this range's transaction open.
    for table in (IDS, LAST, UNDO, BAD):
        cur.execute(f"DROP TEMPORARY TABLE IF EXISTS {table}")
    cur.execute(f"CREATE TEMPORARY TABLE {UNDO} (id BIGINT UNSIGNED NOT NULL PRIMARY KEY, "
                "tbl TINYINT UNSIGNED NOT NULL, row_id BIGINT UNSIGNED NOT NULL, user_id BIGINT UNSIGNED NOT NULL, "
                f"blog_id BIGINT NOT NULL, meta_key VARCHAR(255) COLLATE {network.meta_key_collation} NOT NULL, "
                "old_value LONGTEXT NULL, new_value LONGTEXT NULL, ok TINYINT NOT NULL DEFAULT 1, reason VARCHAR(120) NULL, "
                "KEY row_ (tbl, blog_id, row_id), KEY owner (user_id, blog_id)) "
                "DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_520_ci")
    for table in (IDS, LAST):
        cur.execute(f"CREATE TEMPORARY TABLE {table} (id BIGINT UNSIGNED NOT NULL PRIMARY KEY, "
                    "tbl TINYINT UNSIGNED NOT NULL, blog_id BIGINT NOT NULL, row_id BIGINT UNSIGNED NOT NULL, "
                    "KEY row_ (tbl, blog_id, row_id)) DEFAULT CHARSET=utf8mb4 "
                    "COLLATE=utf8mb4_unicode_520_ci")
    cur.execute(f"CREATE TEMPORARY TABLE {BAD} (user_id BIGINT UNSIGNED NOT NULL, "
                "blog_id BIGINT NOT NULL, PRIMARY KEY (user_id, blog_id))")
    # The range's journal rows, read once through (change_seq, user_id); all else goes by id.
    cur.execute(f"INSERT INTO {IDS} SELECT id, tbl, blog_id, row_id FROM {journal} WHERE change_seq = %s "
                "AND user_id BETWEEN %s AND %s AND undone_by = 0", (seq, lo, hi))
    # One entry per row (options rows of different sites can share an id: the site is part of
    # the name), with the value before the change's first write to it...
    cur.execute(
        f"INSERT INTO {UNDO} (id, tbl, row_id, user_id, blog_id, meta_key, old_value, new_value) "
        f"SELECT j.id, j.tbl, j.row_id, j.user_id, j.blog_id, j.meta_key, j.old_value, j.new_value "
        f"FROM (SELECT MIN(id) AS id FROM {IDS} GROUP BY tbl, blog_id, row_id) first "
        f"STRAIGHT_JOIN {journal} j ON j.id = first.id")
    # ... and the value after its last write (a row written twice by one change: rare).
    chains = cur.execute(f"INSERT INTO {LAST} SELECT MAX(id), tbl, blog_id, row_id FROM {IDS} "
                         "GROUP BY tbl, blog_id, row_id HAVING COUNT(*) > 1")
    if chains:
        cur.execute(f"UPDATE {UNDO} u JOIN {LAST} l ON l.tbl = u.tbl AND l.blog_id = u.blog_id AND l.row_id = u.row_id "
                    f"STRAIGHT_JOIN {journal} j ON j.id = l.id SET u.new_value = j.new_value")
    # Conflicts: a row we added or changed no longer holds what we wrote...
    cur.execute(
        f"UPDATE {UNDO} u LEFT JOIN {um} m ON m.umeta_id = u.row_id SET u.ok = 0, "
        "u.reason = 'changed since this change' WHERE u.tbl = %s AND u.new_value IS NOT NULL AND "
        "(m.umeta_id IS NULL OR m.user_id <> u.user_id "
        "OR CAST(m.meta_key AS BINARY) <> CAST(u.meta_key AS BINARY) OR NOT (CAST(m.meta_value AS BINARY) <=> CAST(u.new_value AS BINARY)))", (USERMETA,))
    # ... a row we removed has come back (another row of the key made after it, or its id taken),
    # or its user is gone. (A row of the key older than the removed one was there beside it: the
    # repair of a duplicate keeps the lowest id.) Checked only when the range has such rows (a
    # sync's undo has none: it only deletes).
    cur.execute(f"SELECT COALESCE(SUM(tbl = %s AND new_value IS NULL AND old_value IS NOT NULL), 0), "
                f"COALESCE(SUM(tbl = %s AND old_value IS NOT NULL), 0) FROM {UNDO}", (USERMETA, USERMETA))
    removed_rows, old_rows = (int(n) for n in cur.fetchone())
    if removed_rows:
        cur.execute(
            f"UPDATE {UNDO} u STRAIGHT_JOIN {network.tables.usermeta_by_user('m')} ON m.user_id = u.user_id "
            "AND m.meta_key = u.meta_key "
            "SET u.ok = 0, u.reason = 'added again since this change' WHERE u.tbl = %s AND u.new_value IS NULL "
            "AND u.old_value IS NOT NULL AND m.umeta_id > u.row_id", (USERMETA,))
        cur.execute(
            f"UPDATE {UNDO} u STRAIGHT_JOIN {um} m ON m.umeta_id = u.row_id SET u.ok = 0, "
            "u.reason = 'added again since this change' WHERE u.tbl = %s AND u.new_value IS NULL "
            "AND u.old_value IS NOT NULL", (USERMETA,))
    if old_rows:
        cur.execute(
            f"UPDATE {UNDO} u LEFT JOIN {users} x ON x.ID = u.user_id SET u.ok = 0, u.reason = 'user deleted since' "
            "WHERE u.tbl = %s AND x.ID IS NULL AND u.old_value IS NOT NULL", (USERMETA,))
    cur.execute(f"SELECT DISTINCT blog_id FROM {UNDO} WHERE tbl = %s", (OPTIONS,))
    option_blogs = sorted(int(r[0]) for r in cur.fetchall())
    for blog_id in option_blogs:
        cur.execute(
            f"UPDATE {UNDO} u LEFT JOIN {network.tables.options(blog_id)} o ON o.option_id = u.row_id "
            "SET u.ok = 0, u.reason = 'changed since this change' WHERE u.tbl = %s AND u.blog_id = %s AND "
            "(o.option_id IS NULL OR u.new_value IS NULL OR u.old_value IS NULL "
            "OR NOT (CAST(o.option_value AS BINARY) <=> CAST(u.new_value AS BINARY)))", (OPTIONS, blog_id))
    # A membership is its rows together: one conflicting row keeps all of them as they are.
    cur.execute(f"INSERT IGNORE INTO {BAD} SELECT user_id, blog_id FROM {UNDO} WHERE ok = 0")
    cur.execute(f"UPDATE {UNDO} u JOIN {BAD} b ON b.user_id = u.user_id AND b.blog_id = u.blog_id "
                "SET u.ok = 0, u.reason = COALESCE(u.reason, 'another row of this membership changed since')")
    _count(cur, outcome)
    if change is None:
        return
    undo_seq = open_change(cur, network, change)
    record_select(cur, network, change, f"tbl, row_id, user_id, blog_id, meta_key, new_value, old_value FROM {UNDO} "
                  "WHERE ok = 1 AND NOT (old_value IS NULL AND new_value IS NULL)")
    # STRAIGHT_JOIN: driven by the few rows to put back, so only they are locked (never a scan of
    # usermeta, which would wait on other writers' rows).
    cur.execute(f"DELETE m FROM {UNDO} u STRAIGHT_JOIN {um} m ON m.umeta_id = u.row_id WHERE u.tbl = %s "
                "AND u.ok = 1 AND u.old_value IS NULL AND u.new_value IS NOT NULL", (USERMETA,))
    cur.execute(f"UPDATE {UNDO} u STRAIGHT_JOIN {um} m ON m.umeta_id = u.row_id SET m.meta_value = u.old_value "
                "WHERE u.tbl = %s AND u.ok = 1 AND u.old_value IS NOT NULL AND u.new_value IS NOT NULL", (USERMETA,))
    cur.execute(f"INSERT INTO {um} (umeta_id, user_id, meta_key, meta_value) SELECT row_id, user_id, meta_key, "
                f"old_value FROM {UNDO} WHERE tbl = %s AND ok = 1 AND new_value IS NULL AND old_value IS NOT NULL "
                "ORDER BY row_id", (USERMETA,))
    for blog_id in option_blogs:
        cur.execute(f"UPDATE {UNDO} u STRAIGHT_JOIN {network.tables.options(blog_id)} o ON o.option_id = u.row_id "
                    "SET o.option_value = u.old_value WHERE u.tbl = %s AND u.blog_id = %s AND u.ok = 1",
                    (OPTIONS, blog_id))
    # Mark what was put back (undone_by is NOT NULL DEFAULT 0: updated in place, the row keeps
    # its size): the rows loaded, and, for rows the change wrote twice, their other entries.
    cur.execute(f"UPDATE {UNDO} u STRAIGHT_JOIN {journal} j ON j.id = u.id SET j.undone_by = %s WHERE u.ok = 1",
                (undo_seq,))
    if chains:
        cur.execute(f"UPDATE {LAST} l JOIN {UNDO} u ON u.tbl = l.tbl AND u.blog_id = l.blog_id AND u.row_id = l.row_id "
                    f"JOIN {IDS} i ON i.tbl = l.tbl AND i.blog_id = l.blog_id AND i.row_id = l.row_id "
                    f"STRAIGHT_JOIN {journal} j ON j.id = i.id SET j.undone_by = %s WHERE u.ok = 1", (undo_seq,))


def _count(cur: Any, outcome: UndoOutcome) -> None:
    cur.execute(f"SELECT tbl, blog_id, user_id, ok, COUNT(*) FROM {UNDO} "
                "WHERE NOT (old_value IS NULL AND new_value IS NULL) GROUP BY tbl, blog_id, user_id, ok")
    for tbl, blog_id, user_id, ok, n in cur.fetchall():
        blog_id, user_id, n = int(blog_id), int(user_id), int(n)
        if not ok:
            outcome.conflicts += n
            continue
        outcome.restored += n
        entry = outcome.sites.setdefault(blog_id, {"rows_restored": 0})
        entry["rows_restored"] += n
        if tbl == OPTIONS:
            outcome.touched_roles.add(blog_id)
        else:
            outcome.touched_users.add(user_id)
        if blog_id:
            outcome.touched_sites.add(blog_id)
    room = SAMPLE - len(outcome.skipped)
    if room > 0:
        cur.execute(f"SELECT user_id, blog_id, MIN(reason) FROM {UNDO} WHERE ok = 0 GROUP BY user_id, blog_id "
                    "ORDER BY user_id, blog_id LIMIT %s", (room,))
        outcome.skipped += [{"user_id": int(u) or None, "blog_id": int(b) or None, "reason": r}
                            for u, b, r in cur.fetchall()]
