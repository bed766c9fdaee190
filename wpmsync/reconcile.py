"""The timer's reconcile: apply what WordPress could not deliver, repair memberships that
drifted, report role differences.

First, whatever the switches say, it drains the outbox (``delivery.drain``: WordPress's events
that no hook delivered, a removal among them) and reports, then prunes, events older than
``WPMSYNC_OUTBOX_DAYS``; users with events still waiting are left out of every sync until those
are applied (``outbox.users_waiting``), so a pass never adds back a user whose removal is on its
way. Then, with any trigger on, it repairs what WordPress's own races left on live sites
(``repair.py``: half memberships, duplicate rows; journaled, so undoable). Then:
with the new-user or new-site trigger on, a missed hook or a hand edit leaves users missing from
sites: the reconcile finds those sites (one probe per site) and queues a job for them, as an
automatic sync (removals are respected). With role sync on, users whose roles differ across
sites are reported, never overwritten (``replication.role_differences``: only where role
replication would have acted). It never overlaps itself (a lease that expires if its holder
dies) nor a sync job of this network: one running when it begins, or one that starts while it
scans, makes the pass skip (``"status": "skipped"`` with the reason), never fail. Its job is
started by ``jobs.start``, like every other job: when the queue cannot take the job's first
message the job ends failed at once and the error is raised.
"""
from __future__ import annotations

import logging
import uuid
from typing import Any, Callable

from . import delivery, events, jobs, journal, memberships, outbox, repair, replication
from .engine import Engine
from .errors import Conflict
from .journal import Change
from .memberships import Outcome

LEASE = "reconcile"
LEASE_SECONDS = 600
log = logging.getLogger("wpmsync.reconcile")


def reconcile(engine: Engine, send: Callable[[list[dict]], Any] = lambda messages: len(messages),
              notify: Callable[[Any], Any] = lambda outcome: None) -> dict[str, Any]:
    """One reconcile pass. Returns what it did, including the job it queued (if any).
    ``send`` queues messages (the pass's own job, a new site's job), ``notify`` cleans
    WordPress's cache."""
    conn, network = engine.conn, engine.network
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
    holder = uuid.uuid4().hex
    if not jobs.acquire_lease(conn, network, LEASE, holder, LEASE_SECONDS):
        return {"status": "skipped", "reason": "another reconcile is running"}
    try:
        busy = jobs.active_jobs(conn, network)
        if busy:
            return {"status": "skipped", "reason": f"sync job {busy[0][0]} is running", "outbox": delivered}
        findings: dict[str, Any] = {"switches": switches, "outbox": delivered}
        live = [s.blog_id for s in network.live_sites()]
        findings["repaired"], repaired_users = repair.repair(conn, network, live, Change.new("repair (timer)"))
        if findings["repaired"]["job_id"]:
            notify(Outcome(touched_users=repaired_users))
        drifted: list[int] = []
        if switches["new_user"] or switches["new_site"]:
            def renew() -> None:  # a long check keeps its lease; a dead holder's lease runs out
                if not jobs.acquire_lease(conn, network, LEASE, holder, LEASE_SECONDS):
                    raise RuntimeError("reconcile lease lost to another holder")
            drifted = memberships.sites_missing_members(conn, network, live, engine.user_ranges(len(live)),
                                                        renew)
            findings["sites_missing_members"] = drifted
        if switches["role_sync"]:
            findings["role_differences"] = replication.role_differences(conn, network)
        try:
            job = _record_job(engine, drifted, findings, send)
        except Conflict as exc:  # a sync job started while this pass was scanning
            return {"status": "skipped", "reason": f"a sync job started during the scan: {exc}", **findings}
        events.prune(conn, network)
        log.info("reconcile: %s", {"job": job.id, **findings})
        return {"status": "queued" if drifted else "in_sync", "job_id": job.id, **findings}
    finally:
        jobs.release_lease(conn, network, LEASE, holder)


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
