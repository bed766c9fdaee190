"""Unsync by hand: rows exactly as WordPress's remove_user_from_blog() leaves them."""
from __future__ import annotations

import pytest

from conftest import network1_users
from test_differential import assert_same_rows
from wpmsync.errors import InputError, NotFound


def _synced(twins):
    a, b = twins
    for side in (a, b):
        side.wp.sync_like_plugin(network_id=1, user_ids=network1_users(side))
    return a, b


def test_removing_users_from_sites_leaves_what_remove_user_from_blog_leaves(twins):
    a, b = _synced(twins)
    users = [b.ids["user2"], b.ids["user3"], b.ids["user1"]]
    sites = [1, b.ids["site_plain"], b.ids["site_club"]]  # 1 is their primary_blog: it moves
    plain = b.ids["site_plain"]
    write_post = ("switch_to_blog(%d); $id = wp_insert_post(['post_title' => 'kept', 'post_status' => 'publish', "
                  "'post_author' => %d]); restore_current_blog(); return $id;" % (plain, b.ids["user2"]))
    post = {n.wp.eval(write_post) for n in (a, b)}  # user2 wrote a post on a site it leaves
    people = lambda n: n.query(f"SELECT ID, user_login FROM {{p}}users ORDER BY ID")  # noqa: E731
    posts = lambda n: n.query(f"SELECT ID, post_author, post_status FROM {{p}}{plain}_posts ORDER BY ID")  # noqa: E731
    users_before, posts_before = people(b), posts(b)
    with a.wp.batch() as batch:
        for u in users:
            for s in sites:
                batch.remove_user_from_blog(u, s)
    with b.engine() as engine:
        outcome = engine.remove_users(users, sites)
    assert outcome.sites[1]["removed"] == 3
    assert_same_rows(a, b)
    # no user deleted, no post touched (the post stays user2's, as with WordPress's reassign=0)
    assert people(b) == users_before and posts(b) == posts_before == posts(a) and len(post) == 1
    # the primary blog moved to the lowest site they still belong to
    assert b.query("SELECT meta_value FROM {p}usermeta WHERE user_id = %s AND meta_key = 'primary_blog'",
                   (b.ids["user2"],)) == [(str(b.ids["site_authors"]),)]
    with b.engine() as engine:  # remembered: a sync does not add them back
        assert engine.sync_sites(sites).added == 0


def test_removing_a_user_from_every_site_empties_primary_blog(twins):
    a, b = _synced(twins)
    uid = b.ids["user4"]
    every = [1] + [b.ids[f"site_{s}"] for s in ("plain", "authors", "editors", "club", "ghostly")]
    with a.wp.batch() as batch:
        for s in every:
            batch.remove_user_from_blog(uid, s)
    with b.engine() as engine:
        engine.remove_users([uid], every)
    assert_same_rows(a, b)
    assert b.query("SELECT meta_value FROM {p}usermeta WHERE user_id = %s AND meta_key IN "
                   "('primary_blog', 'source_domain')", (uid,)) == [("",), ("",)]


def test_unsync_never_removes_a_super_admin_from_the_main_site_and_checks_input(net):
    boss = net.ids["user_boss"]
    net.wp.add_user_to_blog(1, boss, "administrator")
    snapshot = net.usermeta_checksum()
    with net.engine() as engine:
        outcome = engine.remove_users([boss], [1])
        assert "super admin" in outcome.skipped[0]["reason"] and net.usermeta_checksum() == snapshot
        with pytest.raises(InputError):
            engine.remove_users([], [1])
        with pytest.raises(NotFound):
            engine.remove_users([99999], [1])
        plan = engine.remove_users([net.ids["user1"]], [net.ids["site_authors"]], dry_run=True)
        assert plan.sites[net.ids["site_authors"]]["removed"] == 1 and net.usermeta_checksum() == snapshot


def test_with_unsync_on_a_removal_hook_carries_to_the_sites_in_scope(twins, monkeypatch):
    import json
    import time

    import azure.functions as func

    from blueprints import hooks
    from wpmsync import signing
    from wpmsync.secrets import reset_secrets

    a, b = _synced(twins)
    uid, club = b.ids["user5"], b.ids["site_club"]
    every = [1] + [b.ids[f"site_{s}"] for s in ("plain", "authors", "editors", "club", "ghostly")]
    a.wp.remove_user_from_blog(uid, club)  # what WordPress did, then what unsync does elsewhere
    with a.wp.batch() as batch:
        for s in every:
            if s != club:
                batch.remove_user_from_blog(uid, s)
    b.wp.remove_user_from_blog(uid, club)
    with b.engine() as engine:
        engine.change_network_options({"unsync": True})
    monkeypatch.setenv("WPMSYNC_DB_NAME", b.db)
    monkeypatch.setenv("WPMSYNC_HOOK_SECRET", "unsync-test-secret-123")
    reset_secrets()
    body = json.dumps({"event": "user_removed", "event_id": "evt-unsync-1",
                       "data": {"user_id": uid, "blog_id": club}}).encode()
    ts = str(int(time.time()))
    resp = hooks.hook.build().get_user_function()(func.HttpRequest(
        "POST", "http://localhost/api/hooks", body=body, headers={
            signing.TIMESTAMP_HEADER: ts, signing.SIGNATURE_HEADER: signing.sign("unsync-test-secret-123", ts, body)}))
    reset_secrets()
    answer = json.loads(resp.get_body())
    assert resp.status_code == 200 and answer["removed_from"] == sorted(every)
    assert_same_rows(a, b)


def test_bulk_sync_of_selected_users_to_selected_sites_matches_wordpress(twins, monkeypatch):
    import json
    import subprocess
    import sys

    import azure.functions as func

    from blueprints import actions
    from conftest import ROOT

    a, b = twins
    users = [b.ids["user2"], b.ids["user6"]]
    sites = [b.ids["site_editors"], b.ids["site_club"]]
    a.wp.sync_like_plugin(blog_ids=sites, network_id=1, user_ids=users)
    fn = actions.users_sync.build().get_user_function()
    monkeypatch.setenv("WPMSYNC_DB_NAME", b.db)
    plan = fn(func.HttpRequest("POST", "http://localhost/api/users/sync", body=json.dumps(
        {"user_ids": users, "blog_ids": sites, "dry_run": True}).encode()))
    assert json.loads(plan.get_body())["added"] == 4
    bad = fn(func.HttpRequest("POST", "http://localhost/api/users/sync",
                              body=json.dumps({"user_ids": users, "blog_ids": []}).encode()))
    assert bad.status_code == 400
    done = subprocess.run([sys.executable, "-m", "wpmsync", "sync-users", "--users", *map(str, users),
                           "--sites", *map(str, sites), "--json", "--db", b.db], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and json.loads(done.stdout)["added"] == 4, done.stderr
    assert_same_rows(a, b)
