"""End to end, as a person uses it: a real WordPress network served over HTTP (``php -S``) with
the repository's mu-plugin, the Functions app served on a local port with its queue pumped
(Azurite), and headless Chromium (Playwright) clicking through the admin screens.

Screenshots of each screen are kept in ``docs/`` (network-admin.png, new-user.png,
user-activated.png, network-users.png, progress.png, progress-done.png, site-admin.png,
site-admin-done.png): a run with ``WPMSYNC_SCREENSHOTS=docs`` refreshes them; other runs write
them to a temporary folder, so the test suite leaves the working tree clean.

Nothing leaves the machine: WordPress blocks outside HTTP (``WP_HTTP_BLOCK_EXTERNAL``), the
served pages carry no avatars or emoji images, and the browser resolves no other host and
aborts any request that is not to this machine.
"""
from __future__ import annotations

import re
import time

from e2e_stack import (  # noqa: F401 - stack: the fixture, used by name
    FUNCTION_KEY, SITES, Stack, assert_no_php_errors_and_nothing_from_outside, login, stack, wait_for,
)


def network_page(s: Stack) -> Any:
    page = s.page
    page.goto(f"{s.base}/wp-admin/network/settings.php?page=wpmsync")
    page.wait_for_selector("#wpmsync-save-settings")
    return page


def save_triggers(s: Stack, **on: bool) -> None:
    page = network_page(s)
    for name, value in on.items():
        box = page.locator(f"#wpmsync-{name.replace('_', '-')}")
        box.set_checked(value)
    with page.expect_navigation():
        page.click("#wpmsync-save-settings")
    assert page.locator(".notice-success").count() >= 1, page.content()[:3000]


def test_network_admin_switches_triggers(stack: Stack) -> None:
    s, page = stack, stack.page
    login(page, s.base, "admin", "password")
    page = network_page(s)
    assert page.title().startswith("User sync")
    assert not page.locator("#wpmsync-new-user").is_checked()
    assert s.sitemeta("wpmus_newUserSync") != "yes"

    save_triggers(s, new_user=True)
    assert s.sitemeta("wpmus_newUserSync") == "yes"
    assert page.locator("#wpmsync-new-user").is_checked()  # the page shows what the functions hold

    save_triggers(s, new_user=False, new_site=True)
    assert s.sitemeta("wpmus_newUserSync") != "yes"
    assert s.sitemeta("wpmus_newSiteSync") == "yes"
    assert not page.locator("#wpmsync-new-user").is_checked()

    # On for the next test; role sync too, so the page shows a mix.
    save_triggers(s, new_user=True, new_site=False, role_sync=True)
    assert s.sitemeta("wpmus_newUserSync") == "yes"
    assert s.sitemeta("wpmus_newSiteSync") != "yes"
    assert s.sitemeta("wpmus_setUserRoleSync") == "yes"
    page.goto(f"{s.base}/wp-admin/network/settings.php?page=wpmsync")
    s.shot("network-admin.png")
    assert ("PATCH", "/api/settings", 200) in s.functions.requests


def test_user_created_on_a_subsite_joins_every_site(stack: Stack) -> None:
    """Users → Add New on a subsite, then the new user follows the activation link of the
    e-mail. (Debian's WordPress 6.1.9 cannot "Skip Confirmation Email": its backported hashed
    activation keys make user-new.php read the signup row as an array, a PHP fatal error. So
    the user is created the way WordPress does without that box: wpmu_activate_signup() when
    the link is followed.)"""
    s, page = stack, stack.page
    site1 = s.site_ids["site1"]
    page.goto(f"{s.base}/site1/wp-admin/user-new.php")
    form = page.locator("#createuser")
    form.locator("#user_login").fill("newcomer")
    form.locator("#email").fill("newcomer@example.test")
    form.locator("#role").select_option("author")
    s.shot("new-user.png")
    with page.expect_navigation():
        form.locator("#createusersub").click()
    # (the admin's canonical-URL script strips ?update=newuserconfirmation from the address bar)
    assert "confirmation link must be clicked" in page.locator("#message").inner_text()
    mails = wait_for(lambda: s.wordpress.mails(to="newcomer@example.test"), what="the activation mail")
    link = re.search(r"https?://\S+/wp-activate\.php\?key=\S+", mails[-1]["message"])
    assert link and link.group(0).startswith(f"{s.base}/site1/"), mails[-1]
    visitor = s.new_page()  # the new user, in a browser of their own
    try:
        visitor.goto(link.group(0))
        assert "Your account is now active" in visitor.inner_text("body"), visitor.inner_text("body")
        s.shot("user-activated.png", visitor)
    finally:
        visitor.context.close()
    uid = int(wait_for(lambda: s.wp.query("SELECT ID FROM {p}users WHERE user_login = 'newcomer'"),
                       what="the user row")[0][0])

    # The plugin's user_created hook reached the functions, which added the user everywhere.
    everywhere = s.live_sites()
    wait_for(lambda: s.blogs_of(uid) == everywhere, what=f"user {uid} on every site {everywhere}")
    roles = s.wp.read_back(user_ids=[uid], blog_ids=sorted(everywhere))["blogs"]
    assert roles[site1]["members"][uid]["roles"] == ["author"]  # the role given on the screen
    assert any(method == "POST" and path == "/api/hooks" and status == 200
               for method, path, status in s.functions.requests), s.functions.requests

    # Network Admin → Users lists the user's sites.
    page.goto(f"{s.base}/wp-admin/network/users.php?s=newcomer")
    sites_cell = page.locator("#the-list tr", has_text="newcomer").locator("td.blogs").inner_text()
    listed = [line.split()[0] for line in sites_cell.splitlines() if line.strip()]  # "<site> Edit | View"
    assert listed == ["localhost"] + [f"localhost/{slug}/" for slug in SITES], sites_cell
    s.shot("network-users.png")


def test_sync_from_scratch_shows_progress(stack: Stack) -> None:
    s, page = stack, stack.page
    users = list(s.net.user_ids)
    assert all(s.blogs_of(u) == set() for u in users)  # wpmu_create_user: members of nothing
    page = network_page(s)
    with page.expect_navigation():
        page.click("#wpmsync-sync-all")
    bar, state = page.locator("#wpmsync-progress"), page.locator("#wpmsync-job-state")
    assert bar.count() == 1
    # Watch it move: some batches done, not all.
    seen_partial = False
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        text = state.inner_text()
        # the <progress> element's properties (set by the script)
        value = page.evaluate("document.getElementById('wpmsync-progress').value")
        top = page.evaluate("document.getElementById('wpmsync-progress').max")
        if text.startswith("running") and 0 < value < top and not seen_partial:
            seen_partial = True
            s.shot("progress.png")
        if text.startswith(("done", "failed")):
            break
        time.sleep(0.1)
    text = state.inner_text()
    assert text.startswith("done"), text
    assert page.evaluate("document.getElementById('wpmsync-progress').value") == \
        page.evaluate("document.getElementById('wpmsync-progress').max")
    if not seen_partial:  # too quick to catch in the middle: keep the finished bar
        s.shot("progress.png")
    s.shot("progress-done.png")
    everywhere = s.live_sites()
    for u in users:
        assert s.blogs_of(u) == everywhere, u
    assert not s.functions.errors, s.functions.errors


def test_site_admin_adds_all_network_users_to_the_site(stack: Stack) -> None:
    s = stack
    # A site made without the plugin (wpfixture's own PHP): only its creator is a member. Its
    # administrator is a plain site admin, not a super admin.
    with s.wp.batch() as b:
        late = b.create_site("late", "Late site")
        boss = b.create_user("siteboss", password="siteboss-pass")
    with s.wp.batch() as b:
        b.add_user_to_blog(late.value, boss.value, "administrator")
    blog = late.value
    others = list(s.net.user_ids)
    assert all(blog not in s.blogs_of(u) for u in others)

    page = s.new_page()
    try:
        login(page, s.base, "siteboss", "siteboss-pass")
        page.goto(f"{s.base}/late/wp-admin/users.php?page=wpmsync-site")
        page.wait_for_selector("#wpmsync-pull-users")
        s.shot("site-admin.png", page)
        with page.expect_navigation():
            page.click("#wpmsync-pull-users")
        state = page.locator("#wpmsync-job-state")
        page.wait_for_function(
            "() => /^(done|failed)/.test(document.getElementById('wpmsync-job-state').textContent)",
            timeout=60_000)
        assert state.inner_text().startswith("done"), state.inner_text()
        s.shot("site-admin-done.png", page)
    finally:
        page.context.close()
    for u in others:
        assert blog in s.blogs_of(u), u
    members = s.wp.read_back(blog_ids=[blog])["blogs"][blog]["members"]
    assert members[boss.value]["roles"] == ["administrator"]  # kept
    assert members[others[0]]["roles"] == ["subscriber"]  # the site's default role


def test_functions_runner_checks_the_function_key(stack: Stack) -> None:
    import json
    import urllib.error
    import urllib.request

    api = stack.functions.base_url

    def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=10) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    assert get(f"{api}/settings")[0] == 401
    assert get(f"{api}/settings", {"x-functions-key": "wrong"})[0] == 401
    assert get(f"{api}/settings?code={FUNCTION_KEY}")[0] == 200
    status, body = get(f"{api}/settings", {"x-functions-key": FUNCTION_KEY})
    assert status == 200 and json.loads(body)["settings"]["new_user"] is True
    assert get(f"{api}/health")[0] == 200  # anonymous, as on the host
    assert get(f"{api}/jobs/{'0' * 32}", {"x-functions-key": FUNCTION_KEY})[0] == 404


def test_no_php_errors_and_nothing_from_outside(stack: Stack) -> None:
    assert_no_php_errors_and_nothing_from_outside(stack)
