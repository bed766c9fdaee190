"""Network options (issue: what the other multisite sync plugins offer): per-site opt-out and
role, role filters, copying a missing role's definition. Each checked against WordPress's own
functions on a twin network."""
from __future__ import annotations

import pytest

from conftest import network1_users
from test_differential import assert_same_rows
from wpmsync.errors import InputError, NotFound


def test_a_per_site_role_is_what_add_user_to_blog_writes_with_that_role(twins):
    a, b = twins
    site = b.ids["site_plain"]
    a.wp.update_option(site, "default_role", "contributor")  # WordPress's loop then gives contributor
    a.wp.sync_like_plugin(network_id=1, user_ids=network1_users(a))
    with b.engine() as engine:
        engine.change_network_options({"sites": {site: {"role": "contributor"}}})
        engine.sync_sites(None)
    assert_same_rows(a, b)


def test_an_opted_out_site_receives_nobody_and_sends_no_role_changes(net):
    site = net.ids["site_club"]
    with net.engine() as engine:
        engine.change_network_options({"sites": {str(site): {"opt_out": True}}})
        outcome = engine.sync_sites(None)
        assert net.members(site) <= {net.ids["admin"]}
        assert {"blog_id": site, "reason": "site opted out of syncing"} in outcome.skipped
        engine.change_network_options({"sites": {str(site): {}}})  # back in
        engine.sync_sites([site])
        engine.change_network_options({"sites": {str(site): {"opt_out": True}}})
        net.wp.set_role(site, net.ids["user2"], "editor")
        snapshot = net.usermeta_checksum()
        sent = engine.replicate_role(net.ids["user2"], "editor", site)
        assert sent.roles_set == 0 and "opted out" in sent.skipped[0]["reason"]
        net.wp.set_role(1, net.ids["user2"], "author")
        received = engine.replicate_role(net.ids["user2"], "author", 1)
    assert site not in received.sites and received.roles_set == 3  # plain, editors, ghostly (authors: author already)
    assert net.usermeta_checksum() != snapshot


def test_excluded_and_allowed_roles(net):
    with net.engine() as engine:
        engine.change_network_options({"excluded_roles": ["editor"]})
        outcome = engine.sync_sites(None)
        assert net.members(net.ids["site_editors"]) == {net.ids["admin"], net.ids["user_ed"]}
        assert any("excluded" in s["reason"] for s in outcome.skipped)
        net.wp.set_role(1, net.ids["user2"], "editor")
        assert "excluded" in engine.replicate_role(net.ids["user2"], "editor", 1).skipped[0]["reason"]
        engine.change_network_options({"excluded_roles": [], "allowed_roles": ["author"]})
        net.wp.set_role(1, net.ids["user3"], "author")
        assert engine.replicate_role(net.ids["user3"], "author", 1).roles_set == 3  # not on editors
        with pytest.raises(InputError):
            engine.change_network_options({"excluded_roles": ["x"], "allowed_roles": ["y"]})
        with pytest.raises(InputError):
            engine.change_network_options({"missing_role": "invent"})
        with pytest.raises(NotFound):
            engine.change_network_options({"sites": {"99999": {"opt_out": True}}})


def test_a_copied_role_is_stored_as_add_role_stores_it(twins):
    a, b = twins
    source, target = b.ids["site_club"], b.ids["site_plain"]
    for side in (a, b):
        with side.engine() as engine:
            engine.sync_sites(None)
        side.wp.set_role(source, side.ids["user4"], "editor")
        side.wp.set_role(source, side.ids["user4"], "member")
    # WordPress: add_role() on the target with the source's definition, then set_role there
    a.wp.add_role(target, "member", "Club member", {"read": True, "level_1": True})
    a.wp.set_role(target, a.ids["user4"], "member")
    with b.engine() as engine:
        engine.change_network_options({"missing_role": "copy"})
        outcome = engine.replicate_role(b.ids["user4"], "member", source)
    assert outcome.sites[target]["role_copied_from"] == source
    option = "SELECT option_value FROM {p}%s_options WHERE option_name = 'wp_%s_user_roles'" % (target, target)
    assert b.query(option) == a.query(option)
    # authors already had 'member'; every other site of the user now has it too (not compared)
    rows = lambda n: [r for r in n.membership_rows() if r[0] == n.ids["user4"] and r[1].startswith(f"wp_{target}_")]
    assert rows(b) == rows(a)
    seen = b.wp.read_back(user_ids=[b.ids["user4"]], blog_ids=[target])
    assert seen["blogs"][target]["members"][b.ids["user4"]]["roles"] == ["member"]


def test_options_are_kept_in_sitemeta_for_wordpress_and_removed_by_uninstall(net):
    with net.engine() as engine:
        engine.change_network_options({"sites": {str(net.ids["site_club"]): {"opt_out": True, "role": "member"}},
                                       "excluded_roles": ["administrator"]})
        php = net.wp.eval("return get_site_option('wpmsync_options');")
        assert php["sites"][str(net.ids["site_club"])] == {"opt_out": True, "role": "member"}
        assert php["excluded_roles"] == ["administrator"]
        engine.uninstall()
    assert net.query("SELECT COUNT(*) FROM wp_sitemeta WHERE meta_key = 'wpmsync_options'")[0][0] == 0


def test_options_over_http_and_cli(net, monkeypatch):
    import json
    import subprocess
    import sys

    import azure.functions as func

    from blueprints import actions
    from conftest import ROOT

    monkeypatch.setenv("WPMSYNC_DB_NAME", net.db)
    fn = actions.network_options.build().get_user_function()
    body = json.dumps({"sites": {str(net.ids["site_club"]): {"role": "member"}}, "missing_role": "copy"}).encode()
    resp = fn(func.HttpRequest("PATCH", "http://localhost/api/options", body=body))
    assert resp.status_code == 200
    assert json.loads(resp.get_body())["options"]["sites"] == {str(net.ids["site_club"]): {"role": "member"}}
    bad = fn(func.HttpRequest("PATCH", "http://localhost/api/options", body=b'{"sites": {"abc": {}}}'))
    assert bad.status_code == 400
    shown = subprocess.run([sys.executable, "-m", "wpmsync", "options", "--json", "--db", net.db], cwd=ROOT,
                           capture_output=True, text=True, timeout=60)
    assert json.loads(shown.stdout)["options"]["missing_role"] == "copy"
    refused = subprocess.run([sys.executable, "-m", "wpmsync", "options", "--set", "{oops", "--db", net.db],
                             cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and "JSON" in refused.stderr


def _subsites(n) -> list[int]:
    return [n.ids[f"site_{s}"] for s in ("plain", "authors", "editors", "club", "ghostly")]


def test_scope_main_to_subsites_matches_wordpress_loop_over_main_site_members(twins):
    a, b = twins
    for side in (a, b):  # users 2-4 are members of the main site; the others are not
        for i in (2, 3, 4):
            side.wp.add_user_to_blog(1, side.ids[f"user{i}"], "subscriber")
    main_members = [a.ids[f"user{i}"] for i in (2, 3, 4)]
    a.wp.sync_like_plugin(blog_ids=_subsites(a), network_id=1, user_ids=main_members)
    with b.engine() as engine:
        engine.change_network_options({"scope": "main_to_subsites"})
        outcome = engine.sync_sites(None)
        assert any("main site receives no synced users" in s["reason"] for s in outcome.skipped)
        # a user created on a subsite stays there; a member of the main site goes everywhere
        new = b.wp.create_user("subsite-made")
        b.wp.add_user_to_blog(b.ids["site_club"], new, "member")
        assert engine.add_user_to_all_sites(new).added == 0
        b.wp.set_role(b.ids["site_club"], b.ids["user2"], "author")
        refused = engine.replicate_role(b.ids["user2"], "author", b.ids["site_club"])
        assert refused.roles_set == 0 and "only the main site" in refused.skipped[0]["reason"]
    a.wp.set_role(a.ids["site_club"], a.ids["user2"], "author")  # the same hand edit, not sent on
    rows = lambda n: [r for r in n.membership_rows() if r[0] in main_members + [n.ids["user5"]]]
    assert rows(b) == rows(a)


def test_scope_subsites_to_main_matches_wordpress_loop_over_subsite_members(twins):
    a, b = twins
    subsite_members = [a.ids["user1"], a.ids["user_ed"]]  # members of authors / editors
    a.wp.sync_like_plugin(blog_ids=[1], network_id=1, user_ids=subsite_members)
    with b.engine() as engine:
        engine.change_network_options({"scope": "subsites_to_main"})
        outcome = engine.sync_sites(None)
        assert set(outcome.sites) == {1} and outcome.added == 2
        b.wp.set_role(b.ids["site_authors"], b.ids["user1"], "author")
        sent = engine.replicate_role(b.ids["user1"], "author", b.ids["site_authors"])
    assert set(sent.sites) == {1}
    rows = lambda n: [r for r in n.membership_rows() if r[0] in subsite_members and r[1] in (
        "wp_capabilities", "wp_user_level", "primary_blog", "source_domain")]
    a.wp.set_role(1, a.ids["user1"], "author")
    assert rows(b) == rows(a)
