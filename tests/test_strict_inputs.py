"""Issue 11, one test per finding: what comes from outside is parsed strictly (wrong types are
refused with a 400 naming the field and write nothing), no bad input gets a 500, hooks' edge
cases, no connection detail in any answer, and a stale stored option is not fatal.

Every function is called through its real ``func.HttpRequest``, against a network built by real
WordPress; "writes nothing" is WordPress's own tables (usermeta, sitemeta, every site's options)
and ours, compared before and after.
"""
from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pytest

import test_functions
from blueprints import actions, hooks
from test_functions import SECRET, answer, call, hook_request, http
from wpmsync import signing

app = test_functions.app  # the fixture: the app on a fresh network copy and a fresh queue


@pytest.fixture(autouse=True)
def our_tables(app: Any) -> None:
    """Our own tables exist before any test's first snapshot (the first call creates them)."""
    assert answer(call(actions.settings, http("GET", "settings")))[0] == 200


def tables_now(net: Any) -> dict[str, Any]:
    """A checksum of the tables a sync could touch (usermeta, users, sitemeta, blogs, every
    site's options) and of ours, by name, in one statement."""
    like = net.prefix.replace("_", "\\_")
    names = [r[0] for r in net.query(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE() AND (table_name IN "
        "(%s, %s, %s, %s) OR table_name LIKE %s OR table_name LIKE %s)",
        tuple(net.prefix + t for t in ("usermeta", "users", "sitemeta", "blogs")) + (like + "%options", like + "wpmsync\\_%"))]
    return {r[0].split(".", 1)[1]: r[1] for r in net.query("CHECKSUM TABLE " + ", ".join(f"`{n}`" for n in names))}


def refused(net: Any, fn: Any, req: Any, field: str | None = None, status: int = 400) -> dict:
    """Call ``fn``; it must answer ``status`` with a JSON error naming ``field``, and write nothing."""
    before = tables_now(net)
    got, body = answer(call(fn, req))
    assert got == status, (got, body)
    assert body["error"] and "Traceback" not in body["error"]
    if field is not None:
        assert body.get("field") == field, body
    assert tables_now(net) == before, "a refused request wrote"
    return body


# -- wrong types reach the database ------------------------------------------------------------

def test_a_digit_string_is_not_a_list_of_ids_on_unsync_and_users_sync(app):
    members = {b: app.members(b) for b in (3, 4)}
    refused(app, actions.unsync, http("POST", "unsync", {"user_ids": "34", "blog_ids": "34"}), "user_ids")
    refused(app, actions.unsync, http("POST", "unsync", {"user_ids": [3, 4], "blog_ids": "34"}), "blog_ids")
    refused(app, actions.users_sync, http("POST", "users/sync", {"user_ids": "34", "blog_ids": [3]}), "user_ids")
    assert {b: app.members(b) for b in (3, 4)} == members


def test_a_json_object_is_not_a_list_of_its_keys(app):
    refused(app, actions.unsync, http("POST", "unsync", {"user_ids": {"3": True}, "blog_ids": [3]}), "user_ids")
    refused(app, actions.users_sync, http("POST", "users/sync", {"user_ids": [3], "blog_ids": {"3": 1}}),
            "blog_ids")
    refused(app, actions.sync, http("POST", "sync", {"blog_ids": {"3": 1}}), "blog_ids")


def test_a_digit_string_id_inside_a_list_is_refused_not_converted(app):
    refused(app, actions.users_sync, http("POST", "users/sync", {"user_ids": ["3"], "blog_ids": [3]}),
            "user_ids[0]")


def test_opt_out_takes_only_true_or_false(app):
    site = app.ids["site_plain"]
    for value in ("false", "no", 2, 1, "true", None):
        refused(app, actions.network_options,
                http("PATCH", "options", {"sites": {str(site): {"opt_out": value}}}),
                f"options.sites.{site}.opt_out")
    got, body = answer(call(actions.network_options, http("GET", "options")))
    assert got == 200 and body["options"]["sites"] == {}


def test_enums_and_role_lists_are_exact(app):
    refused(app, actions.network_options, http("PATCH", "options", {"scope": False}), "options.scope")
    refused(app, actions.network_options, http("PATCH", "options", {"scope": "ALL"}), "options.scope")
    refused(app, actions.network_options, http("PATCH", "options", {"missing_role": 0}), "options.missing_role")
    refused(app, actions.network_options, http("PATCH", "options", {"excluded_roles": ""}),
            "options.excluded_roles")
    refused(app, actions.network_options, http("PATCH", "options", {"unsync": 1}), "options.unsync")


def test_a_role_name_with_a_final_newline_is_refused(app):
    site = app.ids["site_plain"]
    refused(app, actions.network_options, http("PATCH", "options", {"sites": {str(site): {"role": "editor\n"}}}),
            f"options.sites.{site}.role")
    refused(app, actions.network_options, http("PATCH", "options", {"excluded_roles": ["editor\n"]}),
            "options.excluded_roles[0]")
    refused(app, actions.plan, http("POST", "plan", {"action": "set_role", "user_id": app.ids["user_ed"],
                                                     "blog_id": app.ids["site_editors"], "role": "editor\n"}),
            "role")


def test_a_typo_in_a_field_name_is_refused_not_read_as_sync_everything(app):
    """``blog_id`` for ``blog_ids`` would have queued a sync of every site."""
    refused(app, actions.sync, http("POST", "sync", {"blog_id": [3]}), "body.blog_id")


# -- 500 instead of 4xx ------------------------------------------------------------------------

def test_ids_given_as_a_number_null_true_or_a_float_are_400(app):
    for value in (3, None, True, 1.5):
        refused(app, actions.sync, http("POST", "sync", {"blog_ids": value}), "blog_ids")
        refused(app, actions.plan, http("POST", "plan", {"action": "sync", "blog_ids": value}), "blog_ids")
        refused(app, actions.users_sync, http("POST", "users/sync", {"user_ids": value, "blog_ids": [3]}),
                "user_ids")
        refused(app, actions.users_sync, http("POST", "users/sync", {"user_ids": [3], "blog_ids": value}),
                "blog_ids")
        refused(app, actions.unsync, http("POST", "unsync", {"user_ids": [3], "blog_ids": value}), "blog_ids")


def test_options_sites_must_be_an_object(app):
    for value in ([1, 2], "3", 3):
        refused(app, actions.network_options, http("PATCH", "options", {"sites": value}), "options.sites")


def test_a_journal_limit_in_non_ascii_digits_is_400(app):
    for limit in ("²", "١٢", "0", "501", "-1", ""):
        req = http("GET", "journal")
        req = type(req)("GET", "http://localhost:7071/api/journal", params={"limit": limit}, body=b"")
        refused(app, actions.journal, req, "limit")


def test_a_long_correlation_id_is_replaced_and_the_action_still_runs(app):
    """The trigger column is VARCHAR(255): a 300-character header reached it (1406 in strict mode)."""
    long_id = "c" * 300
    req = http("POST", "users/sync", {"user_ids": [app.ids["user3"]], "blog_ids": [app.ids["site_plain"]]},
               headers={"x-correlation-id": long_id})
    got, body = answer(call(actions.users_sync, req))
    assert got == 200 and body["added"] == 1
    journal = answer(call(actions.journal, http("GET", "journal")))[1]["changes"]
    assert long_id not in json.dumps(journal)
    bad = http("POST", "users/sync", {"user_ids": "3", "blog_ids": [3]}, headers={"x-correlation-id": "a\nb"})
    assert refused(app, actions.users_sync, bad)["correlation_id"] != "a\nb"


def test_a_hook_timestamp_in_non_ascii_digits_is_401(app):
    body = json.dumps({"event": "user_created", "event_id": uuid.uuid4().hex, "data": {"user_id": 3}}).encode()
    for ts in ("²", "١٢", "١٧٠٠٠٠٠٠٠٠"):
        # sign() refuses such a timestamp itself; any well-formed signature will do.
        req = http("POST", "hooks", body, headers={signing.TIMESTAMP_HEADER: ts,
                                                   signing.SIGNATURE_HEADER: "sha256=" + "0" * 64})
        refused(app, hooks.hook, req, status=401)


def test_a_lone_surrogate_in_event_is_400(app):
    ts = str(int(time.time()))
    body = b'{"event": "user_created\\ud800", "event_id": "' + uuid.uuid4().hex.encode() + b'", "data": {"user_id": 3}}'
    req = http("POST", "hooks", body, headers={signing.TIMESTAMP_HEADER: ts,
                                               signing.SIGNATURE_HEADER: signing.sign(SECRET, ts, body)})
    refused(app, hooks.hook, req, "event")


# -- hook edge cases ---------------------------------------------------------------------------

def test_an_event_id_with_a_final_newline_is_refused(app):
    refused(app, hooks.hook, hook_request("user_added", {"user_id": 3, "blog_id": 3}, event_id="abcdefgh\n"),
            "event_id")


def test_an_upper_case_event_id_does_not_replay_its_lower_case_twin(app):
    event_id = "abc" + uuid.uuid4().hex
    first = answer(call(hooks.hook, hook_request("user_added", {"user_id": app.ids["user3"], "blog_id": 3},
                                                 event_id=event_id)))
    assert first[0] == 200 and "replayed" not in first[1]
    refused(app, hooks.hook, hook_request("user_added", {"user_id": app.ids["user3"], "blog_id": 3},
                                          event_id=event_id.upper()), "event_id")


def test_with_its_switch_off_a_malformed_hook_is_still_refused(app):
    assert answer(call(actions.settings, http("GET", "settings")))[1]["settings"]["new_user"] is False
    refused(app, hooks.hook, hook_request("user_created", {"user_id": "3"}), "data.user_id")
    refused(app, hooks.hook, hook_request("role_changed", {"user_id": 3, "blog_id": 3, "role": "x\n"}),
            "data.role")
    got, body = answer(call(hooks.hook, hook_request("user_created", {"user_id": app.ids["user3"]})))
    assert got == 200 and body["status"] == "ignored"


def test_user_created_blog_id_is_checked(app):
    refused(app, hooks.hook, hook_request("user_created", {"user_id": app.ids["user3"], "blog_id": "x"}),
            "data.blog_id")
    refused(app, hooks.hook, hook_request("user_created", {"user_id": app.ids["user3"], "blog_id": 0}),
            "data.blog_id")


def test_a_refused_hooks_replay_answers_the_first_status_and_body(app):
    event_id = "evt-" + uuid.uuid4().hex
    data = {"user_id": 99999, "blog_id": app.ids["site_plain"]}  # no such user: 404
    first_status, first = answer(call(hooks.hook, hook_request("user_added", data, event_id=event_id)))
    again_status, again = answer(call(hooks.hook, hook_request("user_added", data, event_id=event_id)))
    assert first_status == again_status == 404
    assert again["error"] == first["error"] and again.get("replayed") is True


# -- information leak --------------------------------------------------------------------------

def test_a_manual_action_with_the_database_down_names_no_connection_detail(app, monkeypatch):
    monkeypatch.setenv("WPMSYNC_DB_PORT", "3")  # nothing listens there
    got, body = answer(call(actions.sync, http("POST", "sync", {})))
    text = json.dumps(body).replace(body["correlation_id"], "")
    assert got == 503 and body["error"].startswith("the WordPress database cannot be reached")
    for detail in (app.db, "root", "127.0.0.1", ":3", "2003"):
        assert detail not in text, detail


# -- one stale option stops everything ---------------------------------------------------------

def test_an_opted_out_site_deleted_later_is_ignored_and_reported_not_fatal(app):
    site = app.ids["site_plain"]
    got, _ = answer(call(actions.network_options, http("PATCH", "options", {"sites": {str(site): {"opt_out": True}}})))
    assert got == 200
    app.wp.eval("wpmu_delete_blog($args['site'], true); return true;", {"site": site})  # WordPress deletes it

    got, health = answer(call(actions.health, http("GET", "health")))
    assert got == 200 and health["status"] == "ok"
    assert any(f"site {site}" in p for p in health["option_problems"])
    got, body = answer(call(actions.network_options, http("GET", "options")))
    assert got == 200 and body["options"]["sites"] == {} and any(f"site {site}" in p for p in body["problems"])
    # Hooks, actions and the next save go on; the save drops the stale entry.
    got, body = answer(call(hooks.hook, hook_request("user_added", {"user_id": app.ids["user3"],
                                                                    "blog_id": app.ids["site_authors"]})))
    assert got == 200, body
    got, body = answer(call(actions.network_options, http("PATCH", "options", {"unsync": False})))
    assert got == 200 and body["problems"] == []


def test_options_stored_under_the_old_role_rule_are_kept_and_reported_not_fatal(app):
    """The previous rule took ``editor\\n`` and names up to 100 characters, and stored them; read
    back they must neither stop every call nor be dropped (an excluded role stays excluded)."""
    from wpmsync import phpserial
    old = {"sites": {}, "excluded_roles": ["editor\n", "r" * 80], "allowed_roles": [], "missing_role": "skip",
           "scope": "all", "unsync": False}
    app.query("INSERT INTO {p}sitemeta (site_id, meta_key, meta_value) VALUES (1, 'wpmsync_options', %s)",
              (phpserial.dumps(old),))
    got, health = answer(call(actions.health, http("GET", "health")))
    assert got == 200 and len(health["option_problems"]) == 2
    got, body = answer(call(actions.network_options, http("GET", "options")))
    assert got == 200 and body["options"]["excluded_roles"] == sorted(old["excluded_roles"])
    # A save that names valid roles fixes it.
    got, body = answer(call(actions.network_options, http("PATCH", "options", {"excluded_roles": ["editor"]})))
    assert got == 200 and body["problems"] == [] and body["options"]["excluded_roles"] == ["editor"]


def test_a_site_whose_roles_cannot_be_read_does_not_turn_a_saved_patch_into_a_500(app):
    site = app.ids["site_plain"]
    app.query(f"UPDATE {{p}}{site}_options SET option_value = 'garbage' WHERE option_name = %s",
              (f"{app.prefix}{site}_user_roles",))
    got, body = answer(call(actions.network_options,
                            http("PATCH", "options", {"sites": {str(site): {"role": "editor"}}})))
    assert got == 200 and any(f"site {site}: its roles cannot be read" in p for p in body["problems"])
    got, health = answer(call(actions.health, http("GET", "health")))
    assert got == 200 and health["option_problems"]
