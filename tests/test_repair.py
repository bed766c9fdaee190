"""The reconcile pass repairs what WordPress's own races leave (half memberships, duplicate
rows), the way WordPress reads them, journaled: its undo puts the rows back exactly.

The damage is made in SQL in the shapes two concurrent WordPress requests leave (a request that
died between core's two inserts or two deletes; two ``update_user_meta`` that both inserted).
The oracle is WordPress: what ``get_user_meta( ..., true )`` returns before and after, and the
``user_level`` that ``WP_User`` computes from the caps (``level_reduction`` over ``allcaps``).
"""
from __future__ import annotations

import json
from typing import Any

from wpmsync import reconcile

# What WordPress reads for one user and key, and the user_level WP_User computes on a site.
READ = "wp_cache_flush(); $out = array(); foreach ( $args['pairs'] as $p ) { " \
       "$out[] = get_user_meta( $p[0], $p[1], true ); } return $out;"
LEVEL = "wp_cache_flush(); $u = new WP_User( $args['u'] ); $u->for_site( $args['b'] ); " \
        "return array_reduce( array_keys( $u->allcaps ), array( $u, 'level_reduction' ), 0 );"


def key(net: Any, blog_id: int, what: str) -> str:
    return f"{net.prefix}{what}" if blog_id == 1 else f"{net.prefix}{blog_id}_{what}"


def test_the_reconcile_repairs_what_wordpress_races_leave_and_undo_puts_it_back(net):
    ids = net.ids
    with net.engine() as engine:
        engine.sync_sites(None)
        engine.change_settings(role_sync=True)  # a reconcile runs (no membership sync: see below)
    plain, authors, club, editors = ids["site_plain"], ids["site_authors"], ids["site_club"], ids["site_editors"]
    u2, u3, u4, u5, u6, u7 = (ids[f"user{i}"] for i in range(2, 8))
    um = f"{net.prefix}usermeta"
    # caps without user_level (add_user_to_blog cut short): on a subsite, on the main site, and
    # with a capability of the user's own that raises the level (WP_User counts its keys too).
    net.query(f"DELETE FROM {um} WHERE user_id = %s AND meta_key = %s", (u2, key(net, plain, "user_level")))
    net.query(f"DELETE FROM {um} WHERE user_id = %s AND meta_key = %s", (u5, key(net, 1, "user_level")))
    net.query(f"UPDATE {um} SET meta_value = 'a:2:{{s:6:\"author\";b:1;s:7:\"level_9\";b:1;}}' "
              "WHERE user_id = %s AND meta_key = %s", (u7, key(net, editors, "capabilities")))
    net.query(f"DELETE FROM {um} WHERE user_id = %s AND meta_key = %s", (u7, key(net, editors, "user_level")))
    # user_level without caps (remove_user_from_blog cut short)
    net.query(f"DELETE FROM {um} WHERE user_id = %s AND meta_key = %s", (u3, key(net, authors, "capabilities")))
    # duplicates: a second caps row with another role, primary_blog / source_domain twice
    net.query(f"INSERT INTO {um} (user_id, meta_key, meta_value) VALUES (%s, %s, 'a:1:{{s:6:\"editor\";b:1;}}')",
              (u4, key(net, club, "capabilities")))
    net.query(f"INSERT INTO {um} (user_id, meta_key, meta_value) VALUES (%s, 'primary_blog', %s), "
              "(%s, 'source_domain', 'elsewhere.test')", (u6, str(club), u6))
    damaged = net.usermeta_checksum()
    watched = [(u4, key(net, club, "capabilities")), (u6, "primary_blog"), (u6, "source_domain")]
    reads_before = net.wp.eval(READ, {"pairs": watched})

    with net.engine("timer") as engine:
        result = reconcile.reconcile(engine)
    repaired = result["repaired"]
    assert {k: repaired[k] for k in ("duplicates_deleted", "user_levels_added", "user_levels_deleted")} == {
        "duplicates_deleted": 3, "user_levels_added": 3, "user_levels_deleted": 1}
    assert set(repaired["users"]) == {u2, u3, u4, u5, u6, u7} and repaired["job_id"]
    job_result = json.loads(net.query("SELECT result FROM {p}wpmsync_jobs WHERE id = %s", (result["job_id"],))[0][0])
    assert job_result["repaired"] == repaired  # in the job status too
    # As WordPress reads them: the same values (the lowest umeta_id was kept), no duplicate left,
    # every caps row with the user_level WordPress computes, no lone user_level.
    assert net.wp.eval(READ, {"pairs": watched}) == reads_before and net.duplicates() == []
    for user_id, blog_id in ((u2, plain), (u5, 1), (u7, editors)):
        stored = net.wp.eval(READ, {"pairs": [(user_id, key(net, blog_id, "user_level"))]})[0]
        assert stored == str(net.wp.eval(LEVEL, {"u": user_id, "b": blog_id})), (user_id, blog_id)
    assert net.wp.eval(READ, {"pairs": [(u7, key(net, editors, "user_level"))]}) == ["9"]
    assert not net.query(f"SELECT 1 FROM {um} WHERE user_id = %s AND meta_key = %s", (u3, key(net, authors, "user_level")))
    # A second pass finds nothing; the undo of the repair puts every row back, ids and all.
    repaired_rows = net.usermeta_checksum()
    with net.engine("timer") as engine:
        again = reconcile.reconcile(engine)["repaired"]
        assert again["job_id"] is None and net.usermeta_checksum() == repaired_rows
        undone = engine.undo(repaired["job_id"])
    assert undone.conflicts == 0 and net.usermeta_checksum() == damaged


def test_a_caps_row_that_is_not_an_array_is_left_alone(net):
    """No role can be read from it: no user_level is made up (WordPress 7.1 does not count it
    as a membership either)."""
    with net.engine() as engine:
        engine.sync_sites(None)
        engine.change_settings(role_sync=True)
    u2, plain = net.ids["user2"], net.ids["site_plain"]
    net.query("UPDATE {p}usermeta SET meta_value = 'garbage' WHERE user_id = %s AND meta_key = %s",
              (u2, key(net, plain, "capabilities")))
    net.query("DELETE FROM {p}usermeta WHERE user_id = %s AND meta_key = %s", (u2, key(net, plain, "user_level")))
    before = net.usermeta_checksum()
    with net.engine("timer") as engine:
        assert reconcile.reconcile(engine)["repaired"]["job_id"] is None
    assert net.usermeta_checksum() == before
