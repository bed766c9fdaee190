"""The timer's reconcile: apply what WordPress could not deliver, repair memberships that
drifted, report role differences.

First, whatever the switches say, it drains the outbox (``delivery.drain``: WordPress's events
that no hook delivered, a removal among them) and reports, then prunes, events older than
``WPMSYNC_OUTBOX_DAYS``; users with events still waiting are left out of every sync until those
are applied (``outbox.users_waiting``), so a pass never adds back a user whose removal is on its
way. Then, with any trigger on, it repairs what WordPress's own races left on live sites
(``repair.py``: half memberships, duplicate rows; journaled, so undoable). Then:
with the new-user or new-site trigger on, a missed hook or a hand edit leaves users missing from
sites: the reconcile finds those sites and queues a job for them, as an automatic sync (removals
are respected). With role sync on, users whose roles differ across sites are reported, never
overwritten (``replication.role_differences``: only where role replication would have acted).
It never overlaps itself (a lease that expires if its holder dies) nor a sync job of this
network: one running when it begins, or one that starts while it scans, makes the pass skip
(``"status": "skipped"`` with the reason), never fail. Its job is started by ``jobs.start``,
like every other job: when the queue cannot take the job's first message the job ends failed at
once and the error is raised.

Two kinds of pass, so the 15-minute timer costs what changed, not the network:

- **incremental** (the default): from the marks of the last completed pass (``watermarks.py``)
  it looks only at the *changed users* (ids above the last highest ``users.ID``, and users with
  membership rows above the last highest ``umeta_id``, a range of usermeta's primary key) and at
  the *new sites* (live now, not live then: created, un-archived, un-spammed, un-deleted). The
  changed users are checked against every live site (the same ``_collect`` as a sync, over tight
  user-id ranges around them) and repaired (their own rows only); the new sites get their sync
  queued at once (the job reads every user for them, batch by batch, and writes only what is
  missing). A network in sync costs a constant few statements, whatever its size.
- **full** (``full=True``, the nightly timer; and whenever the marks cannot be trusted: none yet,
  the switches, options or super admins changed, the job the last pass queued failed, ids went
  back, too many users changed, or a full pass had to skip): every membership row, as before.
  It resets the marks and makes the role report, which the incremental passes repeat with its
  time (a role change updates a row in place, which no mark sees).

What an incremental pass cannot see (a row changed in place, a row deleted, a user un-spammed)
the hooks and the outbox deliver; the nightly full pass catches anything else. The marks advance
only when a pass completed, to what they were when it began: a crashed pass is repeated, and a
row written while it ran is seen by the next one.
"""
from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from . import (
    delivery,
    events,
    jobs,
    journal,
    memberships,
    outbox,
    repair,
    replication,
    watermarks,
)
from .engine import Engine
from .errors import Conflict, NotFound
from .journal import Change
from .memberships import Outcome
from .watermarks import Marks

LEASE = "reconcile"
LEASE_SECONDS = 600
MERGE_GAP = 64        # changed users fewer than this many ids apart are checked in one range ...
MAX_RANGES = 16       # ... and at most this many ranges (cut at the largest gaps), plus span cuts
MAX_CHANGED = 50_000  # more changed users than this: a full pass (Python holds at most this many ids)
log = logging.getLogger("wpmsync.reconcile")


def reconcile(engine: Engine, send: Callable[[list[dict]], Any] = lambda messages: len(messages),
              notify: Callable[[Any], Any] = lambda outcome: None, *, full: bool = False) -> dict[str, Any]:
    """One reconcile pass, incremental unless ``full`` (or the marks say a full one is due).
    Returns what it did, including the job it queued (if any), which pass it was, and the
    statements it sent. ``send`` queues messages (the pass's own job, a new site's job),
    ``notify`` cleans WordPress's cache."""
    conn, network = engine.conn, engine.network
    first_question = _questions(conn)
    # Manual actions journal too, so the journal is pruned whatever the switches say.
    journal.prune(conn, network, network.config.journal_days)
    # Removals and user_added have no switch: the outbox is drained whatever the switches say.
    delivered = {**delivery.drain(engine, send, notify),
                 **outbox.prune(conn, network, network.config.outbox_days)}
    if delivered["expired"]:
        log.error("reconcile: %d outbox events expired unapplied", delivered["expired"],
                  extra={"outbox": delivered})
    switches = engine.settings()
    if not any(switches.values()):
        return {"status": "skipped", "reason": "all triggers are off", "outbox": delivered}
    watermarks.ensure_table(conn, network)
    holder = uuid.uuid4().hex
    if not jobs.acquire_lease(conn, network, LEASE, holder, LEASE_SECONDS):
        if full:  # the 15-minute pass holds it (both timers fire at 02:30): the next pass is full
            watermarks.request_full(conn, network)
        return {"status": "skipped", "reason": "another reconcile is running"}
    try:
        busy = jobs.active_jobs(conn, network)
        if busy:
            if full:
                watermarks.request_full(conn, network)
            return {"status": "skipped", "reason": f"sync job {busy[0][0]} is running", "outbox": delivered}

        def renew() -> None:  # a long check keeps its lease; a dead holder's lease runs out
            if not jobs.acquire_lease(conn, network, LEASE, holder, LEASE_SECONDS):
                raise RuntimeError("reconcile lease lost to another holder")

        before = watermarks.read(conn, network)
        now = watermarks.snapshot(conn, network, watermarks.config_digest(network, switches))
        why = "asked for (the full timer)" if full else _why_full(conn, network, before, now)
        changed: list[int] | None = None
        if why is None and before is not None:
            changed = _changed_users(conn, network, before, now)
            if changed is None:
                why = f"more than {MAX_CHANGED} users changed since the last pass"
        findings: dict[str, Any] = {"switches": switches, "outbox": delivered}
        if changed is None or before is None:
            full_pass, drifted = True, _full_pass(engine, switches, findings, notify, renew, why or "")
        else:
            full_pass, drifted = False, _incremental_pass(engine, switches, findings, notify, renew, before, now,
                                                          changed)
        try:
            job = _record_job(engine, drifted, findings, send)
        except Conflict as exc:  # a sync job started while this pass was scanning
            if full_pass:
                watermarks.request_full(conn, network)
            return {"status": "skipped", "reason": f"a sync job started during the scan: {exc}", **findings}
        events.prune(conn, network)
        # The pass completed: the marks advance to what they were when it began.
        watermarks.save(conn, network, now, job.id if drifted else "",
                        full_pass_job=job.id if full_pass else None,
                        role_report=findings.get("role_differences") if full_pass else None)
        result = {"status": "queued" if drifted else "in_sync", "job_id": job.id, **findings}
        if first_question is not None:
            last = _questions(conn)
            result["statements"] = last - first_question - 1 if last is not None else None
        log.info("reconcile: %s", {"job": job.id, **findings, "statements": result.get("statements")})
        return result
    finally:
        jobs.release_lease(conn, network, LEASE, holder)


def _full_pass(engine: Engine, switches: dict[str, bool], findings: dict[str, Any],
               notify: Callable[[Any], Any], renew: Callable[[], None], why: str) -> list[int]:
    """Every membership row read: repairs on every live site, sites missing any user, the role
    report. Returns the sites missing members."""
    conn, network = engine.conn, engine.network
    findings.update({"pass": "full", "full_because": why})
    live = [s.blog_id for s in network.live_sites()]
    findings["repaired"], repaired_users = repair.repair(conn, network, live, Change.new("repair (timer)"),
                                                         each_chunk=renew)
    if findings["repaired"]["job_id"]:
        notify(Outcome(touched_users=repaired_users))
    drifted: list[int] = []
    if switches["new_user"] or switches["new_site"]:
        drifted = memberships.sites_missing_members(conn, network, live, engine.user_ranges(len(live)), renew)
        findings["sites_missing_members"] = drifted
    if switches["role_sync"]:
        findings["role_differences"] = replication.role_differences(conn, network)
    return drifted


def _incremental_pass(engine: Engine, switches: dict[str, bool], findings: dict[str, Any],
                      notify: Callable[[Any], Any], renew: Callable[[], None], before: Marks, now: Marks,
                      changed: list[int]) -> list[int]:
    """What changed since ``before``: the changed users against every live site (repaired too),
    and the new sites. Returns the sites whose sync is to be queued."""
    conn, network = engine.conn, engine.network
    live = sorted(now.live_sites)
    new_sites = sorted(now.live_sites - before.live_sites)
    findings.update({"pass": "incremental", "changed_users": len(changed), "new_sites": new_sites})
    findings["repaired"], repaired_users = repair.repair(conn, network, live, Change.new("repair (timer)"),
                                                         users=changed)
    if findings["repaired"]["job_id"]:
        notify(Outcome(touched_users=repaired_users))
    drifted: set[int] = set()
    if switches["new_user"] or switches["new_site"]:
        if changed:
            span = memberships.users_per_batch(network.config.batch_size, len(live))
            drifted |= set(memberships.sites_missing_members(conn, network, live, tight_ranges(changed, span),
                                                             renew))
        # Sites live again (or new, with no hook delivered): their sync is queued as it is, not
        # probed first. A probe would read every user's rows, what the job itself reads, but
        # inside the timer (5.8 s at 10,000 users); the job reads them batch by batch, capped
        # and bounded in time, writes only what is missing and respects removals.
        drifted |= set(new_sites)
        findings["sites_missing_members"] = sorted(drifted)
    if switches["role_sync"]:  # the full pass's report, with its time (see the module's docstring)
        made = before.full_at.isoformat() + "Z" if before.full_at and before.role_report else None
        findings["role_differences"] = {**(before.role_report or {"users": 0, "user_ids": []}), "as_of": made}
    return sorted(drifted)


def _why_full(conn: Any, network: Any, before: Marks | None, now: Marks) -> str | None:
    """Why the marks cannot be trusted for an incremental pass (None: they can)."""
    if before is None:
        return "no marks yet: the first pass"
    if before.full_requested:
        return "a full pass had to skip: this one is it"
    if before.config != now.config:
        return "the switches, network options or super admins changed since the last pass"
    if now.max_user_id < before.max_user_id or now.max_umeta_id < before.max_umeta_id:
        return "user or usermeta ids went back since the last pass (a database restored?)"
    if before.job_id:
        try:
            failed = jobs.load(conn, network, before.job_id)["state"] == "failed"
        except NotFound:
            failed = True
        if failed:
            return f"job {before.job_id} of the last pass failed"
    return None


def _changed_users(conn: Any, network: Any, before: Marks, now: Marks) -> list[int] | None:
    """Users created since ``before``, and users with membership rows (caps and user_level of
    the live sites, primary_blog, source_domain) inserted since: two primary-key ranges, which
    cost the new rows, not the tables. Sorted; None when there are more than ``MAX_CHANGED``."""
    t = network.tables
    keys = ["primary_blog", "source_domain"] + [k for b in sorted(now.live_sites)
                                                for k in (t.cap_key(b), t.level_key(b))]
    with conn.cursor() as cur:
        cur.execute(f"SELECT ID FROM {t.users} WHERE ID > %s AND ID <= %s LIMIT %s",
                    (before.max_user_id, now.max_user_id, MAX_CHANGED + 1))
        users = {int(r[0]) for r in cur.fetchall()}
        # the new rows, except those our own batches inserted (watermarks.note_own_rows)
        gaps = watermarks.new_row_ranges(cur, network, before.max_umeta_id, now.max_umeta_id)
        for i in range(0, len(gaps), watermarks.GAPS_PER_READ):
            part = gaps[i:i + watermarks.GAPS_PER_READ]
            cur.execute(f"SELECT DISTINCT user_id FROM {t.usermeta} FORCE INDEX (PRIMARY) WHERE "
                        f"({' OR '.join(['umeta_id BETWEEN %s AND %s'] * len(part))}) "
                        f"AND meta_key IN ({', '.join(['%s'] * len(keys))}) LIMIT %s",
                        (*[x for gap in part for x in gap], *keys, MAX_CHANGED + 1))
            users |= {int(r[0]) for r in cur.fetchall()}
            if len(users) > MAX_CHANGED:
                return None
    return None if len(users) > MAX_CHANGED else sorted(users)


def tight_ranges(user_ids: Iterable[int], span: int, gap: int = MERGE_GAP,
                 most: int = MAX_RANGES) -> list[tuple[int, int]]:
    """User-id ranges that cover ``user_ids`` and little else, for the checks of a sync
    (``memberships._collect`` reads a range's users' rows once, a dozen statements a range):
    ids fewer than ``gap`` apart share a range, at most ``most`` ranges are cut (at the largest
    gaps), and no range spans ``span`` ids or more (a batch's worth of users), so a pass costs
    about what a sync of the changed users would read."""
    ids = sorted(set(user_ids))
    if not ids:
        return []
    gaps = sorted(((ids[i + 1] - ids[i], i) for i in range(len(ids) - 1)), reverse=True)
    cut_after = {i for width, i in gaps[:max(0, most - 1)] if width > gap}
    ranges: list[tuple[int, int]] = []
    lo = prev = ids[0]
    for i, user_id in enumerate(ids[1:], 1):
        if i - 1 in cut_after or user_id - lo >= max(1, span):
            ranges.append((lo, prev))
            lo = user_id
        prev = user_id
    ranges.append((lo, prev))
    return ranges


def _questions(conn: Any) -> int | None:
    """Statements this connection has sent (the server's count), for the pass's report."""
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW SESSION STATUS LIKE 'Questions'")
            row = cur.fetchone()
        return int(row[1]) if row else None
    except Exception:  # noqa: BLE001 - a count for the report only, never a reason to fail
        return None


def _record_job(engine: Engine, drifted: list[int], findings: dict[str, Any],
                send: Callable[[list[dict]], Any]) -> jobs.Job:
    """The pass's job, its findings kept as the result: queued (``jobs.start``, the one way a
    job is started) when sites miss members, else finished on the spot. ``Conflict`` when a
    sync job of the same sites began meanwhile."""
    if drifted:
        return jobs.start(engine, "reconcile", drifted, send, trigger="timer", result=findings)
    job = jobs.create(engine.conn, engine.network, "reconcile", [], [], trigger="timer", result=findings)
    jobs.finish_inline(engine.conn, engine.network, job.id)
    return job
