"""The incremental reconcile: a timer pass costs what changed since the last one.

Networks built by real WordPress (``conftest``); every change is made by WordPress core
(``wpmu_create_user``, ``wpmu_create_blog``, ``update_blog_status``, ``add_user_meta``...) with no
hook delivered (the fixtures run no mu-plugin). The oracle is WordPress (what it reads back) or
a full pass on a twin network, never the incremental code itself.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest
from conftest import ROOT, Net, network1_users

from wpmsync import jobs, memberships, watermarks
from wpmsync.reconcile import LEASE, reconcile, tight_ranges

COUNTERS = ("Questions", "Handler_read_next", "Handler_read_rnd_next", "Handler_read_key")
LEVEL = ("wp_cache_flush(); $u = new WP_User( $args['u'] ); $u->for_site( $args['b'] ); "
         "return array_reduce( array_keys( $u->allcaps ), array( $u, 'level_reduction' ), 0 );")


def key(net: Net, blog_id: int, what: str) -> str:
    return f"{net.prefix}{what}" if blog_id == 1 else f"{net.prefix}{blog_id}_{what}"


def counters(conn: Any) -> dict[str, int]:
    with conn.cursor() as cur:
        cur.execute("SHOW SESSION STATUS WHERE Variable_name IN (%s, %s, %s, %s)", COUNTERS)
        return {name: int(value) for name, value in cur.fetchall()}


def run_pass(net: Net, *, full: bool = False, measure: bool = False) -> dict[str, Any]:
    """One pass on a fresh engine (as each timer invocation has); with ``measure``, what it cost
    on the server: statements and the handler reads of its connection (``cost``), the cost of
    the SHOW STATUS itself taken off."""
    with net.engine("timer") as engine:
        if not measure:
            return reconcile(engine, full=full)
        c0 = counters(engine.conn)
        c1 = counters(engine.conn)
        result = reconcile(engine, full=full)
        c2 = counters(engine.conn)
    result["cost"] = {name: (c2[name] - c1[name]) - (c1[name] - c0[name]) for name in COUNTERS}
    return result


def run_job(net: Net, job_id: str) -> None:
    """The queued job, through the queue's own handlers: prepare, then every batch (the lanes
    prepare starts each queue their next batch: here every pending batch is run in turn)."""
    with net.engine("queue") as engine:
        jobs.handle_prepare(engine, job_id, lambda msgs: len(msgs))
        for (seq,) in net.query("SELECT seq FROM {p}wpmsync_job_batches WHERE job_id = %s ORDER BY seq", (job_id,)):
            jobs.handle_batch(engine, job_id, seq)


def settle(net: Net, result: dict[str, Any]) -> dict[str, Any]:
    """Run the job the pass queued, if any; the pass's result back."""
    if result["status"] == "queued":
        run_job(net, result["job_id"])
    return result


def synced(net: Net, *switches: str) -> dict[str, Any]:
    """Switches on, everyone synced, then the first timer pass: a full one (no marks yet)."""
    with net.engine() as engine:
        engine.change_settings(**{s: True for s in switches or ("new_user", "new_site", "role_sync")})
        engine.sync_sites(None)
    first = run_pass(net)
    assert first["pass"] == "full" and first["full_because"].startswith("no marks"), first
    assert first["status"] == "in_sync", first
    return first


def live_network1(net: Net) -> list[int]:
    """Live sites of network 1, as WordPress reads them."""
    blogs = net.wp.read_back(members=False)["blogs"]
    return sorted(b for b, info in blogs.items() if info["network_id"] == 1
                  and not (info["archived"] or info["spam"] or info["deleted"]))


def wordpress_blogs(net: Net, user_ids: list[int]) -> dict[int, set[int]]:
    """user -> the live sites WordPress counts the user a member of (``is_user_member_of_blog``)."""
    seen = net.wp.read_back(user_ids=user_ids)
    out: dict[int, set[int]] = {u: set() for u in user_ids}
    for blog_id, info in seen["blogs"].items():
        for user_id, member in info["members"].items():
            if member["member"] and user_id in out:
                out[user_id].add(blog_id)
    return out


def stored_marks(net: Net) -> list[tuple]:
    return net.query("SELECT name, value FROM {p}wpmsync_watermarks ORDER BY name")


# ---------------------------------------------------------------- cost

def test_a_pass_over_a_network_in_sync_costs_the_same_few_statements_whatever_its_size(twins):
    small, big = twins
    created = big.wp.create_users("bulk", 300)
    assert len(created) == 300
    results = {}
    for name, net in (("small", small), ("big", big)):
        synced(net)
        full = run_pass(net, full=True, measure=True)
        assert full["pass"] == "full" and full["status"] == "in_sync"
        incremental = run_pass(net, measure=True)
        assert incremental["pass"] == "incremental" and incremental["status"] == "in_sync", incremental
        assert incremental["changed_users"] == 0 and incremental["new_sites"] == []
        assert incremental["sites_missing_members"] == [] and incremental["repaired"]["job_id"] is None
        results[name] = (full, incremental, net)
    (small_full, small_inc, _), (big_full, big_inc, big_net) = results["small"], results["big"]
    # The same statements whatever the number of users, and the pass's own count says so too.
    assert small_inc["cost"]["Questions"] == big_inc["cost"]["Questions"] < 40, (small_inc["cost"], big_inc["cost"])
    assert small_inc["statements"] == big_inc["statements"]
    # No membership row read: the index and table reads do not grow with the users either, and
    # are a small fraction of what the full pass reads (which reads every membership row).
    membership_rows = len(big_net.membership_rows())
    for counter in ("Handler_read_next", "Handler_read_rnd_next", "Handler_read_key"):
        assert big_inc["cost"][counter] == small_inc["cost"][counter], (counter, small_inc["cost"], big_inc["cost"])
    reads = big_inc["cost"]["Handler_read_next"] + big_inc["cost"]["Handler_read_rnd_next"]
    assert reads < 200 and big_full["cost"]["Handler_read_next"] >= membership_rows > 3000, \
        (big_inc["cost"], big_full["cost"], membership_rows)
    assert big_full["cost"]["Handler_read_next"] > small_full["cost"]["Handler_read_next"]


# ---------------------------------------------------------------- what changed is synced

def test_new_users_and_a_new_site_made_by_wordpress_end_as_a_full_pass_would_leave_them(twins):
    """Twin A runs the full pass, twin B the incremental one: the same sites queued, the same
    rows after the jobs, and WordPress counts the new users members of every live site."""
    full_twin, incremental_twin = twins
    for net in twins:
        synced(net)
    # A site made by WordPress (wpmu_create_blog), no hook: every user is missing there.
    fresh = [net.wp.create_site("fresh", options={"default_role": "author"}) for net in twins]
    assert fresh[0] == fresh[1]
    by_full = settle(full_twin, run_pass(full_twin, full=True))
    by_incremental = settle(incremental_twin, run_pass(incremental_twin))
    assert by_incremental["pass"] == "incremental" and by_incremental["new_sites"] == [fresh[0]]
    assert by_incremental["sites_missing_members"] == by_full["sites_missing_members"] == [fresh[0]]
    assert full_twin.membership_rows() == incremental_twin.membership_rows()
    # The rows the job wrote are its own (noted with their id ranges): the next pass skips them,
    # but a row WordPress wrote after them is seen.
    again = run_pass(incremental_twin, measure=True)
    assert again["status"] == "in_sync" and again["changed_users"] == 0, again
    someone = network1_users(incremental_twin)[0]
    incremental_twin.wp.add_user_to_blog(fresh[1], someone, "editor")  # already a member: core rewrites
    incremental_twin.wp.remove_user_from_blog(someone, fresh[1])
    incremental_twin.wp.add_user_to_blog(fresh[1], someone, "editor")  # a new row of WordPress's own
    assert run_pass(incremental_twin)["changed_users"] == 1
    full_twin.wp.remove_user_from_blog(someone, fresh[0])
    full_twin.wp.add_user_to_blog(fresh[0], someone, "editor")
    # Users made by WordPress (wpmu_create_user), no hook: each is missing from every live site.
    new_users = []
    for net in twins:
        with net.wp.batch() as b:
            made = [b.create_user(f"late{i}") for i in range(3)]
        new_users.append([m.value for m in made])
    assert new_users[0] == new_users[1]
    by_full = settle(full_twin, run_pass(full_twin, full=True))
    by_incremental = settle(incremental_twin, run_pass(incremental_twin))
    live = live_network1(incremental_twin)
    assert by_incremental["pass"] == "incremental" and by_incremental["changed_users"] == 3
    assert by_incremental["sites_missing_members"] == by_full["sites_missing_members"] == live
    assert full_twin.membership_rows() == incremental_twin.membership_rows()
    assert wordpress_blogs(incremental_twin, new_users[1]) == {u: set(live) for u in new_users[1]}
    # And then nothing is left to do, by either kind of pass.
    assert run_pass(incremental_twin)["status"] == "in_sync"
    assert run_pass(incremental_twin, full=True)["status"] == "in_sync"


def test_sites_live_again_are_seen(net):
    """Sites un-archived and un-spammed by WordPress (``update_blog_status``) are new to the
    pass: checked against every user. A site archived while a user was made gets the user once
    it is live again."""
    synced(net)
    archived, spammy, plain = net.ids["site_archived"], net.ids["site_spammy"], net.ids["site_plain"]
    with net.wp.batch() as b:
        b.update_blog_status(archived, archived=0)
        b.update_blog_status(spammy, spam=0)
    result = settle(net, run_pass(net))
    assert result["pass"] == "incremental" and result["new_sites"] == [archived, spammy]
    assert result["sites_missing_members"] == [archived, spammy]
    users = network1_users(net)
    members = wordpress_blogs(net, users)
    syncable = [u for u in users if u not in (net.ids["user_spammer"], net.ids["user_boss"], net.ids["admin"])]
    assert all({archived, spammy} <= members[u] for u in syncable), members

    # plain archived; a user made meanwhile joins the live sites only; plain live again: joins it.
    net.wp.update_blog_status(plain, archived=1)
    assert settle(net, run_pass(net))["status"] == "in_sync"
    late = net.wp.create_user("while_archived")
    result = settle(net, run_pass(net))
    assert result["changed_users"] == 1 and plain not in result["sites_missing_members"]
    assert plain not in wordpress_blogs(net, [late])[late]
    net.wp.update_blog_status(plain, archived=0)
    result = settle(net, run_pass(net))
    assert result["new_sites"] == [plain] and result["sites_missing_members"] == [plain]
    assert wordpress_blogs(net, [late])[late] == set(live_network1(net))


# ---------------------------------------------------------------- repairs

def test_damage_on_a_changed_user_is_repaired_now_and_on_an_unchanged_user_by_the_full_pass(net):
    synced(net)
    plain, club, editors = net.ids["site_plain"], net.ids["site_club"], net.ids["site_editors"]
    u3, u4, u6 = net.ids["user3"], net.ids["user4"], net.ids["user6"]
    net.wp.eval(
        # A duplicate (add_user_meta does not look for the key): a new row, so user3 changed.
        "add_user_meta( $args['u3'], $args['dup_key'], array( 'editor' => true ) );"
        # A half membership (add_user_to_blog cut short after the caps): user4 changed.
        "remove_user_from_blog( $args['u4'], $args['club'] );"
        "add_user_meta( $args['u4'], $args['half_key'], array( 'member' => true ) );"
        # A half membership made in place (its user_level deleted): no new row, user6 unchanged.
        "delete_user_meta( $args['u6'], $args['lost_key'] ); return true;",
        {"u3": u3, "u4": u4, "u6": u6, "club": club, "dup_key": key(net, plain, "capabilities"),
         "half_key": key(net, club, "capabilities"), "lost_key": key(net, editors, "user_level")})
    reads = "wp_cache_flush(); return get_user_meta( $args['u'], $args['k'], true );"
    read_before = net.wp.eval(reads, {"u": u3, "k": key(net, plain, "capabilities")})

    incremental = run_pass(net)
    repaired = incremental["repaired"]
    assert incremental["pass"] == "incremental" and incremental["changed_users"] == 2
    assert set(repaired["users"]) == {u3, u4} and repaired["duplicates_deleted"] == 1
    assert repaired["user_levels_added"] == 1 and repaired["job_id"]
    # WordPress reads the same role for user3 (the lowest umeta_id was kept), and user4's level is
    # what WP_User computes; user6's damage is left for the full pass.
    assert net.wp.eval(reads, {"u": u3, "k": key(net, plain, "capabilities")}) == read_before
    assert net.wp.eval(reads, {"u": u4, "k": key(net, club, "user_level")}) == \
        str(net.wp.eval(LEVEL, {"u": u4, "b": club}))
    assert net.wp.eval(reads, {"u": u6, "k": key(net, editors, "user_level")}) == ""

    full = run_pass(net, full=True)
    assert full["pass"] == "full" and full["repaired"]["users"] == [u6]
    assert full["repaired"]["user_levels_added"] == 1
    assert net.wp.eval(reads, {"u": u6, "k": key(net, editors, "user_level")}) == \
        str(net.wp.eval(LEVEL, {"u": u6, "b": editors}))
    assert net.duplicates() == []
    assert run_pass(net)["repaired"]["job_id"] is None and run_pass(net, full=True)["repaired"]["job_id"] is None


# ---------------------------------------------------------------- what is respected

def test_a_recorded_removal_and_an_event_still_waiting_are_respected(net):
    synced(net)
    plain, club, u2 = net.ids["site_plain"], net.ids["site_club"], net.ids["user2"]
    removed = f"a:1:{{i:0;i:{plain};}}"
    # WordPress takes user2 off plain, recorded as the PHP plugin records it; off club and back
    # on it (new rows: user2 is a changed user).
    net.wp.eval("remove_user_from_blog( $args['u'], $args['plain'] ); "
                "update_user_meta( $args['u'], 'wpmus_removed_from_blogs', array( $args['plain'] ) ); "
                "remove_user_from_blog( $args['u'], $args['club'] ); "
                "add_user_to_blog( $args['club'], $args['u'], 'member' ); return true;",
                {"u": u2, "plain": plain, "club": club})
    result = run_pass(net)
    assert result["changed_users"] == 1 and result["status"] == "in_sync", result
    assert plain not in wordpress_blogs(net, [u2])[u2]
    # A new user with a removal record for plain: joins every other live site, never plain.
    late = net.wp.create_user("removed_early")
    net.query("INSERT INTO {p}usermeta (user_id, meta_key, meta_value) VALUES (%s, 'wpmus_removed_from_blogs', %s)",
              (late, removed))
    result = settle(net, run_pass(net))
    others = set(live_network1(net)) - {plain}
    assert result["changed_users"] == 1 and result["sites_missing_members"] == sorted(others), result
    assert wordpress_blogs(net, [late, u2]) == {late: others, u2: others}
    # A new user whose WordPress event is still in the outbox (not due yet) is left out.
    waiting = net.wp.create_user("still_waiting")
    net.query("INSERT INTO {p}wpmsync_outbox (event_id, event, network_id, user_id, blog_id, data, created_at, "
              "next_try) VALUES ('evt-waiting-1', 'user_removed', 1, %s, %s, %s, UTC_TIMESTAMP(), "
              "UTC_TIMESTAMP() + INTERVAL 1 DAY)", (waiting, plain, json.dumps({"user_id": waiting, "blog_id": plain})))
    result = run_pass(net)  # changed: the waiting user (the last job's rows are its own)
    assert result["changed_users"] == 1 and result["status"] == "in_sync", result
    assert wordpress_blogs(net, [waiting])[waiting] == set()


# ---------------------------------------------------------------- marks

def test_the_marks_advance_only_when_a_pass_completes_and_a_skipped_full_pass_comes_next(net, monkeypatch):
    synced(net)
    marks = stored_marks(net)
    late = net.wp.create_user("crash_test")

    def crash(*args: Any, **kwargs: Any) -> list[int]:
        raise RuntimeError("the worker died")

    monkeypatch.setattr(memberships, "sites_missing_members", crash)
    with pytest.raises(RuntimeError):
        run_pass(net)
    assert stored_marks(net) == marks  # the crashed pass is repeated
    monkeypatch.undo()
    result = run_pass(net)
    assert result["pass"] == "incremental" and result["changed_users"] == 1 and result["status"] == "queued"
    assert stored_marks(net) != marks
    # The job the pass queued fails: what it should have written is in no new row, so a full pass.
    with net.engine() as engine:
        jobs.fail(engine.conn, engine.network, result["job_id"], None, "given up")
    result = settle(net, run_pass(net))
    assert result["pass"] == "full" and "failed" in result["full_because"] and result["status"] == "queued"
    assert late in net.members(1)
    # The full timer finds the lease held (the 15-minute pass at 02:30): the next pass is full.
    with net.engine() as engine:
        assert jobs.acquire_lease(engine.conn, engine.network, LEASE, "the-other-timer", 60)
        assert reconcile(engine, full=True) == {"status": "skipped", "reason": "another reconcile is running"}
        jobs.release_lease(engine.conn, engine.network, LEASE, "the-other-timer")
    result = run_pass(net)
    assert result["pass"] == "full" and "skip" in result["full_because"]
    assert run_pass(net)["pass"] == "incremental"
    # A change of the switches or options: a full pass (what is due may have changed everywhere).
    with net.engine() as engine:
        engine.change_network_options({"sites": {str(net.ids["site_editors"]): {"opt_out": True}}})
    assert "options" in run_pass(net)["full_because"]
    # The role report is the full pass's, repeated by the incremental passes with its time.
    full = run_pass(net, full=True)
    incremental = run_pass(net)
    assert {k: v for k, v in incremental["role_differences"].items() if k != "as_of"} == full["role_differences"]
    assert incremental["role_differences"]["as_of"]
    # Uninstall drops the marks with our other tables: the next pass is full again.
    with net.engine() as engine:
        assert f"{net.prefix}wpmsync_watermarks" in engine.uninstall()["tables_dropped"]
        engine.change_settings(new_user=True)
    assert run_pass(net)["full_because"].startswith("no marks")


def test_tight_ranges_cover_the_changed_users_and_little_else():
    assert tight_ranges([], 100) == []
    assert tight_ranges([7], 100) == [(7, 7)]
    assert tight_ranges([5, 6, 9, 500, 501, 10_000], 1000) == [(5, 9), (500, 501), (10_000, 10_000)]
    # no range spans a batch's worth of ids; at most `most` ranges are cut at gaps
    assert tight_ranges(range(1, 2501), 1000) == [(1, 1000), (1001, 2000), (2001, 2500)]
    assert tight_ranges([1, 200, 400, 600, 800], 10_000, most=2) == [(1, 600), (800, 800)]
    ids = [3, 90, 91, 5000, 5001, 9000]
    covered = tight_ranges(ids, 300)
    assert all(any(lo <= u <= hi for lo, hi in covered) for u in ids)


# ---------------------------------------------------------------- the timers

def _schedules(env: dict[str, str]) -> dict[str, Any]:
    """What the host indexes, in a process of its own with exactly these settings."""
    code = ("import json, function_app\n"
            "from wpfixture.local_host import LocalFunctions\n"
            "out = {f.get_function_name(): f.get_trigger().schedule for f in function_app.app.get_functions()\n"
            "       if f.get_trigger().type == 'timerTrigger'}\n"
            "print(json.dumps({'timers': out, 'local': sorted(n for n in LocalFunctions('s' * 16).functions\n"
            "                                                if n.startswith('reconcile'))}))\n")
    clean = {k: v for k, v in os.environ.items() if not k.startswith("WPMSYNC_")}
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={**clean, **env}, capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_both_timers_are_registered_with_their_schedules():
    default = _schedules({})
    assert default["timers"] == {"reconcile_drift": "%WPMSYNC_RECONCILE_SCHEDULE%", "reconcile_full": "0 30 2 * * *"}
    assert default["local"] == ["reconcile_drift", "reconcile_full"]  # the local host runs both
    weekly = _schedules({"WPMSYNC_FULL_RECONCILE_SCHEDULE": "0 0 4 * * 0"})
    assert weekly["timers"]["reconcile_full"] == "0 0 4 * * 0"
    assert _schedules({"WPMSYNC_FULL_RECONCILE_SCHEDULE": " "})["timers"]["reconcile_full"] == "0 30 2 * * *"
    sample = json.loads((ROOT / "local.settings.sample.json").read_text())["Values"]
    assert sample["WPMSYNC_FULL_RECONCILE_SCHEDULE"] == "0 30 2 * * *"


def test_the_full_timer_runs_a_full_pass(net, monkeypatch):
    """The timer functions' own code, as the host calls it."""
    from azure.functions.timer import TimerRequest

    import function_app  # noqa: F401  (registers the blueprints, as the host does)
    from blueprints import reconcile as timers

    monkeypatch.setenv("WPMSYNC_DB_NAME", net.db)
    monkeypatch.setenv("WPMSYNC_DB_PASSWORD", "")
    synced(net, "new_user")
    for name, expected in (("reconcile_drift", "incremental"), ("reconcile_full", "full")):
        getattr(timers, name).build().get_user_function()(TimerRequest(past_due=False))
        (raw,), = net.query("SELECT result FROM {p}wpmsync_jobs WHERE kind = 'reconcile' ORDER BY created_at DESC "
                            "LIMIT 1")
        assert json.loads(raw)["pass"] == expected
    with net.engine() as engine:
        assert watermarks.read(engine.conn, engine.network) is not None
