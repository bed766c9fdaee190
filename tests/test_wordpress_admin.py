"""The mu-plugin's network screens of issue 6 against real WordPress, at the PHP level: the
network options form, bulk sync / unsync, the site checklist of the user screen and the undo
journal. Outgoing HTTP is answered and recorded by the test mu-plugin of
``test_wordpress_plugin.py`` (``Plugged``), so each test sees exactly what would reach the
functions, and that refused forms (forged nonce, missing capability) send nothing.

The browser tests of the same screens, against the real functions, are in ``test_e2e_screens.py``.
"""
from __future__ import annotations

import json
import re
from typing import Any

import pytest

from test_wordpress_plugin import ENDPOINT, KEY, SECRET, Plugged  # noqa: F401 - Plugged: the fixture's type

CHANGE = "c0ffee00c0ffee00c0ffee00c0ffee00"

# One admin request: become the user, POST (nonce made for `nonce` unless given) to the screen's
# load handler, then render it, as WordPress does for settings.php?page=... / users.php?page=...
SCREEN = """
    require_once ABSPATH . 'wp-admin/includes/plugin.php';
    wp_set_current_user(isset($args['as']) ? $args['as'] : $args['admin']);
    $screen = Wpmsync_Plugin::instance()->admin->screens[$args['screen']];
    $_GET = isset($args['get']) ? $args['get'] : [];
    $_POST = $_REQUEST = [];
    $_SERVER['REQUEST_METHOD'] = null === $args['post'] ? 'GET' : 'POST';
    if (null !== $args['post']) {
        $_POST = $args['post'];
        if (!isset($_POST['_wpnonce'])) { $_POST['_wpnonce'] = wp_create_nonce($args['nonce']); }
        $_REQUEST = $_POST;
        $screen->handle();
    }
    ob_start(); $screen->render(); return ob_get_clean();"""


@pytest.fixture
def wp(net, tmp_path) -> Plugged:
    return Plugged(net, tmp_path)


def screen(wp: Plugged, name: str, post: dict | None = None, nonce: str = "", **args: Any) -> str:
    return wp.run(SCREEN, screen=name, post=post, nonce=nonce, **args)[0]


def sent(wp: Plugged, method: str | None = None) -> list[tuple[str, str, Any]]:
    """(method, route, JSON body) of every call to the functions; the key always in the header,
    and who acts (the journal's label), as "login (user N)"."""
    out = []
    for r in wp.requests():
        assert r["url"].startswith(ENDPOINT + "/") and r["headers"]["x-functions-key"] == KEY
        assert re.fullmatch(r"[\x20-\x7e]+ \(user [1-9][0-9]*\)", r["headers"]["X-Wpmsync-Actor"]), r["headers"]
        if method is None or r["method"] == method:
            out.append((r["method"], r["url"][len(ENDPOINT) + 1:], json.loads(r["body"]) if r["body"] else None))
    return out


# -- network options --------------------------------------------------------------------------

OPTIONS = {"sites": {}, "excluded_roles": ["administrator"], "allowed_roles": [], "missing_role": "copy",
           "scope": "main_to_subsites", "unsync": True}


def test_options_form_shows_what_the_functions_hold(wp):
    club, plain = wp.ids["site_club"], wp.ids["site_plain"]
    options = {**OPTIONS, "sites": {str(club): {"role": "member"}, str(plain): {"opt_out": True}}}
    wp.configure(responses={"GET options": {"status": 200, "body": {"options": options}}})
    html = screen(wp, "options")
    assert sent(wp) == [("GET", "options", None)]
    assert 'id="wpmsync-scope-main_to_subsites" value="main_to_subsites"  checked' in html
    assert 'id="wpmsync-filter-excluded" value="excluded"  checked' in html
    assert 'id="wpmsync-filter-role-administrator" value="administrator"  checked' in html
    assert 'id="wpmsync-unsync" value="1"  checked' in html
    assert '<option value="copy"  selected' in html
    assert f'id="wpmsync-opt-out-{plain}" value="1"  checked' in html
    assert f'id="wpmsync-opt-out-{club}" value="1"  />' in html
    # The club's roles are read from that site: its custom role "member" is offered and chosen.
    club_select = html.split(f'id="wpmsync-site-role-{club}"')[1].split("</select>")[0]
    assert '<option value="member"  selected' in club_select and "Site default (Club member)" in club_select
    plain_select = html.split(f'id="wpmsync-site-role-{plain}"')[1].split("</select>")[0]
    assert 'value="member"' not in plain_select and "Site default (Subscriber)" in plain_select
    assert f'id="wpmsync-site-row-{wp.ids["site_archived"]}"' not in html  # live sites only
    assert KEY not in html and SECRET not in html


def test_options_form_warns_of_stored_options_not_applied(wp):
    """A site opted out and deleted later: the functions ignore its entry and say so (issue 11)."""
    problem = "site 6 no longer exists in this network: its options are ignored"
    wp.configure(responses={"GET options": {"status": 200, "body": {"options": OPTIONS, "problems": [problem]}}})
    html = screen(wp, "options")
    assert "notice-warning" in html and f"Stored option not applied: {problem}" in html


def test_a_fault_of_the_functions_is_shown_by_its_correlation_id_not_its_words(wp):
    wp.configure(responses={"GET options": {"status": 503, "body": {
        "error": "cannot connect to MySQL root@10.0.0.4:3306/wordpress", "correlation_id": "c0ffee42"}}})
    html = screen(wp, "options")
    assert "HTTP 503" in html and "c0ffee42" in html
    assert "10.0.0.4" not in html and "root@" not in html


def test_options_save_patches_the_functions(wp):
    club, plain = wp.ids["site_club"], wp.ids["site_plain"]
    saved = {**OPTIONS, "sites": {str(club): {"role": "member", "opt_out": True}}}
    wp.configure(responses={"PATCH options": {"status": 200, "body": {"options": saved}}})
    html = screen(wp, "options", nonce="wpmsync_save_options", post={
        "wpmsync_scope": "main_to_subsites", "wpmsync_missing_role": "copy", "wpmsync_unsync": "1",
        "wpmsync_role_filter": "allowed", "wpmsync_filter_roles": ["editor", "author"],
        "wpmsync_site_ids": [str(plain), str(club)],
        "wpmsync_site": {str(club): {"opt_out": "1", "role": "member"}, str(plain): {"role": ""}}})
    (method, route, body), = sent(wp)  # rendered from the PATCH answer: no second GET
    assert (method, route) == ("PATCH", "options")
    assert body == {"scope": "main_to_subsites", "missing_role": "copy", "unsync": True, "excluded_roles": [],
                    "allowed_roles": ["editor", "author"],
                    "sites": {str(plain): {}, str(club): {"opt_out": True, "role": "member"}}}
    assert "notice-success" in html and "Options saved." in html
    assert f'id="wpmsync-opt-out-{club}" value="1"  checked' in html


def test_options_refused_by_the_functions_shows_the_error_and_the_posted_form(wp):
    club = wp.ids["site_club"]
    wp.configure(responses={
        "PATCH options": {"status": 400, "body": {"error": "role 'nope' does not exist on site 5",
                                                  "correlation_id": "corr-1"}},
        "GET options": {"status": 200, "body": {"options": OPTIONS}}})
    html = screen(wp, "options", nonce="wpmsync_save_options", post={
        "wpmsync_scope": "all", "wpmsync_missing_role": "skip", "wpmsync_role_filter": "none",
        "wpmsync_site_ids": [str(club)], "wpmsync_site": {str(club): {"role": "nope"}}})
    assert [m for m, _, _ in sent(wp)] == ["PATCH", "GET"]
    assert "notice-error" in html and "The options were not saved: HTTP 400" in html
    assert "role &#039;nope&#039; does not exist on site 5" in html and "corr-1" in html
    # The form shows what was posted (to correct it), not a silently different state.
    assert 'id="wpmsync-scope-all" value="all"  checked' in html
    assert '<option value="nope" selected="selected">' in html


@pytest.mark.parametrize("case", ["forged", "capability"])
def test_options_refusals_send_nothing(wp, case):
    post = {"wpmsync_scope": "all", "wpmsync_site_ids": [], "_wpnonce": "forged"} if case == "forged" else \
        {"wpmsync_scope": "all"}
    who = {"as": wp.ids["user2"]} if case == "capability" else {}
    with pytest.raises(Exception, match="wp_die"):
        screen(wp, "options", nonce="wpmsync_save_options", post=post, **who)
    assert sent(wp) == []


# -- bulk sync / unsync -----------------------------------------------------------------------

def bulk_post(wp: Plugged, action: str, **extra: Any) -> dict[str, Any]:
    return {"wpmsync_action": action, "wpmsync_users": [str(wp.ids["user1"])],
            "wpmsync_pick": [str(wp.ids["user3"])],
            "wpmsync_sites": [str(wp.ids["site_plain"]), str(wp.ids["site_club"])], **extra}


def test_bulk_search_lists_network_users_and_keeps_the_selection(wp):
    html = screen(wp, "bulk", nonce="wpmsync_bulk", post={
        "wpmsync_action": "search", "wpmsync_search": "ed", "wpmsync_users": [str(wp.ids["user2"])],
        "wpmsync_pick": [str(wp.ids["user4"])], "wpmsync_sites": [str(wp.ids["site_club"])]})
    assert sent(wp) == []  # searching and picking call nothing
    results = html.split('id="wpmsync-user-results"')[1].split("</table>")[0]
    assert f'id="wpmsync-pick-{wp.ids["user_ed"]}"' in results  # login "ed"
    assert f'id="wpmsync-pick-{wp.ids["user2"]}"' not in results
    chips = html.split('id="wpmsync-selected-users"')[1].split("</ul>")[0]
    for uid in (wp.ids["user2"], wp.ids["user4"]):
        assert f'name="wpmsync_users[]" value="{uid}"' in chips
    assert f'id="wpmsync-bulk-site-{wp.ids["site_club"]}" value="{wp.ids["site_club"]}"  checked' in html
    assert f'id="wpmsync-bulk-site-{wp.ids["site_deleted"]}"' not in html
    # An e-mail matches as well.
    html = screen(wp, "bulk", nonce="wpmsync_bulk", post={"wpmsync_action": "search", "wpmsync_search": "example"})
    assert 'users found' in html and "No users found." not in html


def test_bulk_search_pages(wp):
    html = screen(wp, "bulk")  # GET: every network user, 20 a page
    assert 'id="wpmsync-results-next"' not in html and "page 1 of 1" in html


@pytest.mark.parametrize("action,route,dry_run", [
    ("sync", "users/sync", False), ("preview_sync", "users/sync", True),
    ("unsync", "unsync", False), ("preview_unsync", "unsync", True)])
def test_bulk_actions_call_the_functions(wp, action, route, dry_run):
    plain, club = wp.ids["site_plain"], wp.ids["site_club"]
    answer = {"dry_run": dry_run, "added": 0, "sites": {str(plain): {"added": 2, "removed": 2, "roles_set": 0,
                                                                      "user_ids": [wp.ids["user1"], wp.ids["user3"]]}},
              "skipped": [{"blog_id": club, "reason": "site opted out of syncing"}]}
    if not dry_run:
        answer["job_id"] = CHANGE
    wp.configure(responses={f"POST {route}": {"status": 200, "body": answer}})
    html = screen(wp, "bulk", nonce="wpmsync_bulk", post=bulk_post(wp, action))
    (method, called, body), = sent(wp)
    expected = {"user_ids": [wp.ids["user1"], wp.ids["user3"]], "blog_ids": [plain, club]}
    if dry_run:
        expected["dry_run"] = True
    assert (method, called, body) == ("POST", route, expected)
    assert 'id="wpmsync-outcome"' in html and f"site {club}: site opted out of syncing" in html
    assert ("Preview (nothing changed)" in html) is dry_run
    assert (f'name="wpmsync_job_id" value="{CHANGE}"' in html) is (not dry_run)  # the undo buttons
    chips = html.split('id="wpmsync-selected-users"')[1].split("</ul>")[0]
    assert f'value="{wp.ids["user3"]}"' in chips  # the picked user joined the selection


def test_bulk_force_and_errors(wp):
    wp.configure(responses={"POST users/sync": {"status": 404, "body": {"error": "unknown user 999999"}}})
    html = screen(wp, "bulk", nonce="wpmsync_bulk", post=bulk_post(wp, "sync", wpmsync_force="1"))
    (_, _, body), = sent(wp)
    assert body["force"] is True
    assert "notice-error" in html and "HTTP 404" in html and "unknown user 999999" in html
    assert 'id="wpmsync-outcome"' not in html
    html = screen(wp, "bulk", nonce="wpmsync_bulk", post={"wpmsync_action": "sync",
                                                          "wpmsync_users": [str(wp.ids["user1"])]})
    assert sent(wp) == [] and "Pick at least one user and one site." in html


@pytest.mark.parametrize("case", ["forged", "capability", "wrong-nonce-action"])
def test_bulk_refusals_send_nothing(wp, case):
    post = bulk_post(wp, "sync")
    nonce = "wpmsync_bulk"
    who: dict[str, Any] = {}
    if case == "forged":
        post["_wpnonce"] = "forged"
    elif case == "capability":
        who = {"as": wp.ids["user2"]}
    else:
        nonce = "wpmsync_save_options"  # a nonce of another form
    with pytest.raises(Exception, match="wp_die"):
        screen(wp, "bulk", nonce=nonce, post=post, **who)
    assert sent(wp) == []


# -- site checklist of the user screen ----------------------------------------------------------

USER_SCREEN = """
    define('WP_NETWORK_ADMIN', $args['network_admin']);
    wp_set_current_user(isset($args['as']) ? $args['as'] : $args['admin']);
    $user = get_userdata($args['user']);
    if ($args['post'] !== null) {
        $_POST = $args['post'];
        $_POST['_wpmsync_user_sites_nonce'] = isset($args['post']['_wpmsync_user_sites_nonce'])
            ? $args['post']['_wpmsync_user_sites_nonce'] : wp_create_nonce('wpmsync_user_sites_' . $args['user']);
        do_action('edit_user_profile_update', $args['user']);
    }
    ob_start(); do_action('network_admin_notices'); $notice = ob_get_clean();
    ob_start(); do_action('edit_user_profile', $user); $form = ob_get_clean();
    return [$notice, $form];"""


def user_screen(wp: Plugged, post: dict | None = None, network_admin: bool = True, **args: Any) -> tuple[str, str]:
    return tuple(wp.run(USER_SCREEN, post=post, network_admin=network_admin, **args)[0])


def test_user_checklist_shows_memberships(wp):
    notice, form = user_screen(wp, user=wp.ids["user_ed"])
    assert notice == "" and sent(wp) == []
    assert f'id="wpmsync-user-site-{wp.ids["site_editors"]}" value="{wp.ids["site_editors"]}"  checked' in form
    assert f'id="wpmsync-user-site-{wp.ids["site_plain"]}" value="{wp.ids["site_plain"]}"  />' in form
    assert f'wpmsync-user-site-{wp.ids["site_spammy"]}' not in form
    # Not on a site's user screen, and not for an admin without manage_network_users.
    assert user_screen(wp, user=wp.ids["user_ed"], network_admin=False)[1] == ""
    assert user_screen(wp, user=wp.ids["user_ed"], **{"as": wp.ids["user2"]})[1] == ""


def test_user_checklist_save_sends_the_difference(wp):
    ed, plain, editors, club = wp.ids["user_ed"], wp.ids["site_plain"], wp.ids["site_editors"], wp.ids["site_club"]
    wp.configure(responses={
        "POST users/sync": {"status": 200, "body": {"sites": {str(plain): {"added": 1, "user_ids": [ed]},
                                                              str(club): {"added": 0, "user_ids": []}},
                                                    "skipped": [{"blog_id": club, "reason": "site opted out of syncing"}],
                                                    "job_id": CHANGE}},
        "POST unsync": {"status": 200, "body": {"sites": {str(editors): {"removed": 1, "user_ids": [ed]}}}}})
    notice, form = user_screen(wp, user=ed, post={"wpmsync_user_sites_shown": "1",
                                                  "wpmsync_user_sites": [str(plain), str(club)]})
    assert sent(wp) == [
        ("POST", "users/sync", {"user_ids": [ed], "blog_ids": [plain, club], "force": True}),
        ("POST", "unsync", {"user_ids": [ed], "blog_ids": [editors]}),
    ]
    assert "notice-success" in notice and "Added to wp.test/plain" in notice.replace("localhost", "wp.test")
    assert "opted out" in notice and CHANGE in notice and "Removed from" in notice
    # WordPress itself changed nothing (the functions were only simulated here).
    assert wp.net.members(editors) >= {ed} and ed not in wp.net.members(plain)
    # The notice is shown once.
    assert user_screen(wp, user=ed)[0] == ""


def test_user_checklist_nothing_changed_sends_nothing(wp):
    ed, editors = wp.ids["user_ed"], wp.ids["site_editors"]
    user_screen(wp, user=ed, post={"wpmsync_user_sites_shown": "1", "wpmsync_user_sites": [str(editors)]})
    assert sent(wp) == []
    user_screen(wp, user=ed, post={"some_core_field": "x"})  # a form without our checklist
    assert sent(wp) == []


def test_user_checklist_refusals_send_nothing(wp):
    ed, plain = wp.ids["user_ed"], wp.ids["site_plain"]
    post = {"wpmsync_user_sites_shown": "1", "wpmsync_user_sites": [str(plain)]}
    notice, _ = user_screen(wp, user=ed, post={**post, "_wpmsync_user_sites_nonce": "forged"})
    assert sent(wp) == [] and "notice-error" in notice and "form has expired" in notice
    # A nonce made for another user does not fit this one.
    other = wp.run("wp_set_current_user($args['admin']); return wp_create_nonce('wpmsync_user_sites_' . $args['u']);",
                   u=wp.ids["user1"])[0]
    user_screen(wp, user=ed, post={**post, "_wpmsync_user_sites_nonce": other})
    assert sent(wp) == []
    user_screen(wp, user=ed, post=post, **{"as": wp.ids["user2"]})  # no manage_network_users
    assert sent(wp) == []
    user_screen(wp, user=ed, post=post, network_admin=False)  # a site's user-edit.php
    assert sent(wp) == []


# -- undo journal -----------------------------------------------------------------------------

JOURNAL = {"changes": [
    {"job_id": CHANGE, "trigger": "manual:unsync", "created_at": "2024-05-01T10:00:00+00:00", "rows": 4,
     "undone_by": None, "undo_of": None},
    {"job_id": "d" * 32, "trigger": "manual:users_sync", "created_at": "2024-05-01T09:00:00+00:00", "rows": 2,
     "undone_by": "e" * 32, "undo_of": None},
    {"job_id": "../../settings", "trigger": "bad", "created_at": "", "rows": 0, "undone_by": None, "undo_of": None},
]}


def test_journal_lists_changes_with_undo_buttons(wp):
    wp.configure(responses={"GET journal": {"status": 200, "body": JOURNAL}})
    html = screen(wp, "journal")
    assert [r["url"] for r in wp.requests()] == [f"{ENDPOINT}/journal?limit=20"]
    row = html.split(f'id="wpmsync-change-{CHANGE}"')[1].split("</tr>")[0]
    assert "manual:unsync" in row and "applied" in row and "May 1, 2024" in row
    assert 'value="preview_undo"' in row and 'value="undo"' in row
    undone = html.split(f'id="wpmsync-change-{"d" * 32}"')[1].split("</tr>")[0]
    assert f"undone by {'e' * 32}" in undone and 'value="undo"' not in undone
    assert "../../settings" not in html  # an id that is not one is not offered


@pytest.mark.parametrize("dry_run", [True, False])
def test_journal_undo_calls_the_functions(wp, dry_run):
    wp.configure(responses={
        f"POST jobs/{CHANGE}/undo": {"status": 200, "body": {
            "job_id": "f" * 32, "undo_of": CHANGE, "dry_run": dry_run, "restored": 4, "conflicts": 1,
            "skipped": [{"reason": "membership changed since", "user_id": 5, "blog_id": 3}],
            "sites": {"3": {"restored": 4, "user_ids": [5, 6]}}}},
        "GET journal": {"status": 200, "body": JOURNAL}})
    html = screen(wp, "journal", nonce=f"wpmsync_undo_{CHANGE}", post={
        "wpmsync_job_id": CHANGE, "wpmsync_action": "preview_undo" if dry_run else "undo"})
    assert sent(wp, "POST") == [("POST", f"jobs/{CHANGE}/undo", {"dry_run": dry_run})]
    assert ("nothing was changed; 4 rows would be restored" in html) is dry_run
    assert (f"Change {CHANGE} undone: 4 rows restored." in html) is not dry_run
    assert "1 rows were changed again since" in html and "user 5, site 3: membership changed since" in html


def test_journal_large_undo_is_queued(wp):
    wp.configure(responses={
        f"POST jobs/{CHANGE}/undo": {"status": 202, "body": {"job_id": "f" * 32, "undo_of": CHANGE,
                                                             "status": "queued", "rows": 120000}},
        "GET journal": {"status": 200, "body": JOURNAL}})
    html = screen(wp, "journal", nonce=f"wpmsync_undo_{CHANGE}", post={"wpmsync_job_id": CHANGE,
                                                                      "wpmsync_action": "undo"})
    assert f"Undo of {CHANGE} queued (120,000 rows)" in html and f"as change {'f' * 32}" in html
    assert 'id="wpmsync-journal-reload"' in html and 'id="wpmsync-outcome"' not in html


def test_journal_large_undo_preview_is_a_background_job(wp):
    wp.configure(responses={
        f"POST jobs/{CHANGE}/undo": {"status": 202, "body": {"job_id": "e" * 32, "kind": "undo_preview",
                                                             "undo_of": CHANGE, "dry_run": True, "status": "queued"}},
        "GET journal": {"status": 200, "body": JOURNAL}})
    html = screen(wp, "journal", nonce=f"wpmsync_undo_{CHANGE}", post={"wpmsync_job_id": CHANGE,
                                                                      "wpmsync_action": "preview_undo"})
    assert f"The preview of undoing {CHANGE} is too large for one request" in html and f"as job {'e' * 32}" in html
    assert "queued (" not in html and 'id="wpmsync-outcome"' not in html  # not taken for the undo itself
    assert sent(wp, "POST") == [("POST", f"jobs/{CHANGE}/undo", {"dry_run": True})]


@pytest.mark.parametrize("status,error", [(404, "unknown job"), (409, "that job is still running")])
def test_journal_undo_errors_are_shown(wp, status, error):
    wp.configure(responses={f"POST jobs/{CHANGE}/undo": {"status": status, "body": {"error": error}},
                            "GET journal": {"status": 200, "body": JOURNAL}})
    html = screen(wp, "journal", nonce=f"wpmsync_undo_{CHANGE}", post={"wpmsync_job_id": CHANGE,
                                                                      "wpmsync_action": "undo"})
    assert "notice-error" in html and f"HTTP {status}" in html and error in html
    assert 'id="wpmsync-outcome"' not in html


@pytest.mark.parametrize("case", ["forged", "other-change", "capability", "bad-id"])
def test_journal_refusals_send_nothing(wp, case):
    post = {"wpmsync_job_id": CHANGE, "wpmsync_action": "undo"}
    nonce, who = f"wpmsync_undo_{CHANGE}", {}
    if case == "forged":
        post["_wpnonce"] = "forged"
    elif case == "other-change":
        nonce = f"wpmsync_undo_{'d' * 32}"  # a nonce bound to another change
    elif case == "capability":
        who = {"as": wp.ids["user2"]}
    else:
        post["wpmsync_job_id"] = "../../sync"
        nonce = "wpmsync_undo_../../sync"
    with pytest.raises(Exception, match="wp_die"):
        screen(wp, "journal", nonce=nonce, post=post, **who)
    assert sent(wp, "POST") == []


def test_journal_unreachable(wp):
    wp.configure(responses={"GET journal": "error"})
    html = screen(wp, "journal")
    assert "notice-error" in html and "Could not read the journal" in html and "No changes recorded yet." in html


def test_tabs_link_the_screens(wp):
    wp.configure(responses={"GET settings": {"status": 200, "body": {"settings": {}}}})
    html = wp.run("""wp_set_current_user($args['admin']);
        ob_start(); Wpmsync_Plugin::instance()->admin->render_network_page(); return ob_get_clean();""")[0]
    for tab in ("wpmsync", "wpmsync-options", "wpmsync-bulk", "wpmsync-journal"):
        assert f'id="wpmsync-tab-{tab}"' in html
    assert "users.php?page=wpmsync-bulk" in html and "settings.php?page=wpmsync-journal" in html
