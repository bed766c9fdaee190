"""Shared by the browser end-to-end tests (``test_e2e.py``, ``test_e2e_screens.py``): a real
WordPress network served over HTTP (``php -S``) with the repository's mu-plugin, the Functions
app served on a local port with its queue pumped (Azurite), and headless Chromium (Playwright).

Each test module that imports the ``stack`` fixture gets a network of its own (module scope).
Screenshots go to ``docs/`` with ``WPMSYNC_SCREENSHOTS=docs``, otherwise to a temporary folder.
Nothing leaves the machine: WordPress blocks outside HTTP, and the browser resolves no other host
and aborts any request that is not to this machine (``BLOCKED`` lists any such attempt).
"""
from __future__ import annotations

import itertools
import os
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator
from urllib.parse import urlsplit

import pytest

from wpfixture import build_network, drop_database
from wpfixture.webserver import serve_wordpress

ROOT = Path(__file__).resolve().parent.parent
PLUGIN_DIR = ROOT / "wordpress" / "mu-plugins"
DOCS = ROOT / "docs" if os.environ.get("WPMSYNC_SCREENSHOTS") == "docs" else Path(
    tempfile.mkdtemp(prefix="wpmsync-screens-"))
CHROMIUM = os.environ.get("WPMSYNC_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
HOOK_SECRET = "e2e-hook-secret-" + uuid.uuid4().hex
FUNCTION_KEY = "e2e-function-key-" + uuid.uuid4().hex
SITES = ["site1", "site2", "site3"]
USERS = 6
TIMEOUT_MS = 60_000  # generous: CI machines are shared

try:
    from playwright import sync_api
except ImportError:  # scripts/setup.sh installs it (requirements-dev.txt); the fixture says so
    sync_api = None


def wait_for(check: Callable[[], Any], timeout: float = 15.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


class Stack:
    """What the tests share: the network, both servers, the browser."""

    def __init__(self, net: Any, base: str, functions: Any, wordpress: Any, browser: Any) -> None:
        self.net, self.base, self.functions, self.wordpress, self.browser = net, base, functions, wordpress, browser
        self.wp = net.wp
        self.site_ids = {slug: bid for slug, bid in zip(SITES, net.site_ids)}
        self.page = self.new_page()

    def new_page(self) -> Any:
        """A page in a new browser context (its own cookies) that reaches only this machine."""
        context = self.browser.new_context(viewport={"width": 1280, "height": 900})
        context.route("**/*", _offline_only)
        context.set_default_timeout(TIMEOUT_MS)
        return context.new_page()

    def sitemeta(self, key: str) -> str | None:
        rows = self.wp.query("SELECT meta_value FROM {p}sitemeta WHERE site_id = 1 AND meta_key = %s", (key,))
        return rows[0][0] if rows else None

    def live_sites(self) -> set[int]:
        return {r[0] for r in self.wp.query(
            "SELECT blog_id FROM {p}blogs WHERE site_id = 1 AND archived = 0 AND deleted = 0 AND spam = 0")}

    def blogs_of(self, user_id: int) -> set[int]:
        """What WordPress itself says (get_blogs_of_user)."""
        return set(self.wp.read_back(user_ids=[user_id], members=False)["users"][user_id]["blogs"])

    def shot(self, name: str, page: Any = None) -> Path:
        DOCS.mkdir(exist_ok=True)
        path = DOCS / name
        (page or self.page).screenshot(path=str(path), full_page=True)
        return path


_MODULES = itertools.count()
BLOCKED: list[str] = []  # requests of the pages to anything but this machine (there should be none)


def _offline_only(route: Any) -> None:
    """Abort every request the browser makes to anything but this machine."""
    host = urlsplit(route.request.url).hostname or ""
    if route.request.url.startswith(("data:", "blob:")) or host in ("localhost", "127.0.0.1"):
        route.continue_()
    else:
        BLOCKED.append(route.request.url)
        route.abort()


@pytest.fixture(scope="module")
def stack(azurite: str) -> Iterator[Stack]:
    from blueprints import common
    from wpfixture.local_host import serve_functions
    from wpmsync import db

    if sync_api is None:
        pytest.fail("playwright is missing: run scripts/setup.sh (requirements-dev.txt)", pytrace=False)
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run scripts/setup.sh (Debian's chromium)", pytrace=False)
    assert (PLUGIN_DIR / "wpmsync.php").exists(), "the mu-plugin loader wordpress/mu-plugins/wpmsync.php"
    # One database per test module (a module may run after another in the same process, and the
    # functions remember per database which of their own tables exist).
    name = f"wpmst{os.getpid()}_e2e{next(_MODULES)}"
    mp = pytest.MonkeyPatch()
    # Small batches (two user ids per lock bucket) and a delay per message: several batches
    # whose progress can be watched.
    mp.setattr(db, "LOCK_BUCKET", 2)
    mp.setattr(common, "QUEUE_NAME", f"wpmsync-e2e-{uuid.uuid4().hex[:12]}")
    env = {"WPMSYNC_DB_NAME": name, "WPMSYNC_TABLE_PREFIX": "wp_", "AzureWebJobsStorage": azurite,
           "WPMSYNC_BATCH_SIZE": "4"}
    functions: list = []
    wordpress: list = []
    try:
        # WordPress keeps no port in a site's domain (it drops the ':'): the network is
        # "localhost", served on a free port to which the browser maps the name.
        net = build_network(name, "wp_", sites=[{"slug": s, "title": s.capitalize()} for s in SITES],
                            users=USERS, domain="localhost")
        with serve_functions(hook_secret=HOOK_SECRET, function_key=FUNCTION_KEY, env=env,
                             message_delay=0.3, server=functions) as api, \
             serve_wordpress(name, "wp_", mu_plugins_dir=PLUGIN_DIR, server=wordpress,
                             constants={"WPMSYNC_ENDPOINT": api, "WPMSYNC_FUNCTION_KEY": FUNCTION_KEY,
                                        "WPMSYNC_HOOK_SECRET": HOOK_SECRET}) as base, \
             sync_api.sync_playwright() as pw:
            # Playwright starts Chromium with a new, empty temporary profile (user-data-dir).
            # localhost is WordPress on its port; no other name resolves.
            rules = f"--host-resolver-rules={wordpress[0].host_rule} , MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=[*CHROMIUM_ARGS, rules], headless=True)
            try:
                yield Stack(net, base, functions[0], wordpress[0], browser)
            finally:
                browser.close()
    finally:
        mp.undo()
        drop_database(name)


def login(page: Any, base: str, user: str, password: str) -> None:
    """Log in through wp-login.php. Tried up to three times: once in CI, on a loaded machine, the
    form came back unsubmitted with nothing to say why; a failure now shows WordPress's own
    message (#login_error) and the page's start."""
    for _ in range(3):
        page.goto(f"{base}/wp-login.php")
        page.wait_for_load_state("networkidle")
        page.fill("#user_login", user)
        page.fill("#user_pass", password)
        with page.expect_navigation(wait_until="load"):
            page.click("#wp-submit")
        if "/wp-admin/" in page.url:
            break
        error = page.locator("#login_error")
        said = error.inner_text() if error.count() else page.content()[:2000]
    else:
        raise AssertionError(f"login as {user} failed: {page.url}: {said}")
    assert page.locator("#wpadminbar").count() == 1


def assert_no_php_errors_and_nothing_from_outside(stack: Stack) -> None:
    """Run last in a module: no PHP error of the plugin in WordPress's debug log, no fault in the
    functions, and no request of the pages to anything but this machine."""
    log = stack.wordpress.debug_log_text()
    ours = [line for line in log.splitlines()
            if "mu-plugins/wpmsync" in line or str(PLUGIN_DIR) in line or "PHP Fatal" in line]
    assert not ours, "\n".join(ours[:20])
    assert not stack.functions.errors, stack.functions.errors
    assert not BLOCKED, BLOCKED
