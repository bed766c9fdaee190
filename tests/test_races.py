"""WordPress's own writers and ours at the same moment, on the same users, for a bounded time.

Two PHP processes call WordPress core in a loop of short requests, with the mu-plugin loaded
and the functions up (the local host, real HTTP): ``add_user_to_blog``,
``remove_user_from_blog``, ``WP_User::set_role`` and ``wpmu_create_user`` on random users and
sites. Meanwhile Python threads run syncs, unsyncs, timer passes and undos on the same users.
WordPress logs the id of every usermeta row it adds (``added_user_meta``).

Afterwards: no duplicate (user_id, meta_key) that the engine made (a row the engine inserted is
always the lowest of its key), the journal holds only rows the engine itself wrote (none that
WordPress added), a timer pass leaves no half membership and no duplicate, undoing every change
never deletes a row WordPress made, every job and event is in a final state, no 500.
"""
from __future__ import annotations

import random
import threading
import time
from typing import Any

import pytest

from test_outbox import site, timer, wait_for_jobs  # noqa: F401  (the fixture, shared)
from wpmsync.errors import Busy, Conflict

SECONDS = 12

WORKER = r"""
$log = array( 'added' => array(), 'ops' => 0 );
add_action( 'added_user_meta', function ( $mid ) use ( &$log ) { $log['added'][] = (int) $mid; } );
mt_srand( $args['seed'] );
wp_set_current_user( $args['admin'] );
for ( $i = 0; $i < $args['ops']; $i++ ) {
	wp_cache_flush(); // another process writes the same rows: read them as a new request would
	$u = $args['users'][ mt_rand( 0, count( $args['users'] ) - 1 ) ];
	$b = $args['blogs'][ mt_rand( 0, count( $args['blogs'] ) - 1 ) ];
	switch ( mt_rand( 0, 6 ) ) {
		case 0:
		case 1:
			add_user_to_blog( $b, $u, mt_rand( 0, 1 ) ? 'author' : 'subscriber' );
			break;
		case 2:
		case 3:
			remove_user_from_blog( $u, $b );
			break;
		case 4:
		case 5:
			$user = new WP_User( $u );
			$user->for_site( $b );
			if ( $user->roles ) {
				$user->set_role( mt_rand( 0, 1 ) ? 'editor' : 'contributor' );
			}
			break;
		default:
			$name = 'race' . $args['seed'] . 'x' . $i;
			wpmu_create_user( $name, 'pw-' . $name, $name . '@example.test' );
	}
	++$log['ops'];
}
return $log;
"""


def test_wordpress_core_and_the_engine_writing_the_same_users_at_once(site):  # noqa: F811
    net = site.net
    ids = net.ids
    with net.engine() as engine:
        engine.sync_sites(None)
        engine.change_settings(new_user=True, new_site=True, role_sync=True)
    users = [ids[f"user{i}"] for i in range(1, 9)] + [ids["user_ed"]]
    blogs = [1, ids["site_plain"], ids["site_authors"], ids["site_editors"], ids["site_club"]]
    deadline = time.monotonic() + SECONDS
    added_by_wordpress: list[int] = []
    faults: list[str] = []
    counts: dict[str, int] = {}

    def php_worker(seed: int) -> None:
        n = 0
        while time.monotonic() < deadline:
            try:
                (log,) = site.run(WORKER, seed=seed * 1000 + n, ops=4, users=users, blogs=blogs)
            except Exception as exc:  # noqa: BLE001 - reported below
                faults.append(f"php {seed}: {exc}")
                return
            added_by_wordpress.extend(log["added"])
            counts["php ops"] = counts.get("php ops", 0) + log["ops"]
            n += 1

    def engine_worker(name: str, work: Any) -> None:
        from blueprints import common
        rng = random.Random(name)
        engine = common.engine(f"race:{name}")
        try:
            while time.monotonic() < deadline:
                try:
                    work(engine, rng)
                    counts[name] = counts.get(name, 0) + 1
                except (Busy, Conflict):  # 503 / 409: a fair answer under contention
                    counts[f"{name} busy"] = counts.get(f"{name} busy", 0) + 1
                except Exception as exc:  # noqa: BLE001 - reported below
                    faults.append(f"{name}: {exc!r}")
                    return
        finally:
            engine.close()

    def sync(engine: Any, rng: random.Random) -> None:
        engine.sync_sites(rng.sample(blogs, 2))

    def unsync(engine: Any, rng: random.Random) -> None:
        engine.remove_users([rng.choice(users)], [rng.choice(blogs[1:])])

    def undo(engine: Any, rng: random.Random) -> None:
        recent = [c for c in engine.journal(limit=10) if not c.get("undone_by") and "sync_sites" in c["trigger"]]
        if recent:
            engine.undo(rng.choice(recent)["job_id"])
        time.sleep(0.2)

    def timer_pass(engine: Any, rng: random.Random) -> None:
        timer()
        time.sleep(0.3)  # a timer, only far more often than every 15 minutes

    threads = [threading.Thread(target=php_worker, args=(s,)) for s in (1, 2)] + [
        threading.Thread(target=engine_worker, args=(n, w)) for n, w in
        (("sync", sync), ("unsync", unsync), ("undo", undo), ("timer", timer_pass))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=SECONDS + 120)
    assert not faults, faults
    assert counts.get("php ops", 0) >= 40 and all(counts.get(n, 0) > 0 for n in ("sync", "unsync", "timer")), counts

    # What the engine inserted (journaled, not undone, still there) is the lowest row of its key:
    # no duplicate is one the engine made.
    ours = net.query(
        "SELECT j.row_id FROM {p}wpmsync_journal j JOIN {p}usermeta m ON m.umeta_id = j.row_id "
        "WHERE j.tbl = 1 AND j.old_value IS NULL AND j.undone_by = 0 AND m.umeta_id > ("
        "SELECT MIN(o.umeta_id) FROM {p}usermeta o WHERE o.user_id = m.user_id AND o.meta_key = m.meta_key)")
    assert ours == [], ours
    # The journal names no row WordPress added as one the engine inserted.
    journaled = {r for (r,) in net.query("SELECT row_id FROM {p}wpmsync_journal WHERE tbl = 1 AND old_value IS NULL")}
    claimed = journaled & set(added_by_wordpress)
    if claimed and net.query("SELECT @@innodb_autoinc_lock_mode")[0][0] == 2:
        # Known, not fixed yet (issue 13's mysql lane): with interleaved auto-increment (MySQL's
        # default) the engine tells its INSERT ... SELECT's rows by id >= LAST_INSERT_ID() and
        # the batch's users (memberships._our_rows), so a row WordPress inserted for one of
        # them in that instant is journaled as ours, and an undo would delete it.
        pytest.xfail(f"innodb_autoinc_lock_mode=2: {len(claimed)} WordPress rows journaled as the engine's "
                     f"(e.g. {sorted(claimed)[:5]})")
    assert not claimed

    # Everything settles: one more timer pass (a minute later: past the grace of the events that
    # WordPress's requests are still sending) drains, repairs what core's own races left.
    net.query("UPDATE {p}wpmsync_outbox SET next_try = UTC_TIMESTAMP()")
    timer()
    wait_for_jobs(net)
    assert site.outbox() == []
    assert net.query("SELECT COUNT(*) FROM {p}wpmsync_events WHERE answer IS NULL") == [(0,)]
    keys = [f"{net.prefix}{'' if b == 1 else f'{b}_'}{w}" for b in blogs for w in ("capabilities", "user_level")]
    marks = ", ".join(["%s"] * len(keys))
    assert net.query(f"SELECT user_id, meta_key FROM {{p}}usermeta WHERE meta_key IN ({marks}, 'primary_blog', "
                     "'source_domain') GROUP BY user_id, meta_key HAVING COUNT(*) > 1", keys) == []
    half = net.query(
        f"SELECT a.user_id, a.meta_key FROM {{p}}usermeta a WHERE a.meta_key IN ({marks}) AND NOT EXISTS ("
        "SELECT 1 FROM {p}usermeta b WHERE b.user_id = a.user_id AND b.meta_key = IF(a.meta_key LIKE '%%capabilities', "
        "CONCAT(LEFT(a.meta_key, CHAR_LENGTH(a.meta_key) - 12), 'user_level'), "
        "CONCAT(LEFT(a.meta_key, CHAR_LENGTH(a.meta_key) - 10), 'capabilities')))", keys)
    assert half == [], half

    # Undo every change, newest first: no row WordPress made (and still has) is deleted by it.
    wordpress_rows = {r for (r,) in net.query("SELECT umeta_id FROM {p}usermeta")} & set(added_by_wordpress)
    ours_written = {r for (r,) in net.query("SELECT row_id FROM {p}wpmsync_journal WHERE tbl = 1")}
    with net.engine() as engine:
        for (job_id,) in net.query("SELECT job_id FROM {p}wpmsync_changes WHERE undone_by IS NULL "
                                   "AND undo_of IS NULL ORDER BY seq DESC"):
            engine.undo(job_id)
    left = {r for (r,) in net.query("SELECT umeta_id FROM {p}usermeta")}
    assert (wordpress_rows - ours_written) <= left
    assert not site.server.errors, site.server.errors
    print("done:", counts, "hooks answered after WordPress stopped waiting:", len(site.server.disconnects))
