"""End to end, the network screens of issue 6, as a network admin uses them in Chromium against
real WordPress (``php -S``) and the real Functions app (local runner): the options form, bulk
sync / unsync with the user picker, the undo journal and the site checklist of the user screen.
Every check of the outcome asks WordPress itself (``get_site_option``, ``get_blogs_of_user``,
the roles WordPress reads back) or the database, never the screen alone.

Screenshots (``options.png``, ``options-refused.png``, ``bulk-preview.png``, ``bulk-sync.png``,
``journal.png``, ``user-sites.png``) go to ``docs/`` with ``WPMSYNC_SCREENSHOTS=docs``.
"""
from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from e2e_stack import (  # noqa: F401 - stack: the fixture
    FUNCTION_KEY, Stack, assert_no_php_errors_and_nothing_from_outside, login, stack, wait_for,
)

CHANGES: dict[str, str] = {}  # journal ids of the bulk test's changes, for the journal test


def api(s: Stack, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    """Call the functions directly (to prepare a state or check one), with the function key."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"{s.functions.base_url}/{path}", data=data, method=method,
                                     headers={"x-functions-key": FUNCTION_KEY, "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def wp_options(s: Stack) -> dict[str, Any]:
    """The network options as WordPress reads them (get_site_option, cache dropped first)."""
    return s.wp.eval("wp_cache_flush(); return get_site_option('wpmsync_options', null);") or {}


def roles_on(s: Stack, user_id: int, blog_id: int) -> list[str]:
    members = s.wp.read_back(user_ids=[user_id], blog_ids=[blog_id])["blogs"][blog_id]["members"]
    return members[user_id]["roles"] if members[user_id]["member"] else []


def submit(page: Any, selector: str) -> None:
    with page.expect_navigation():
        page.click(selector)


def test_options_form_saves_and_the_sync_follows(stack: Stack) -> None:
    s, page = stack, stack.page
    site1, site2, site3 = (s.site_ids[k] for k in ("site1", "site2", "site3"))
    login(page, s.base, "admin", "password")
    page.goto(f"{s.base}/wp-admin/network/settings.php?page=wpmsync-options")
    page.wait_for_selector("#wpmsync-save-options")
    assert page.locator("#wpmsync-scope-all").is_checked() and not page.locator("#wpmsync-unsync").is_checked()
    assert wp_options(s) == {}  # nothing stored yet

    page.select_option(f"#wpmsync-site-role-{site2}", "editor")
    page.check(f"#wpmsync-opt-out-{site3}")
    page.check("#wpmsync-filter-excluded")
    page.check("#wpmsync-filter-role-administrator")
    page.select_option("#wpmsync-missing-role", "copy")
    submit(page, "#wpmsync-save-options")
    assert "Options saved." in page.locator(".notice-success").inner_text()
    stored = wp_options(s)
    assert stored["sites"] == {str(site2): {"role": "editor"}, str(site3): {"opt_out": True}}
    assert stored["excluded_roles"] == ["administrator"] and stored["allowed_roles"] == []
    assert (stored["missing_role"], stored["scope"], stored["unsync"]) == ("copy", "all", False)
    assert page.locator(f"#wpmsync-opt-out-{site3}").is_checked()  # the page shows what was saved
    assert page.locator(f"#wpmsync-site-role-{site2}").input_value() == "editor"
    s.shot("options.png")

    # The engine follows them: a synced user gets editor on site2, and site3 gets nobody.
    user = s.net.user_ids[-1]
    status, answer = api(s, "POST", "users/sync", {"user_ids": [user], "blog_ids": [site1, site2, site3]})
    assert status == 200, answer
    assert {"blog_id": site3, "reason": "site opted out of syncing"} in answer["skipped"]
    assert s.blogs_of(user) == {site1, site2}
    assert roles_on(s, user, site2) == ["editor"] and roles_on(s, user, site1) == ["subscriber"]

    # A value the functions refuse: the error is shown and nothing is stored.
    page.evaluate("""id => { const o = new Option('not a role!', 'not a role!', true, true);
                              document.getElementById(id).add(o); }""", f"wpmsync-site-role-{site1}")
    page.uncheck(f"#wpmsync-opt-out-{site3}")
    submit(page, "#wpmsync-save-options")
    error = page.locator(".notice-error").inner_text()
    assert "The options were not saved: HTTP 400" in error and "must be a role name" in error, error
    assert wp_options(s) == stored
    assert not page.locator(f"#wpmsync-opt-out-{site3}").is_checked()  # the form as posted, to correct it
    s.shot("options-refused.png")

    # Back to the defaults for the other tests, through the form.
    page.goto(f"{s.base}/wp-admin/network/settings.php?page=wpmsync-options")
    page.select_option(f"#wpmsync-site-role-{site2}", "")
    page.uncheck(f"#wpmsync-opt-out-{site3}")
    page.check("#wpmsync-filter-none")
    page.select_option("#wpmsync-missing-role", "skip")
    submit(page, "#wpmsync-save-options")
    assert page.locator(".notice-success").count() == 1
    stored = wp_options(s)
    assert not stored["sites"] and stored["excluded_roles"] == [] and stored["missing_role"] == "skip"  # PHP: array()


def pick(page: Any, search: str, user_id: int) -> None:
    page.fill("#wpmsync-search", search)
    submit(page, "#wpmsync-search-submit")
    page.check(f"#wpmsync-pick-{user_id}")


def test_bulk_screen_previews_adds_and_removes(stack: Stack) -> None:
    s, page = stack, stack.page
    site1, site2 = s.site_ids["site1"], s.site_ids["site2"]
    u1, u2 = s.net.user_ids[0], s.net.user_ids[1]
    assert s.blogs_of(u1) == set() and s.blogs_of(u2) == set()
    page.goto(f"{s.base}/wp-admin/network/users.php?page=wpmsync-bulk")
    page.wait_for_selector("#wpmsync-bulk-sync")

    # The picker: search one, check it, search the other (the first stays picked), check it.
    pick(page, "user1", u1)
    assert page.locator("#wpmsync-user-results tbody tr").count() == 1  # the search filtered
    pick(page, "user2@", u2)  # by e-mail
    submit(page, "#wpmsync-pick-submit")
    chips = page.locator("#wpmsync-selected-users .wpmsync-chip")
    assert sorted(int(c.get_attribute("data-user-id")) for c in chips.all()) == [u1, u2]
    page.check(f"#wpmsync-bulk-site-{site1}")
    page.check(f"#wpmsync-bulk-site-{site2}")

    before = s.net.wp.query("SELECT COUNT(*) FROM {p}usermeta")
    submit(page, "#wpmsync-preview-sync")
    outcome = page.locator("#wpmsync-outcome")
    assert outcome.get_attribute("data-dry-run") == "1"
    for blog in (site1, site2):
        assert outcome.locator(f"tr[data-blog-id='{blog}'] td.wpmsync-added").inner_text() == "2"
    assert s.net.wp.query("SELECT COUNT(*) FROM {p}usermeta") == before  # the preview wrote nothing
    assert s.blogs_of(u1) == set()
    s.shot("bulk-preview.png")

    # The selection and the sites are still there after the preview.
    submit(page, "#wpmsync-bulk-sync")
    assert "added to the selected sites" in page.locator(".notice-success").inner_text()
    assert s.blogs_of(u1) == {site1, site2} and s.blogs_of(u2) == {site1, site2}
    assert roles_on(s, u1, site1) == ["subscriber"]
    assert page.locator("#wpmsync-outcome").get_attribute("data-dry-run") == "0"
    CHANGES["sync"] = page.locator("#wpmsync-outcome-job").inner_text()
    assert page.locator(".wpmsync-undo-form .wpmsync-undo").count() == 1  # offered next to the result
    s.shot("bulk-sync.png")

    submit(page, "#wpmsync-preview-unsync")
    assert page.locator("#wpmsync-outcome td.wpmsync-removed").all_inner_texts() == ["2", "2"]
    assert s.blogs_of(u1) == {site1, site2}
    submit(page, "#wpmsync-bulk-unsync")
    assert "removed from the selected sites" in page.locator(".notice-success").inner_text()
    assert s.blogs_of(u1) == set() and s.blogs_of(u2) == set()
    CHANGES["unsync"] = page.locator("#wpmsync-outcome-job").inner_text()
    assert CHANGES["unsync"] != CHANGES["sync"]


def test_journal_undoes_the_unsync(stack: Stack) -> None:
    s, page = stack, stack.page
    site1, site2 = s.site_ids["site1"], s.site_ids["site2"]
    u1, u2 = s.net.user_ids[0], s.net.user_ids[1]
    change = CHANGES.get("unsync")
    assert change, "test_bulk_screen_previews_adds_and_removes records the unsync's journal id"
    page.goto(f"{s.base}/wp-admin/network/settings.php?page=wpmsync-journal")
    row = page.locator(f"#wpmsync-change-{change}")
    assert row.count() == 1, page.inner_text("#wpbody-content")[:3000]
    assert "applied" in row.locator(".wpmsync-change-status").inner_text()
    assert " by admin (user 1)" in row.inner_text()  # who clicked, sent by the mu-plugin
    assert page.locator(f"#wpmsync-change-{CHANGES['sync']}").count() == 1

    def pending() -> list[tuple]:  # the change's journal rows not undone yet, and its own undone_by
        return s.wp.query("SELECT (SELECT COUNT(*) FROM {p}wpmsync_journal j WHERE j.change_seq = c.seq AND "
                          "j.undone_by = 0), c.undone_by FROM {p}wpmsync_changes c WHERE c.job_id = %s", (change,))

    before = pending()
    assert before[0][0] > 0 and before[0][1] is None, before
    submit(page, f"#wpmsync-change-{change} .wpmsync-preview-undo")
    preview = page.locator(".notice-info").inner_text()
    if "too large for one request" in preview:  # more rows than one batch (4 here): a preview job
        assert f"The preview of undoing {change}" in preview and "Nothing is changed" in preview, preview
        assert page.locator("#wpmsync-outcome").count() == 0
    else:
        assert "nothing was changed" in preview and "; 0 rows" not in preview, preview
        assert page.locator("#wpmsync-outcome").get_attribute("data-dry-run") == "1"
    assert s.blogs_of(u1) == set()
    assert pending() == before  # the preview marked nothing as undone

    submit(page, f"#wpmsync-change-{change} .wpmsync-undo")
    notice = page.locator(".notice-success").inner_text()
    if "queued" in notice:  # more rows than one batch (the stack's batch size is 4): the queue undoes it
        assert f"Undo of {change} queued" in notice, notice
        wait_for(lambda: s.blogs_of(u1) == {site1, site2} and s.blogs_of(u2) == {site1, site2},
                 timeout=60, what="the queued undo")
        wait_for(lambda: pending()[0][1] is not None, timeout=30, what="the change marked as undone")
        submit(page, "#wpmsync-journal-reload")
    else:
        assert f"Change {change} undone" in notice, notice
    assert s.blogs_of(u1) == {site1, site2} and s.blogs_of(u2) == {site1, site2}, \
        page.inner_text("#wpbody-content")[:1500]
    assert roles_on(s, u1, site2) == ["subscriber"]  # the rows as they were
    row = page.locator(f"#wpmsync-change-{change}")
    assert "undone by" in row.locator(".wpmsync-change-status").inner_text()
    assert row.locator(".wpmsync-undo").count() == 0
    s.shot("journal.png")


def test_user_screen_checklist_follows_the_memberships(stack: Stack) -> None:
    s, page = stack, stack.page
    site1, site2, site3 = (s.site_ids[k] for k in ("site1", "site2", "site3"))
    user = s.net.user_ids[2]
    status, answer = api(s, "POST", "users/sync", {"user_ids": [user], "blog_ids": [site1, site2]})
    assert status == 200, answer
    assert s.blogs_of(user) == {site1, site2}

    page.goto(f"{s.base}/wp-admin/network/user-edit.php?user_id={user}")
    page.wait_for_selector("#wpmsync-user-sites")
    assert page.locator(f"#wpmsync-user-site-{site1}").is_checked()
    assert not page.locator(f"#wpmsync-user-site-{site3}").is_checked()
    page.uncheck(f"#wpmsync-user-site-{site1}")
    page.check(f"#wpmsync-user-site-{site3}")
    submit(page, "#submit")
    notice = " ".join(page.locator(".wpmsync-notice").all_inner_texts())
    assert "Added to localhost/site3" in notice and "Removed from localhost/site1" in notice, notice
    assert s.blogs_of(user) == {site2, site3}
    assert roles_on(s, user, site3) == ["subscriber"]
    s.shot("user-sites.png")  # the notice on top, the checklist at the bottom
    page.goto(f"{s.base}/wp-admin/network/user-edit.php?user_id={user}")
    assert page.locator(f"#wpmsync-user-site-{site3}").is_checked()
    assert not page.locator(f"#wpmsync-user-site-{site1}").is_checked()
    assert page.locator(".wpmsync-notice").count() == 0  # shown once

    # Saving again unchanged sends nothing.
    calls = len(s.functions.requests)
    submit(page, "#submit")
    assert [r for r in s.functions.requests[calls:] if r[1] in ("/api/users/sync", "/api/unsync")] == []


def test_no_php_errors_and_nothing_from_outside(stack: Stack) -> None:
    assert_no_php_errors_and_nothing_from_outside(stack)
