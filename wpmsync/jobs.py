"""Jobs: a sync cut into batches that a queue runs, and the status anyone can read.

Tables of our own (``{prefix}wpmsync_*``), created on first use and dropped by ``uninstall``:

- ``jobs``: one row per job (kind, sites, force, state queued / running / failed, times);
- ``job_batches``: one row per batch (the job's sites × one user-id range). A batch's outcome is
  written by ``record`` inside the batch's own transaction, and only while the row is still
  pending, so a redelivered queue message changes nothing and is counted once;
- ``events``: hook event ids already handled (a replay gets the first answer back);
- ``leases``: named locks with an expiry, for work that spans many connections (the timer).

A job's ``done`` state is derived from its batches (all done), so no row is updated by every
batch: parallel batches never queue up on one job row.

A queue message runs only while its job may still run: a message of a job that is unknown
(never made here, or uninstalled since), failed, undone or finished is dropped (``Dropped``),
checked before the work and again inside the batch's transaction, so a late retry of a failed
job never writes after that job was undone.
"""
from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any, Iterable, Iterator

from . import db, journal, watermarks
from . import outbox as outbox_table
from .db import named_locks, transaction
from .errors import Conflict, NotFound, QueueUnreachable
from .journal import Change, UndoOutcome
from .memberships import Batch, Outcome, preview
from .schema import Network

# Previews too large for one HTTP request, run by the queue like syncs: a plan (what a sync
# would add, batch by batch) and an undo preview (range by range). They write nothing of
# WordPress's, so they neither wait for a sync of their sites nor hold one back.
PLAN, UNDO_PREVIEW = "plan", "undo_preview"
PREVIEW_KINDS = (PLAN, UNDO_PREVIEW)
STALE_MINUTES = 60  # a job with no batch finished for this long no longer blocks new ones
SKIPPED_KEPT = 50   # per batch: the first skip reasons are kept, the rest counted

DDL = [
    """CREATE TABLE IF NOT EXISTS {jobs} (
        id CHAR(32) NOT NULL PRIMARY KEY,
        network_id BIGINT NOT NULL,
        kind VARCHAR(32) NOT NULL,
        state VARCHAR(16) NOT NULL,
        blog_ids LONGTEXT NOT NULL,
        force_add TINYINT NOT NULL DEFAULT 0,
        trigger_info VARCHAR(255) NULL,
        result LONGTEXT NULL,
        error TEXT NULL,
        created_at DATETIME(6) NOT NULL,
        started_at DATETIME(6) NULL,
        finished_at DATETIME(6) NULL,
        KEY network_state (network_id, state)
    ) DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_520_ci""",
    """CREATE TABLE IF NOT EXISTS {batches} (
        job_id CHAR(32) NOT NULL,
        seq INT NOT NULL,
        first_user BIGINT UNSIGNED NOT NULL,
        last_user BIGINT UNSIGNED NOT NULL,
        state VARCHAR(16) NOT NULL DEFAULT 'pending',
        attempts INT NOT NULL DEFAULT 0,
        added INT NOT NULL DEFAULT 0,
        skipped_count INT NOT NULL DEFAULT 0,
        skipped LONGTEXT NULL,
        error TEXT NULL,
        finished_at DATETIME(6) NULL,
        PRIMARY KEY (job_id, seq),
        KEY job_state (job_id, state)
    ) DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_520_ci""",
    # ascii_bin, as the mu-plugin's outbox has it: an event id is compared byte for byte, so no
    # id replays another that differs in case only (ids are lowercase: inputs.event_id).
    """CREATE TABLE IF NOT EXISTS {events} (
        event_id VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL PRIMARY KEY,
        event VARCHAR(32) NOT NULL,
        received_at DATETIME(6) NOT NULL,
        answer LONGTEXT NULL,
        KEY received (received_at)
    ) DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_520_ci""",
    """CREATE TABLE IF NOT EXISTS {leases} (
        name VARCHAR(64) NOT NULL PRIMARY KEY,
        holder VARCHAR(64) NOT NULL,
        expires_at DATETIME(6) NOT NULL
    ) DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_520_ci""",
]


def ensure_tables(conn: Any, network: Network) -> None:
    """All our tables (these, the outbox's, the journal's, the watermarks') exist for this connection: one
    statement reading no row checks them, once per connection (not once per process: an
    ``uninstall`` run by another process drops them under this one), and they are created only
    when one is missing."""
    t = network.tables
    names = {"jobs": t.own_table("jobs"), "batches": t.own_table("job_batches"),
             "events": t.own_table("events"), "leases": t.own_table("leases")}

    def create(cur: Any) -> None:
        for ddl in DDL:
            cur.execute(ddl.format(**names))
        outbox_table.ensure_table(cur, network)
        journal.create_tables(cur, network)
        watermarks.create_tables(cur, network)  # batches note their own rows there

    db.ensure_own_tables(conn, [*names.values(), outbox_table.table(network), *journal.own_tables(network),
                                watermarks.table(network), watermarks.own_rows_table(network)], create)


def forget_tables() -> None:
    """After uninstall: the next use checks (and makes) the tables again."""
    db.forget_own_tables()


class Dropped(Exception):
    """A queue message that must not run: its job is unknown, failed, undone or finished.
    Not an error to retry (a retry would find the same): the queue function logs it once and
    acknowledges the message, so it never reaches the poison queue."""


@dataclass
class Job:
    id: str
    kind: str
    blog_ids: list[int]
    force: bool
    batches_total: int


# ---------------------------------------------------------------- creating a job

def create(conn: Any, network: Network, kind: str, blog_ids: list[int], ranges: list[tuple[int, int]],
           *, force: bool = False, trigger: str | None = None, result: dict | None = None) -> Job:
    """A queued job with its batch rows; refused (409) while another job syncs any of the sites."""
    ensure_tables(conn, network)
    t = network.tables
    job = Job(uuid.uuid4().hex, kind, sorted(blog_ids), force, len(ranges) if blog_ids else 0)
    with named_locks(conn, network.config, ["jobs"]):
        busy = [] if kind in PREVIEW_KINDS else active_jobs(conn, network, job.blog_ids)
        if busy:
            other, sites = busy[0]
            raise Conflict(f"job {other} is still syncing site(s) {', '.join(map(str, sites[:10]))}; "
                           "wait for it to finish (GET its status) or let it go stale")
        with transaction(conn) as cur:
            cur.execute(
                f"INSERT INTO {t.own_table('jobs')} (id, network_id, kind, state, blog_ids, force_add, "
                "trigger_info, result, created_at) VALUES (%s, %s, %s, 'queued', %s, %s, %s, %s, NOW(6))",
                (job.id, network.config.network_id, kind, json.dumps(job.blog_ids), int(force),
                 trigger, json.dumps(result) if result is not None else None),
            )
            # registered now, so parallel batches journal without waiting (a preview writes none)
            if blog_ids and ranges and kind not in PREVIEW_KINDS:
                journal.open_change(cur, network, Change(job.id, f"{kind} ({trigger or 'api'})"))
            rows = [(job.id, seq, lo, hi) for seq, (lo, hi) in enumerate(ranges)] if blog_ids else []
            for start in range(0, len(rows), 500):
                chunk = rows[start:start + 500]
                cur.execute(
                    f"INSERT INTO {t.own_table('job_batches')} (job_id, seq, first_user, last_user) "
                    f"VALUES {', '.join(['(%s, %s, %s, %s)'] * len(chunk))}",
                    [x for row in chunk for x in row],
                )
    return job


def active_jobs(conn: Any, network: Network, blog_ids: Iterable[int] | None = None) -> list[tuple[str, list[int]]]:
    """Jobs of this network still queued or with pending batches, and recently active,
    that touch any of ``blog_ids`` (all, when None): (job id, overlapping sites)."""
    ensure_tables(conn, network)
    t = network.tables
    with conn.cursor() as cur:
        cur.execute(
            f"SELECT j.id, j.blog_ids FROM {t.own_table('jobs')} j WHERE j.network_id = %s "
            f"AND j.kind NOT IN ({', '.join(['%s'] * len(PREVIEW_KINDS))}) "
            "AND j.state IN ('queued', 'running') AND (j.state = 'queued' OR EXISTS (SELECT 1 FROM "
            f"{t.own_table('job_batches')} b WHERE b.job_id = j.id AND b.state = 'pending')) "
            "AND GREATEST(j.created_at, COALESCE(j.started_at, j.created_at), COALESCE((SELECT MAX(b.finished_at) "
            f"FROM {t.own_table('job_batches')} b WHERE b.job_id = j.id), j.created_at)) "
            "> NOW(6) - INTERVAL %s MINUTE ORDER BY j.created_at",
            (network.config.network_id, *PREVIEW_KINDS, STALE_MINUTES),
        )
        rows = cur.fetchall()
    wanted = None if blog_ids is None else set(blog_ids)
    busy = []
    for job_id, raw in rows:
        sites = json.loads(raw)
        overlap = sites if wanted is None else sorted(wanted & set(sites))
        if overlap:
            busy.append((job_id, overlap))
    return busy


# ---------------------------------------------------------------- running it

def prepare_message(job_id: str) -> dict[str, Any]:
    return {"type": "prepare", "job": job_id}


def batch_messages(conn: Any, network: Network, job_id: str, lanes: int | None = None,
                   chunk: int = 1000) -> Iterator[list[dict]]:
    """The job's batch messages, a chunk at a time (memory stays flat for 50,000 batches). With
    ``lanes``, only the first pending batch of each lane (seq mod ``lanes``): each batch queues
    the next of its lane when it is done (``successor``)."""
    t = network.tables
    last = -1
    while True:
        with conn.cursor() as cur:
            if lanes:
                cur.execute(f"SELECT MIN(seq) FROM {t.own_table('job_batches')} WHERE job_id = %s AND "
                            "state = 'pending' GROUP BY seq MOD %s ORDER BY 1", (job_id, lanes))
            else:
                cur.execute(f"SELECT seq FROM {t.own_table('job_batches')} WHERE job_id = %s AND seq > %s "
                            "AND state = 'pending' ORDER BY seq LIMIT %s", (job_id, last, chunk))
            seqs = [int(r[0]) for r in cur.fetchall()]
        if not seqs:
            return
        last = seqs[-1]
        yield [batch_message(job_id, s, lanes) for s in seqs]
        if lanes:
            return


def batch_message(job_id: str, seq: int, lanes: int | None = None) -> dict[str, Any]:
    message: dict[str, Any] = {"type": "batch", "job": job_id, "seq": seq}
    if lanes:
        message["lanes"] = lanes
    return message


def successor(conn: Any, network: Network, job_id: str, seq: int, lanes: int) -> dict[str, Any] | None:
    """The message of the next pending batch in the lane of batch ``seq`` (same seq mod
    ``lanes``), or None when the lane is done (or the job may no longer run: its messages would
    be dropped anyway)."""
    t = network.tables
    with conn.cursor() as cur:
        if stopped(cur, network, job_id) is not None:
            return None
        cur.execute(f"SELECT MIN(seq) FROM {t.own_table('job_batches')} WHERE job_id = %s AND seq > %s "
                    "AND seq MOD %s = %s AND state = 'pending'", (job_id, seq, lanes, seq % lanes))
        (following,) = cur.fetchone()
    return None if following is None else batch_message(job_id, int(following), lanes)


def load(conn: Any, network: Network, job_id: str) -> dict[str, Any]:
    ensure_tables(conn, network)
    with conn.cursor(dict_cursor()) as cur:
        cur.execute(f"SELECT * FROM {network.tables.own_table('jobs')} WHERE id = %s AND network_id = %s",
                    (job_id, network.config.network_id))
        row = cur.fetchone()
    if row is None:
        raise NotFound(f"job {job_id} does not exist")
    row["blog_ids"] = json.loads(row["blog_ids"])
    return row


def stopped(cur: Any, network: Network, job_id: str, seq: int | None = None, *,
            settled_too: bool = False, lock: bool = False) -> str | None:
    """Why a message of this job (and batch) must not run, or None while it may: the job is
    unknown, undone, failed or finished, or has no such batch. With ``settled_too``, also when
    the work is settled already: the batch is no longer pending, or (no batch named) no batch
    of the job is (a copy of a message already handled). One read through primary keys and the
    ``job_state`` index (EXISTS stops at the first row, however many batches); inside a batch's
    transaction it sees what ``fail`` or an undo committed meanwhile (READ COMMITTED), and with
    ``lock`` holds the job's and its journal's rows (share mode) until that transaction ends."""
    t = network.tables
    batches = t.own_table("job_batches")
    batch_sql, params = "NULL", [job_id, network.config.network_id]
    if seq is not None:
        batch_sql = f"(SELECT b.state FROM {batches} b WHERE b.job_id = j.id AND b.seq = %s)"
        params.insert(0, seq)
    cur.execute(f"SELECT j.state, j.finished_at IS NOT NULL, c.undone_by, "
                f"EXISTS (SELECT 1 FROM {batches} b WHERE b.job_id = j.id AND b.state = 'pending'), {batch_sql} "
                f"FROM {t.own_table('jobs')} j LEFT JOIN {t.own_table('changes')} c ON c.job_id = j.id "
                "WHERE j.id = %s AND j.network_id = %s" + (" LOCK IN SHARE MODE" if lock else ""), params)
    row = cur.fetchone()
    if row is None:
        return f"job {job_id} does not exist (never made on this network, or uninstalled since)"
    state, finished, undone_by, has_pending, batch_state = row
    if undone_by:
        return f"job {job_id} was undone (by {undone_by})"
    if state == "failed":
        return f"job {job_id} has failed"
    if finished:
        return f"job {job_id} has finished"
    if seq is not None and batch_state is None:
        return f"job {job_id} has no batch {seq}"
    if settled_too and seq is not None and batch_state != "pending":
        return f"batch {seq} of job {job_id} is {batch_state} already"
    if settled_too and seq is None and not has_pending:
        return f"job {job_id} has no batch left to run"
    return None


def mark_running(conn: Any, network: Network, job_id: str) -> None:
    with conn.cursor() as cur:
        cur.execute(f"UPDATE {network.tables.own_table('jobs')} SET state = 'running', started_at = NOW(6) "
                    "WHERE id = %s AND state = 'queued'", (job_id,))


def batch_of(conn: Any, network: Network, job_id: str, seq: int) -> tuple[Batch, str, str] | None:
    """The batch a message names, its state and its job's kind; None when the job is gone
    (uninstalled)."""
    ensure_tables(conn, network)
    t = network.tables
    with conn.cursor() as cur:
        cur.execute(
            f"SELECT j.blog_ids, b.first_user, b.last_user, b.state, j.force_add, j.kind FROM {t.own_table('job_batches')} b "
            f"JOIN {t.own_table('jobs')} j ON j.id = b.job_id WHERE b.job_id = %s AND b.seq = %s",
            (job_id, seq),
        )
        row = cur.fetchone()
    if row is None:
        return None
    blog_ids, lo, hi, state, force, kind = row
    return Batch(tuple(json.loads(blog_ids)), int(lo), int(hi), bool(force)), state, kind


def recorder(network: Network, job_id: str, seq: int):
    """``record`` for ``Engine.run_batch``: in each step's own transaction, add the step's
    outcome to the batch row and move its ``first_user`` to where the next step starts (a
    redelivered message resumes there), or, after the last step, mark the batch done. The row
    must still be pending and start where this step did: otherwise another copy of the message
    got there first, and ``Dropped`` rolls this step back. Then it checks there, holding the
    job's row and its journal row in share mode until the commit, that the job may still run (it
    may have failed, or been undone, since the batch began): if not, ``Dropped`` rolls the step
    back, and nothing of it is written. A ``fail`` or an undo that commits later waits for this
    commit. (The batch row first, then the job's: the order ``fail`` takes them in, so the two
    never deadlock.)"""
    table = network.tables.own_table("job_batches")

    def record(cur: Any, outcome: Outcome, first_user: int, next_user: int | None) -> None:
        changed = cur.execute(
            f"UPDATE {table} SET first_user = COALESCE(%s, first_user), "
            "state = IF(%s IS NULL, 'done', state), attempts = attempts + (%s IS NULL), "
            "added = added + %s, skipped_count = skipped_count + %s, skipped = COALESCE(skipped, %s), "
            "finished_at = IF(%s IS NULL, NOW(6), finished_at) "
            "WHERE job_id = %s AND seq = %s AND state = 'pending' AND first_user = %s",
            (next_user, next_user, next_user, outcome.added, len(outcome.skipped),
             json.dumps(outcome.skipped[:SKIPPED_KEPT]) if outcome.skipped else None, next_user,
             job_id, seq, first_user),
        )
        if not changed:
            raise Dropped(f"batch {seq} of job {job_id} moved on without this copy of its message")
        reason = stopped(cur, network, job_id, seq, lock=True)
        if reason is not None:
            raise Dropped(reason)
    return record


def record_attempt_error(conn: Any, network: Network, job_id: str, seq: int, error: str) -> None:
    """A failed try: counted and kept; the queue will try again."""
    with conn.cursor() as cur:
        cur.execute(f"UPDATE {network.tables.own_table('job_batches')} SET attempts = attempts + 1, "
                    "error = %s WHERE job_id = %s AND seq = %s AND state = 'pending'",
                    (error[:2000], job_id, seq))


def fail(conn: Any, network: Network, job_id: str, seq: int | None, reason: str) -> None:
    """The job ends failed, with the reason, and the batch ``seq`` (if given) with it: the queue
    gave up on its message (``fail_message``), or the job's first message could not be queued."""
    ensure_tables(conn, network)
    t = network.tables
    with transaction(conn) as cur:
        if seq is not None:
            cur.execute(f"UPDATE {t.own_table('job_batches')} SET state = 'failed', "
                        "error = CONCAT_WS(': ', %s, error), finished_at = NOW(6) "
                        "WHERE job_id = %s AND seq = %s AND state = 'pending'", (reason[:500], job_id, seq))
        cur.execute(f"UPDATE {t.own_table('jobs')} SET state = 'failed', error = COALESCE(error, %s), "
                    "finished_at = COALESCE(finished_at, NOW(6)) WHERE id = %s", (reason[:2000], job_id))


def fail_message(engine: Any, job_id: str, seq: int | None, reason: str) -> None:
    """The host gave up on a message (the poison queue): its batch and job end failed, with the
    reason. A message that no longer concerns a running batch (``stopped``: its job unknown,
    failed, undone or finished, its batch done) raises ``Dropped`` and marks nothing: a stale
    copy must not fail a job that is running or finished well."""
    ensure_tables(engine.conn, engine.network)
    with engine.conn.cursor() as cur:
        why = stopped(cur, engine.network, job_id, seq, settled_too=True)
    if why is not None:
        raise Dropped(why)
    fail(engine.conn, engine.network, job_id, seq, reason)


# ---------------------------------------------------------------- status

def status(conn: Any, network: Network, job_id: str) -> dict[str, Any]:
    """State, batches done/total, memberships added, skips and errors, times."""
    job = load(conn, network, job_id)
    t = network.tables
    with conn.cursor() as cur:
        cur.execute(
            f"SELECT COUNT(*), COALESCE(SUM(state = 'done'), 0), COALESCE(SUM(state = 'failed'), 0), "
            f"COALESCE(SUM(added), 0), COALESCE(SUM(skipped_count), 0), MAX(finished_at) "
            f"FROM {t.own_table('job_batches')} WHERE job_id = %s", (job_id,))
        total, done, failed, added, skipped_count, last_finished = cur.fetchone()
        cur.execute(f"SELECT skipped FROM {t.own_table('job_batches')} WHERE job_id = %s AND skipped IS NOT NULL "
                    "ORDER BY seq LIMIT 20", (job_id,))
        skipped: list[dict] = []
        for (raw,) in cur.fetchall():
            skipped.extend(s for s in json.loads(raw) if s not in skipped)
        cur.execute(f"SELECT seq, first_user, last_user, state, attempts, error FROM "
                    f"{t.own_table('job_batches')} WHERE job_id = %s AND error IS NOT NULL ORDER BY seq LIMIT 20",
                    (job_id,))
        errors = [{"batch": int(seq), "first_user": int(lo), "last_user": int(hi),
                   "state": st, "attempts": int(n), "error": e} for seq, lo, hi, st, n, e in cur.fetchall()]
    state = job["state"]
    if state != "failed" and int(failed):
        state = "failed"
    elif state == "running" and int(done) == int(total):
        state = "done"
    finished = job["finished_at"] or (last_finished if state == "done" else None)
    return {
        "job_id": job_id, "kind": job["kind"], "state": state, "blog_ids": job["blog_ids"],
        "force": bool(job["force_add"]), "trigger": job["trigger_info"],
        "batches": {"done": int(done), "failed": int(failed), "total": int(total)},
        "memberships_added": int(added), "roles_set": 0,
        "skipped": {"count": int(skipped_count), "first": skipped[:SKIPPED_KEPT]},
        "errors": ([{"job": job["error"]}] if job["error"] else []) + errors,
        "result": json.loads(job["result"]) if job["result"] else None,
        "created_at": _iso(job["created_at"]), "started_at": _iso(job["started_at"]),
        "finished_at": _iso(finished),
    }


def finish_inline(conn: Any, network: Network, job_id: str, error: str | None = None) -> None:
    """A job without batches (a reconcile that found nothing) ends here."""
    with conn.cursor() as cur:
        cur.execute(f"UPDATE {network.tables.own_table('jobs')} SET state = %s, error = %s, "
                    "started_at = COALESCE(started_at, NOW(6)), finished_at = NOW(6) WHERE id = %s",
                    ("failed" if error else "running", error, job_id))


# ---------------------------------------------------------------- leases

def acquire_lease(conn: Any, network: Network, name: str, holder: str, seconds: int) -> bool:
    """Take the lease ``name`` unless someone else holds it and it has not expired."""
    ensure_tables(conn, network)
    table = network.tables.own_table("leases")
    with transaction(conn) as cur:
        # The new values repeated as parameters: VALUES() here is deprecated in MySQL (1287) and
        # MariaDB has no row alias (INSERT ... AS new). Assignments run left to right: the
        # second sees the holder the first left.
        cur.execute(
            f"INSERT INTO {table} (name, holder, expires_at) VALUES (%s, %s, NOW(6) + INTERVAL %s SECOND) "
            "ON DUPLICATE KEY UPDATE holder = IF(expires_at < NOW(6) OR holder = %s, %s, holder), "
            "expires_at = IF(holder = %s, NOW(6) + INTERVAL %s SECOND, expires_at)",
            (name, holder, seconds, holder, holder, holder, seconds),
        )
        cur.execute(f"SELECT holder FROM {table} WHERE name = %s", (name,))
        return cur.fetchone()[0] == holder


def release_lease(conn: Any, network: Network, name: str, holder: str) -> None:
    with conn.cursor() as cur:
        cur.execute(f"DELETE FROM {network.tables.own_table('leases')} WHERE name = %s AND holder = %s",
                    (name, holder))


def dict_cursor() -> Any:
    import pymysql.cursors
    return pymysql.cursors.DictCursor


def _iso(value: Any) -> str | None:
    return value.isoformat() + "Z" if value is not None else None


# ---------------------------------------------------------------- the queue side

def start(engine: Any, kind: str, blog_ids: list[int], send: Any, *, force: bool = False,
          trigger: str | None = None, result: dict | None = None) -> Job:
    """Create a job for these (validated) sites and queue its first message. Every path that
    starts a job comes here (a manual sync, a site's sync, the site_created hook, the timer), so
    each one ends the same way when the queue cannot take the message: the job is failed on the
    spot (a job nobody will run must not hold its sites for ``STALE_MINUTES``) and
    ``QueueUnreachable`` (503: a hook's event is tried again) is raised to the caller."""
    ranges = engine.user_ranges(len(blog_ids))
    job = create(engine.conn, engine.network, kind, blog_ids, ranges, force=force, trigger=trigger,
                 result=result)
    try:
        send([prepare_message(job.id)])
    except Exception as exc:
        fail(engine.conn, engine.network, job.id, None, f"could not queue the job: {type(exc).__name__}")
        raise QueueUnreachable(f"job {job.id}: the queue refused its first message: {type(exc).__name__}: {exc}") from exc
    return job


def handle_prepare(engine: Any, job_id: str, send: Any) -> int:
    """Start the job's lanes: ``WPMSYNC_MAX_PARALLEL_BATCHES`` of them, one message each for the
    first pending batch of the lane; each batch queues the next of its lane when done
    (``successor``). So the queue holds about as many messages as may write at once, and the
    platform does not scale out instances that could only wait for a writer slot. Redelivered:
    the lanes start again, which is harmless (a batch already done is not run again, and
    batches are idempotent). A job that
    may no longer run (unknown, failed, undone, finished) raises ``Dropped``."""
    ensure_tables(engine.conn, engine.network)
    with engine.conn.cursor() as cur:
        reason = stopped(cur, engine.network, job_id)
    if reason is not None:
        raise Dropped(reason)
    sent = 0
    for chunk in batch_messages(engine.conn, engine.network, job_id, engine.config.max_parallel_batches):
        sent += send(chunk) or len(chunk)
    mark_running(engine.conn, engine.network, job_id)
    return sent


def handle_batch(engine: Any, job_id: str, seq: int,
                 notify: Any = lambda outcome: None) -> Outcome | None:
    """Run one batch of a job; its outcome is recorded in the batch's own transaction.
    A batch already done (a message delivered again) is not run again (None). A batch whose
    job may no longer run (``stopped``: unknown, failed, undone, finished) raises ``Dropped``,
    before the work or, when the job failed or was undone meanwhile, from inside the batch's
    transaction (rolled back). An error is noted on the batch and raised again, so the queue
    retries the message."""
    ensure_tables(engine.conn, engine.network)
    with engine.conn.cursor() as cur:
        reason = stopped(cur, engine.network, job_id, seq)
    if reason is not None:
        raise Dropped(reason)
    found = batch_of(engine.conn, engine.network, job_id, seq)
    if found is None or found[1] != "pending":
        return None
    batch, _, kind = found
    if kind == PLAN:
        return _plan_batch(engine, job_id, seq, batch)
    try:  # each step's commit is followed by WordPress's cache cleaning for its users
        return engine.run_batch(batch, record=recorder(engine.network, job_id, seq),
                                change=Change(job_id, "job"), after_step=notify)
    except Dropped:
        raise
    except Exception as exc:
        record_attempt_error(engine.conn, engine.network, job_id, seq, f"{type(exc).__name__}: {exc}")
        raise


# ---------------------------------------------------------------- previews through the queue

def start_plan(engine: Any, blog_ids: list[int], send: Any, *, force: bool = False,
               trigger: str | None = None) -> Job:
    """A plan of a sync too large for one request: a job of kind ``plan`` whose batches
    preview their user range each; the status's ``result.plan`` grows as they finish."""
    return start(engine, PLAN, blog_ids, send, force=force, trigger=trigger,
                 result={"plan": Outcome(dry_run=True).to_dict()})


def _plan_batch(engine: Any, job_id: str, seq: int, batch: Batch) -> Outcome | None:
    """One batch of a plan: what a sync of its range would add (``memberships.preview``),
    added to the job's ``result.plan`` in the same transaction that marks the batch done (the
    job's row locked, so parallel batches add up; a second copy finds the batch done)."""
    part = preview(engine.conn, engine.network, batch.blog_ids, [(batch.first_user, batch.last_user)],
                   force=batch.force)
    t = engine.network.tables
    with transaction(engine.conn) as cur:
        # (``added`` stays 0: a plan adds nothing; what it would add is in the result)
        if not cur.execute(f"UPDATE {t.own_table('job_batches')} SET state = 'done', attempts = attempts + 1, "
                           "finished_at = NOW(6) WHERE job_id = %s AND seq = %s AND state = 'pending'",
                           (job_id, seq)):
            return None
        cur.execute(f"SELECT result FROM {t.own_table('jobs')} WHERE id = %s FOR UPDATE", (job_id,))
        (raw,) = cur.fetchone()
        plan = Outcome.from_dict(json.loads(raw)["plan"]).merge(part)
        plan.skipped = plan.skipped[:SKIPPED_KEPT]
        cur.execute(f"UPDATE {t.own_table('jobs')} SET result = %s WHERE id = %s",
                    (json.dumps({"plan": plan.to_dict()}), job_id))
    return part


def start_undo_preview(engine: Any, of: str, send: Any, *, trigger: str | None = None) -> Job:
    """A preview of an undo too large for one request: a job of kind ``undo_preview`` whose
    queue messages preview one user-id range each (``handle_undo_preview``); the status's
    ``result.preview`` grows as they run."""
    empty = UndoOutcome(job_id=None, undo_of=of, dry_run=True).to_dict()
    job = create(engine.conn, engine.network, UNDO_PREVIEW, [], [], trigger=trigger,
                 result={"undo_of": of, "next_user": 0, "preview": empty})
    try:
        send([{"type": "undo_preview", "job": job.id, "of": of, "from_user": 0}])
    except Exception as exc:
        fail(engine.conn, engine.network, job.id, None, f"could not queue the job: {type(exc).__name__}")
        raise QueueUnreachable(f"job {job.id}: the queue refused its first message: {type(exc).__name__}: {exc}") from exc
    return job


def handle_undo_preview(engine: Any, job_id: str, of: str, from_user: int, send: Any) -> None:
    """One range of an undo preview, added to the job's result, then the message for the next
    range (or the job finishes). A step whose range is not the one the job waits for (a copy
    of a message already handled) adds nothing."""
    t = engine.network.tables
    with engine.conn.cursor() as cur:
        reason = stopped(cur, engine.network, job_id)
    if reason is not None:
        raise Dropped(reason)
    mark_running(engine.conn, engine.network, job_id)
    part = engine.undo(of, dry_run=True, from_user=from_user, max_ranges=1)
    with transaction(engine.conn) as cur:
        cur.execute(f"SELECT result FROM {t.own_table('jobs')} WHERE id = %s FOR UPDATE", (job_id,))
        result = json.loads(cur.fetchone()[0])
        if result["next_user"] != from_user:
            raise Dropped(f"undo preview {job_id}: the range from user {from_user} was previewed already")
        preview = UndoOutcome.from_dict(result["preview"])
        sample = preview.skipped
        preview.merge(part)
        preview.skipped = (sample + part.skipped)[:SKIPPED_KEPT]
        result.update(next_user=part.next_user, preview=preview.to_dict())
        cur.execute(f"UPDATE {t.own_table('jobs')} SET result = %s WHERE id = %s", (json.dumps(result), job_id))
    if part.next_user is None:
        finish_inline(engine.conn, engine.network, job_id)
    else:
        send([{"type": "undo_preview", "job": job_id, "of": of, "from_user": part.next_user}])
