"""Differential tests: the engine's rows equal WordPress's own ``add_user_to_blog`` loop."""
from __future__ import annotations

from conftest import Net, network1_users
from wpmsync import db


def assert_same_rows(wp_side: Net, engine_side: Net) -> None:
    expected, got = wp_side.membership_rows(), engine_side.membership_rows()
    missing = sorted(set(expected) - set(got))
    extra = sorted(set(got) - set(expected))
    assert not missing and not extra, f"missing={missing[:10]} extra={extra[:10]}"
    assert got == expected  # same multiset: no duplicates either
    assert engine_side.duplicates() == []


def test_sync_all_matches_wordpress_loop(twins):
    a, b = twins
    before_net2 = [r for r in b.membership_rows() if r[1].startswith(f"wp_{b.ids['site_net2_second']}_")]
    added_by_wp = a.wp.sync_like_plugin(network_id=1, user_ids=network1_users(a))
    with b.engine() as engine:
        outcome = engine.sync_sites(None)
    assert added_by_wp > 0 and outcome.added == added_by_wp
    assert_same_rows(a, b)
    after_net2 = [r for r in b.membership_rows() if r[1].startswith(f"wp_{b.ids['site_net2_second']}_")]
    assert after_net2 == before_net2


def test_sync_selected_sites_matches_wordpress_loop(twins):
    a, b = twins
    sites = [b.ids["site_editors"], b.ids["site_club"]]
    a.wp.sync_like_plugin(blog_ids=sites, network_id=1, user_ids=network1_users(a))
    with b.engine() as engine:
        outcome = engine.sync_sites([str(s) for s in sites])
    assert set(outcome.sites) == set(sites)
    assert_same_rows(a, b)


def test_add_user_created_on_a_subsite_matches_and_reaches_main_site(twins):
    a, b = twins
    for side in (a, b):
        with side.wp.batch() as batch:
            uid = batch.create_user("newcomer")
        side.ids["new"] = uid.value
        side.wp.add_user_to_blog(side.ids["site_authors"], uid.value, "author")
    assert a.ids["new"] == b.ids["new"]
    a.wp.sync_like_plugin(network_id=1, user_ids=[a.ids["new"]])
    with b.engine() as engine:
        outcome = engine.add_user_to_all_sites(b.ids["new"])
    assert outcome.added == 5  # main, plain, editors, club, ghostly (authors: already a member)
    assert_same_rows(a, b)
    seen = b.wp.read_back(user_ids=[b.ids["new"]], members=False)
    assert 1 in seen["users"][b.ids["new"]]["blogs"]


def test_add_site_matches_wordpress_loop(twins):
    a, b = twins
    for side in (a, b):
        side.ids["new_site"] = side.wp.create_site("fresh", options={"default_role": "contributor"})
    assert a.ids["new_site"] == b.ids["new_site"]
    a.wp.sync_like_plugin(blog_ids=[a.ids["new_site"]], network_id=1, user_ids=network1_users(a))
    with b.engine() as engine:
        outcome = engine.add_all_users_to_site(b.ids["new_site"])
    assert outcome.added > 0
    assert_same_rows(a, b)


def test_role_replication_matches_wordpress_set_role(twins):
    a, b = twins
    for side in (a, b):
        with side.engine() as engine:
            engine.sync_sites(None)
        side.wp.set_role(side.ids["site_plain"], side.ids["user2"], "editor")
    a.wp.replicate_role_like_plugin(a.ids["user2"], a.ids["site_plain"], "editor")
    with b.engine() as engine:
        outcome = engine.replicate_role(b.ids["user2"], "editor", b.ids["site_plain"])
    assert outcome.roles_set == 4  # main, authors, club, ghostly
    assert {s["blog_id"] for s in outcome.skipped} == {b.ids["site_editors"]}  # editor there already
    assert_same_rows(a, b)


def test_custom_role_replicates_only_where_it_exists(twins):
    a, b = twins
    for side in (a, b):
        with side.engine() as engine:
            engine.sync_sites(None)
    # user3 is a 'member' on the club site (its default role); replicate it
    a.wp.replicate_role_like_plugin(a.ids["user3"], a.ids["site_club"], "member")
    with b.engine() as engine:
        outcome = engine.replicate_role(b.ids["user3"], "member", b.ids["site_club"])
    assert set(outcome.sites) == {b.ids["site_authors"]}
    reasons = {s.get("blog_id"): s["reason"] for s in outcome.skipped}
    assert "does not exist" in reasons[b.ids["site_plain"]]
    assert_same_rows(a, b)


def test_custom_prefix_sync_all_matches_wordpress_loop(custom_twins):
    a, b = custom_twins
    a.wp.sync_like_plugin(network_id=1, user_ids=network1_users(a))
    with b.engine() as engine:
        engine.sync_sites(None)
    assert_same_rows(a, b)
    assert any(k.startswith("wpx9_") for _, k, _ in b.membership_rows())


def test_batches_in_any_order_give_wordpress_primary_blog(twins, monkeypatch):
    """A batch covers all the job's sites for its users, so it knows their lowest site: the
    order in which batches run does not matter."""
    monkeypatch.setattr(db, "LOCK_BUCKET", 2)
    a, b = twins
    a.wp.sync_like_plugin(network_id=1, user_ids=network1_users(a))
    with b.engine(batch_size=1) as engine:
        blog_ids = [s.blog_id for s in engine.network.live_sites()]
        batches = engine.plan_batches(blog_ids)
        assert len(batches) >= 5 and all(batch.blog_ids == tuple(blog_ids) for batch in batches)
        for batch in reversed(batches):  # the main site's batches last
            engine.run_batch(batch)
        assert sum(engine.run_batch(batch).added for batch in batches) == 0  # redelivery: no-op
    assert_same_rows(a, b)


def test_stray_rows_are_updated_as_update_user_meta_does(twins):
    """A user_level row without its caps row, and an empty primary_blog, are updated in place."""
    a, b = twins
    for side in (a, b):
        side.query("INSERT INTO {p}usermeta (user_id, meta_key, meta_value) VALUES "
                   "(%s, %s, '9'), (%s, 'primary_blog', ''), (%s, 'source_domain', 'old.test')",
                   (side.ids["user5"], f"wp_{side.ids['site_editors']}_user_level",
                    side.ids["user6"], side.ids["user6"]))
    a.wp.sync_like_plugin(network_id=1, user_ids=network1_users(a))
    with b.engine() as engine:
        engine.sync_sites(None)
    assert_same_rows(a, b)
    assert ("7",) in b.query("SELECT meta_value FROM {p}usermeta WHERE user_id = %s AND meta_key = %s",
                             (b.ids["user5"], f"wp_{b.ids['site_editors']}_user_level"))
