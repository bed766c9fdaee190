"""Fixtures: networks built by real WordPress on the real MariaDB, copied per test.

The template network is built once per session with WordPress's own functions (``wp_install``,
``install_network``, ``wpmu_create_blog``, ``wpmu_create_user``, ``add_role``, ...); each test
gets fresh copies of it (``copy_database`` is a plain SQL copy: fast).
"""
from __future__ import annotations

import itertools
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from wpfixture import WordPress, build_network, copy_database, drop_database  # noqa: E402
from wpmsync import Config, Engine  # noqa: E402

pytest_plugins = ["azurite"]  # the Azurite queue service, started once per session

#: The test lane (scripts/lanes.sh): which server and which WordPress the whole run uses.
LANE = os.environ.get("WPMSYNC_LANE", "").strip() or "default"
#: The lane's server, for engine configs built from an explicit environment (``Config.from_env
#: (LANE_DB_ENV, ...)``); read once, so a test's monkeypatch.setenv cannot move the fixtures.
LANE_DB_ENV = {k: os.environ[k] for k in ("WPMSYNC_DB_HOST", "WPMSYNC_DB_PORT", "WPMSYNC_DB_USER",
                                          "WPMSYNC_DB_PASSWORD", "WPMSYNC_DB_SSL", "WPMSYNC_DB_SSL_CA")
               if k in os.environ}
DB_PREFIX = f"wpmst{os.getpid()}_"
MEMBERSHIP_KEYS_SQL = (
    "(meta_key LIKE %s OR meta_key LIKE %s OR meta_key IN ('primary_blog', 'source_domain'))"
)


@dataclass
class Net:
    """A copy of a fixture network: real WordPress on one side, the engine on the other."""

    wp: WordPress
    ids: dict[str, int]

    @property
    def db(self) -> str:
        return self.wp.db_name

    @property
    def prefix(self) -> str:
        return self.wp.prefix

    def config(self, **overrides: Any) -> Config:
        return Config.from_env(LANE_DB_ENV, **{"db_name": self.db, "table_prefix": self.prefix, **overrides})

    def engine(self, trigger: str = "api", **overrides: Any) -> Engine:
        return Engine(self.config(**overrides), trigger=trigger)

    def query(self, sql: str, args: Any = None) -> list[tuple]:
        return self.wp.query(sql, args)

    def membership_rows(self) -> list[tuple]:
        """Every membership row (duplicates kept: a duplicate is a bug we want to see)."""
        return self.query(
            "SELECT user_id, meta_key, meta_value FROM {p}usermeta WHERE " + MEMBERSHIP_KEYS_SQL
            + " ORDER BY user_id, meta_key, meta_value",
            (f"{self.prefix}%capabilities", f"{self.prefix}%user_level"),
        )

    def usermeta_checksum(self) -> list[tuple]:
        return self.query("SELECT umeta_id, user_id, meta_key, meta_value FROM {p}usermeta ORDER BY umeta_id")

    def duplicates(self) -> list[tuple]:
        return self.query(
            "SELECT user_id, meta_key, COUNT(*) FROM {p}usermeta GROUP BY user_id, meta_key HAVING COUNT(*) > 1"
        )

    def members(self, blog_id: int) -> set[int]:
        key = self.prefix + ("capabilities" if blog_id == 1 else f"{blog_id}_capabilities")
        return {r[0] for r in self.query("SELECT user_id FROM {p}usermeta WHERE meta_key = %s", (key,))}


_counter = itertools.count()


def _build_template(name: str, prefix: str) -> dict[str, int]:
    """Network 1: main site + sites with different default roles, a custom role on some
    sites only, archived / deleted / spam sites; users incl. a spam user, a super admin and a
    member with another role; network 2 in the same tables with its own site and users."""
    net = build_network(name, prefix, sites=[
        {"slug": "plain"},                                              # subscriber
        {"slug": "authors", "options": {"default_role": "author"}},
        {"slug": "editors", "options": {"default_role": "editor"}},
        {"slug": "club"},                                               # custom role 'member'
        {"slug": "ghostly", "options": {"default_role": "ghost"}},      # not a role: subscriber
        {"slug": "archived", "archived": 1},
        {"slug": "deleted", "deleted": 1},
        {"slug": "spammy", "spam": 1},
    ], users=8, networks=[{"network_id": 2, "domain": "net2.test", "path": "/",
                           "site_admins": ["admin"]}])
    wp = net.wp
    ids = {"admin": net.admin_user_id}
    slugs = ["plain", "authors", "editors", "club", "ghostly", "archived", "deleted", "spammy"]
    ids.update({f"site_{s}": b for s, b in zip(slugs, net.site_ids)})
    ids.update({f"user{i}": u for i, u in enumerate(net.user_ids, 1)})
    ids["net2_main"] = net.networks[2]
    with wp.batch() as b:
        b.add_role(ids["site_club"], "member", "Club member", {"read": True, "level_1": True})
        b.update_option(ids["site_club"], "default_role", "member")
        b.add_role(ids["site_authors"], "member", "Club member", {"read": True, "level_1": True})
        n2 = b.create_site("second", network_id=2)
        spam = b.create_user("spammer")
        sup = b.create_user("boss")
        other = b.create_user("netwo")
        editor = b.create_user("ed")
    ids.update(site_net2_second=n2.value, user_spammer=spam.value, user_boss=sup.value,
               user_netwo=other.value, user_ed=editor.value)
    with wp.batch() as b:
        b.update_user(ids["user_spammer"], spam=1)
        b.grant_super_admin(ids["user_boss"])
        b.add_user_to_blog(ids["site_net2_second"], ids["user_netwo"], "subscriber")
        b.add_user_to_blog(ids["site_editors"], ids["user_ed"], "editor")
        b.add_user_to_blog(ids["site_authors"], ids["user1"], "contributor")
    return ids


@pytest.fixture(scope="session")
def templates() -> Iterator[dict[str, tuple[WordPress, dict[str, int]]]]:
    built: dict[str, tuple[WordPress, dict[str, int]]] = {}
    for key, prefix in (("wp", "wp_"), ("custom", "wpx9_")):
        name = f"{DB_PREFIX}tpl_{key}"
        ids = _build_template(name, prefix)
        built[key] = (WordPress(name, prefix), ids)
    yield built
    for wp, _ in built.values():
        wp.drop()


def _copy(templates: dict, key: str) -> Net:
    wp, ids = templates[key]
    name = f"{DB_PREFIX}{next(_counter)}"
    copy_database(wp.db_name, name)
    return Net(wp.with_db(name), dict(ids))


@pytest.fixture
def net(templates) -> Iterator[Net]:
    """One fresh copy of the template network (prefix wp_)."""
    copy = _copy(templates, "wp")
    yield copy
    drop_database(copy.db)


@pytest.fixture
def twins(templates) -> Iterator[tuple[Net, Net]]:
    """Two identical copies: (synced by WordPress's own loop, synced by the engine)."""
    a, b = _copy(templates, "wp"), _copy(templates, "wp")
    yield a, b
    drop_database(a.db)
    drop_database(b.db)


@pytest.fixture
def custom_twins(templates) -> Iterator[tuple[Net, Net]]:
    """Twins of the network whose tables use the prefix ``wpx9_``."""
    a, b = _copy(templates, "custom"), _copy(templates, "custom")
    yield a, b
    drop_database(a.db)
    drop_database(b.db)


def network1_users(n: Net) -> list[int]:
    """Users of network 1 (everyone but the network-2-only user), for WordPress's loop."""
    return [uid for key, uid in n.ids.items() if key.startswith("user") and key != "user_netwo"] + [n.ids["admin"]]


# -- the lane in every report ----------------------------------------------------------------------
def _server_and_wordpress() -> str:
    from wpfixture import db as fixture_db  # noqa: PLC0415
    from wpfixture.wordpress import DEFAULT_WP_PATH  # noqa: PLC0415

    try:
        version = fixture_db.query(None, "SELECT VERSION()")[0][0]
    except Exception as exc:  # noqa: BLE001 - the header must not hide the run
        version = f"unreachable ({exc.__class__.__name__})"
    wp = "?"
    try:
        for line in (Path(DEFAULT_WP_PATH) / "wp-includes" / "version.php").read_text().splitlines():
            if line.startswith("$wp_version ="):
                wp = line.split("'")[1]
    except OSError:
        wp = "missing"
    return (f"server {version} on {fixture_db.default_host()}:{fixture_db.default_port()}"
            f"{' (TLS)' if fixture_db.default_ssl_ca() is not None else ''}, "
            f"WordPress {wp} at {DEFAULT_WP_PATH}")


_LANE_DESC: list[str] = []


def lane_description() -> str:
    """The lane's server and WordPress, read once (the header is not shown with -q)."""
    if not _LANE_DESC:
        _LANE_DESC.append(_server_and_wordpress())
    return _LANE_DESC[0]


def pytest_report_header(config: pytest.Config) -> str:
    return f"lane: {LANE} ({lane_description()})"


def pytest_report_teststatus(report: pytest.TestReport, config: pytest.Config):
    """Failure lines say the lane: ``FAILED [lane mysql] tests/...`` (and in -v, every line)."""
    if report.when == "call" or (report.when in ("setup", "teardown") and report.outcome != "passed"):
        if report.failed:
            return ("failed" if report.when == "call" else "error", "F" if report.when == "call" else "E",
                    (f"FAILED [lane {LANE}]" if report.when == "call" else f"ERROR [lane {LANE}]"))
        if report.passed and report.when == "call" and not hasattr(report, "wasxfail"):
            return "passed", ".", f"PASSED [lane {LANE}]"
    return None


def pytest_terminal_summary(terminalreporter, exitstatus, config: pytest.Config) -> None:
    counts = {k: len([r for r in terminalreporter.stats.get(k, []) if getattr(r, "when", "call") != "teardown"
                      or k == "error"]) for k in ("passed", "failed", "error", "skipped", "xfailed")}
    desc = lane_description()
    terminalreporter.write_line(
        f"[lane {LANE}] " + (", ".join(f"{n} {k}" for k, n in counts.items() if n) or "no tests ran")
        + (f" -- {desc}" if desc else ""),
        bold=True, red=bool(counts["failed"] or counts["error"]), green=not (counts["failed"] or counts["error"]))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """A failure's own section names the lane too (under the traceback, in the FAILURES part)."""
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        report.sections.append(("lane", f"{LANE}: {lane_description()}"))


@pytest.fixture(scope="session", autouse=True)
def _lane_in_junit(record_testsuite_property) -> None:
    record_testsuite_property("lane", LANE)
