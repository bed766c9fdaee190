"""Overlapping syncs in parallel processes leave exactly one row per membership key."""
from __future__ import annotations

import multiprocessing
from typing import Any

from conftest import network1_users
from wpmsync import Config, Engine, db


def _worker(db: str, prefix: str, op: str, arg: int | None, barrier: Any, errors: Any) -> None:
    """One process: connect, wait for the others, then sync (batches of one user: many commits)."""
    try:
        config = Config.from_env({}, db_name=db, table_prefix=prefix, batch_size=1)
        with Engine(config) as engine:
            barrier.wait(timeout=60)
            if op == "sync-all":
                engine.sync_sites(None)
            elif op == "add-user":
                engine.add_user_to_all_sites(arg)
            else:
                engine.add_all_users_to_site(arg)
    except BaseException as exc:  # reported to the test, which fails on it
        errors.put(f"{op}: {exc!r}")


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
