"""The rules every operation keeps: idempotence, removals, validation, switches, uninstall."""
from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import ROOT
from wpmsync import Config, Engine
from wpmsync.errors import BrokenOption, ConfigError, InputError, NotFound


def test_second_run_writes_nothing_and_no_duplicates(net):
    with net.engine(batch_size=3) as engine:
        first = engine.sync_sites(None)
        snapshot = net.usermeta_checksum()
        second = engine.sync_sites(None)
        again = engine.add_user_to_all_sites(net.ids["user4"])
    assert first.added > 0 and second.added == 0 and again.added == 0
    assert net.usermeta_checksum() == snapshot
    assert net.duplicates() == []


def test_plan_writes_nothing_and_predicts_the_sync(net):
    snapshot = net.usermeta_checksum()
    with net.engine() as engine:
        plan = engine.sync_sites(None, dry_run=True)
        assert net.usermeta_checksum() == snapshot
        done = engine.sync_sites(None)
    assert plan.dry_run and plan.added == done.added
    assert {b: e["added"] for b, e in plan.sites.items()} == {b: e["added"] for b, e in done.sites.items()}
    assert plan.sites[1]["user_ids"] == done.sites[1]["user_ids"][:5]


def test_removed_users_stay_removed_until_forced(net):
    uid, site = net.ids["user5"], net.ids["site_plain"]
    with net.engine() as engine:
        engine.record_removal(uid, site)
        engine.sync_sites(None)
        assert uid not in net.members(site)
        engine.add_user_to_all_sites(uid)
        assert uid not in net.members(site)
        outcome = engine.sync_sites([site], force=True)
        assert uid in net.members(site) and outcome.removals_cleared == 1
    # the record is the PHP plugin's usermeta, cleared once the user is back
    assert net.query("SELECT COUNT(*) FROM wp_usermeta WHERE meta_key = 'wpmus_removed_from_blogs'")[0][0] == 0


def test_removal_record_uses_the_plugin_format(net):
    uid = net.ids["user6"]
    with net.engine() as engine:
        engine.record_removal(uid, net.ids["site_club"])
        engine.record_removal(uid, net.ids["site_plain"])
        engine.record_removal(uid, net.ids["site_plain"])
        assert engine.forget_removal(uid, net.ids["site_club"]) == [net.ids["site_plain"]]
    stored = net.wp.eval("return get_user_meta($args, 'wpmus_removed_from_blogs', true);", uid)
    assert stored == [net.ids["site_plain"]]


@pytest.mark.parametrize("call, error", [
    (lambda e, n: e.add_user_to_all_sites("abc"), InputError),
    (lambda e, n: e.add_user_to_all_sites(99999), NotFound),
    (lambda e, n: e.add_user_to_all_sites(n.ids["user_netwo"]), NotFound),
    (lambda e, n: e.add_all_users_to_site(99999), NotFound),
    (lambda e, n: e.add_all_users_to_site(n.ids["site_net2_second"]), NotFound),
    (lambda e, n: e.add_all_users_to_site(n.ids["site_archived"]), InputError),
    (lambda e, n: e.sync_sites([]), InputError),
    (lambda e, n: e.sync_sites([str(n.ids["site_plain"]), "x"]), InputError),
    (lambda e, n: e.sync_sites([n.ids["net2_main"]]), NotFound),
    (lambda e, n: e.replicate_role(n.ids["user2"], "edit'or", 1), InputError),
    (lambda e, n: e.replicate_role(n.ids["user2"], "editor", n.ids["site_plain"]), InputError),
    (lambda e, n: e.change_settings(new_user="maybe"), InputError),
    (lambda e, n: e.change_settings(new_user="on"), InputError),  # JSON true / false only
    (lambda e, n: e.change_settings(colour="on"), InputError),
])
def test_bad_input_is_a_clear_error_and_writes_nothing(net, call, error):
    snapshot = net.usermeta_checksum()
    with net.engine() as engine:
        with pytest.raises(error) as info:
            call(engine, net)
    assert str(info.value)
    assert net.usermeta_checksum() == snapshot


def test_broken_roles_option_names_the_site_and_writes_nothing(net):
    site = net.ids["site_club"]
    net.query(f"UPDATE wp_{site}_options SET option_value = 'a:1:{{s:3:\"bad' "
              f"WHERE option_name = 'wp_{site}_user_roles'")
    snapshot = net.usermeta_checksum()
    with net.engine() as engine:
        with pytest.raises(BrokenOption, match=f"site {site}"):
            engine.sync_sites(None)
    assert net.usermeta_checksum() == snapshot


def test_a_site_without_default_role_or_subscriber_is_skipped_and_reported(net):
    site = net.ids["site_ghostly"]
    net.wp.remove_role(site, "subscriber")
    with net.engine() as engine:
        outcome = engine.sync_sites(None)
    assert any(s.get("blog_id") == site and "subscriber" in s["reason"] for s in outcome.skipped)
    assert net.members(site) <= {net.ids["admin"]}


def test_role_ceiling_needs_a_super_admin_actor(net):
    uid, site = net.ids["user2"], net.ids["site_plain"]
    with net.engine() as engine:
        engine.sync_sites(None)
        net.wp.set_role(site, uid, "administrator")
        snapshot = net.usermeta_checksum()
        refused = engine.replicate_role(uid, "administrator", site, actor=net.ids["user3"])
        assert refused.roles_set == 0 and "ceiling" in refused.skipped[0]["reason"]
        assert net.usermeta_checksum() == snapshot
        allowed = engine.replicate_role(uid, "administrator", site, actor=net.ids["user_boss"])
    assert allowed.roles_set == 5  # main, authors, editors, club, ghostly
    seen = net.wp.read_back(user_ids=[uid], blog_ids=[1, net.ids["site_club"]])
    assert seen["blogs"][1]["members"][uid]["roles"] == ["administrator"]
    assert net.query("SELECT meta_value FROM wp_usermeta WHERE user_id = %s AND meta_key = 'wp_user_level'",
                     (uid,)) == [("10",)]


def test_role_replication_never_touches_a_super_admin_or_adds_members(net):
    with net.engine() as engine:
        boss = engine.replicate_role(net.ids["user_boss"], "editor", 1)
        assert boss.roles_set == 0 and "super admin" in boss.skipped[0]["reason"]
        members_before = net.members(1)
        engine.replicate_role(net.ids["user1"], "contributor", net.ids["site_authors"])
        assert net.members(1) == members_before  # user1 is not on the main site: not added


def test_switches_live_in_sitemeta_under_the_plugin_keys(net):
    with net.engine() as engine:
        assert engine.settings() == {"new_user": False, "new_site": False, "role_sync": False}
        assert engine.change_settings(new_user=True, role_sync=True) == {
            "new_user": True, "new_site": False, "role_sync": True}
        engine.change_settings(new_user=True)
        engine.change_settings(role_sync=False)
    rows = net.query("SELECT meta_key, meta_value FROM wp_sitemeta WHERE site_id = 1 AND meta_key LIKE 'wpmus%%' "
                     "ORDER BY meta_key")
    assert rows == [("wpmus_newUserSync", "yes"), ("wpmus_setUserRoleSync", "")]
    php = net.wp.eval("return [get_site_option('wpmus_newUserSync'), get_site_option('wpmus_setUserRoleSync')];")
    assert php == ["yes", ""]


def test_uninstall_removes_config_only(net):
    with net.engine() as engine:
        engine.sync_sites(None)
        engine.change_settings(new_user=True, new_site=True, role_sync=True)
        engine.record_removal(net.ids["user2"], net.ids["site_plain"])
        memberships = [r for r in net.membership_rows()]
        roles = net.query("SELECT option_value FROM wp_options WHERE option_name = 'wp_user_roles'")
        result = engine.uninstall()
    assert result["settings_deleted"] == 3  # ... and our own tables, the undo journal included
    assert result["tables_dropped"] == ["wp_wpmsync_changes", "wp_wpmsync_events", "wp_wpmsync_job_batches",
                                        "wp_wpmsync_jobs", "wp_wpmsync_journal", "wp_wpmsync_leases",
                                        "wp_wpmsync_outbox", "wp_wpmsync_own_rows", "wp_wpmsync_watermarks"]
    assert net.membership_rows() == memberships
    assert net.query("SELECT option_value FROM wp_options WHERE option_name = 'wp_user_roles'") == roles
    assert net.query("SELECT COUNT(*) FROM wp_sitemeta WHERE meta_key LIKE 'wpmus%%'")[0][0] == 0
    assert net.query("SELECT COUNT(*) FROM wp_usermeta WHERE meta_key = 'wpmus_removed_from_blogs'")[0][0] == 0


@pytest.mark.parametrize("env, message", [
    ({"WPMSYNC_TABLE_PREFIX": "wp_; DROP TABLE x"}, "WPMSYNC_TABLE_PREFIX"),
    ({"WPMSYNC_DB_PORT": "eighty"}, "WPMSYNC_DB_PORT"),
    ({"WPMSYNC_NETWORK_ID": "0"}, "WPMSYNC_NETWORK_ID"),
    ({"WPMSYNC_DB_SSL_CA": "/nonexistent/ca.pem"}, "WPMSYNC_DB_SSL_CA"),
])
def test_bad_settings_are_one_clear_line(env, message):
    with pytest.raises(ConfigError, match=message):
        Config.from_env(env)


def test_tls_defaults_on_for_remote_hosts_only():
    assert Config.from_env({"WPMSYNC_DB_HOST": "wp.mysql.database.azure.com"}).ssl is True
    assert Config.from_env({}).ssl is False


def test_unknown_network_and_non_multisite_prefix_are_clear(net):
    with pytest.raises(ConfigError, match="network 7"):
        Engine(net.config(network_id=7))
    with pytest.raises(ConfigError, match="no WordPress Multisite tables"):
        Engine(net.config(table_prefix="nope_"))


def test_each_network_syncs_its_own_sites_and_users(net):
    with net.engine(network_id=1) as engine:
        engine.sync_sites(None)
    assert net.ids["user_netwo"] not in net.members(1)  # a user of network 2 only
    network1 = net.membership_rows()
    net2_before = net.members(net.ids["net2_main"])  # its creator, the admin
    with net.engine(network_id=2) as engine:
        outcome = engine.sync_sites(None)
    assert set(outcome.sites) == {net.ids["net2_main"]}  # 'second' has user_netwo already
    assert net.members(net.ids["net2_main"]) - net2_before == {net.ids["user_netwo"]}  # not network 1's
    n2_keys = (f"wp_{net.ids['net2_main']}_capabilities", f"wp_{net.ids['net2_main']}_user_level")
    assert [r for r in net.membership_rows() if r[1] not in n2_keys] == [
        r for r in network1 if r[1] not in n2_keys]


def cli(net, *args):
    return subprocess.run([sys.executable, "-m", "wpmsync", *args, "--db", net.db], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def test_cli_json_and_errors(net):
    import json
    plan = cli(net, "plan", "--json")
    assert plan.returncode == 0, plan.stderr
    assert json.loads(plan.stdout)["added"] > 0
    done = cli(net, "sync-sites", str(net.ids["site_authors"]), "--json")
    assert json.loads(done.stdout)["sites"][str(net.ids["site_authors"])]["added"] > 0
    human = cli(net, "add-user", str(net.ids["user3"]))
    assert human.returncode == 0 and "added" in human.stdout and "progress" not in human.stdout
    bad = cli(net, "add-site", "12abc")
    assert bad.returncode == 2 and bad.stderr.startswith("error: blog_id") and "Traceback" not in bad.stderr
    empty = cli(net, "sync-sites")
    assert empty.returncode == 2 and "blog_ids is empty" in empty.stderr
    switches = cli(net, "settings", "--new-site", "on", "--json")
    assert json.loads(switches.stdout)["settings"]["new_site"] is True
    role = cli(net, "set-role", str(net.ids["user3"]), "editor", "--from-site", "1")
    assert role.returncode == 2 and "does not have role" in role.stderr


def test_every_operation_has_a_dry_run_that_writes_nothing(net):
    snapshot = net.usermeta_checksum()
    with net.engine() as engine:
        user = engine.add_user_to_all_sites(net.ids["user2"], dry_run=True)
        site = engine.add_all_users_to_site(net.ids["site_club"], dry_run=True)
        assert net.usermeta_checksum() == snapshot
        assert user.dry_run and user.added == 6 and set(user.sites) == {
            1, net.ids["site_plain"], net.ids["site_authors"], net.ids["site_editors"],
            net.ids["site_club"], net.ids["site_ghostly"]}
        assert site.added == 9 and site.sites[net.ids["site_club"]]["user_ids"] == sorted(
            net.ids[f"user{i}"] for i in range(1, 9))[:5] and len(site.sites) == 1
        engine.sync_sites(None)
        net.wp.set_role(1, net.ids["user2"], "author")
        snapshot = net.usermeta_checksum()
        role = engine.replicate_role(net.ids["user2"], "author", 1, dry_run=True)
        assert net.usermeta_checksum() == snapshot
        assert role.roles_set == 4 and engine.replicate_role(net.ids["user2"], "author", 1).roles_set == 4
