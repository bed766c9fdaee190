"""Overlapping syncs in parallel processes leave exactly one row per membership key."""
from __future__ import annotations

import multiprocessing
import traceback
from typing import Any

from conftest import LANE_DB_ENV, network1_users
from wpmsync import Config, Engine, db


def _worker(db: str, prefix: str, op: str, arg: int | None, barrier: Any, errors: Any) -> None:
    """One process: connect, wait for the others, then sync (batches of one user: many commits)."""
    try:
        config = Config.from_env(LANE_DB_ENV, db_name=db, table_prefix=prefix, batch_size=1)
        with Engine(config) as engine:
            barrier.wait(timeout=60)
            if op == "sync-all":
                engine.sync_sites(None)
            elif op == "add-user":
                engine.add_user_to_all_sites(arg)
            else:
                engine.add_all_users_to_site(arg)
    except BaseException as exc:  # reported to the test, which fails on it
        errors.put(f"{op}: {exc!r}\n{traceback.format_exc()}")


def test_overlapping_syncs_in_parallel_processes_write_each_membership_once(twins, monkeypatch):
    monkeypatch.setattr(db, "LOCK_BUCKET", 1)  # one user per batch: many small commits (forked)
    a, b = twins
    a.wp.sync_like_plugin(network_id=1, user_ids=network1_users(a))
    ctx = multiprocessing.get_context("fork")
    work = [("sync-all", None), ("sync-all", None), ("add-user", b.ids["user4"]),
            ("add-user", b.ids["user7"]), ("add-site", b.ids["site_club"]), ("add-site", 1),
            ("sync-all", None), ("add-site", b.ids["site_plain"])]
    barrier, errors = ctx.Barrier(len(work)), ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(b.db, b.prefix, op, arg, barrier, errors))
             for op, arg in work]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=300)
    assert errors.empty(), errors.get()
    assert all(p.exitcode == 0 for p in procs)
    assert b.duplicates() == []
    # caps and user_level rows: exactly WordPress's. primary_blog: which of two overlapping jobs
    # reaches a user first decides it (in WordPress too), so it must be one the user belongs to.
    roles_only = lambda n: [r for r in n.membership_rows() if r[1] not in ("primary_blog", "source_domain")]
    assert roles_only(b) == roles_only(a)
    domains = dict(b.query("SELECT blog_id, domain FROM {p}blogs"))
    primary = dict(b.query("SELECT user_id, meta_value FROM {p}usermeta WHERE meta_key = 'primary_blog'"))
    source = dict(b.query("SELECT user_id, meta_value FROM {p}usermeta WHERE meta_key = 'source_domain'"))
    for uid in network1_users(b):
        if uid in (b.ids["user_spammer"], b.ids["user_boss"]):
            continue
        assert uid in b.members(int(primary[uid])), uid
        assert source[uid] == domains[int(primary[uid])]


def test_statement_count_does_not_grow_with_users(templates):
    """Set-based: the same sites with 8 or 40 more users cost the same number of statements."""
    from conftest import _copy
    from wpfixture import drop_database

    counts = []
    for extra in (0, 40):
        n = _copy(templates, "wp")
        try:
            if extra:
                n.wp.create_users("more", extra)
            with n.engine(batch_size=100_000) as engine:
                with engine.conn.cursor() as cur:
                    cur.execute("SHOW SESSION STATUS LIKE 'Questions'")
                    before = int(cur.fetchone()[1])
                    outcome = engine.sync_sites(None)
                    cur.execute("SHOW SESSION STATUS LIKE 'Questions'")
                    counts.append((int(cur.fetchone()[1]) - before, outcome.added))
        finally:
            drop_database(n.db)
    (few, added_few), (many, added_many) = counts
    assert added_many == added_few + 40 * 6  # 6 live sites each take the 40 new users
    assert many == few


def _undo_worker(db: str, prefix: str, op: str, job_id: str, barrier: Any, errors: Any) -> None:
    try:
        config = Config.from_env(LANE_DB_ENV, db_name=db, table_prefix=prefix, batch_size=1)
        with Engine(config) as engine:
            barrier.wait(timeout=60)
            engine.undo(job_id) if op == "undo" else engine.sync_sites(None)
    except BaseException as exc:
        errors.put(f"{op}: {exc!r}\n{traceback.format_exc()}")


def test_undo_racing_syncs_and_itself_leaves_whole_memberships_and_no_duplicates(net, monkeypatch):
    """Two undos of one sync and two new syncs at once: every membership ends whole or absent
    (never a caps row without its user_level), no row twice, each journal row undone once."""
    monkeypatch.setattr(db, "LOCK_BUCKET", 1)  # many small ranges, so the processes interleave
    with net.engine(batch_size=1) as engine:
        job_id = engine.sync_sites(None).job_id
    ctx = multiprocessing.get_context("fork")
    work = ["undo", "sync", "undo", "sync"]
    barrier, errors = ctx.Barrier(len(work)), ctx.Queue()
    procs = [ctx.Process(target=_undo_worker, args=(net.db, net.prefix, op, job_id, barrier, errors))
             for op in work]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=300)
    assert errors.empty(), errors.get()
    assert net.duplicates() == []
    keys = net.query("SELECT user_id, meta_key FROM {p}usermeta WHERE meta_key LIKE 'wp\\_%%capabilities' "
                     "OR meta_key LIKE 'wp\\_%%user\\_level'")
    caps = {(u, k[: -len("capabilities")]) for u, k in keys if k.endswith("capabilities")}
    levels = {(u, k[: -len("user_level")]) for u, k in keys if k.endswith("user_level")}
    assert caps == levels
    undone = net.query("SELECT undone_by, COUNT(*) FROM {p}wpmsync_journal WHERE change_seq = (SELECT seq FROM "
                       "{p}wpmsync_changes WHERE job_id = %s) GROUP BY undone_by",
                       (job_id,))
    assert 0 not in dict(undone)  # every row of the sync was undone, by one undo or the other
