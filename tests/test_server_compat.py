"""What differs between the servers and WordPress versions the lanes run (README, "Test lanes"):
the WordPress 7.1 membership rule, the roles option's autoload since 6.6, MySQL's deprecation
warnings, our tables' collation, TLS (the mysql-tls lane), the CLI's exit code when the
database cannot be reached. Each runs in every lane, against the lane's WordPress and server."""
from __future__ import annotations

import os
import subprocess
import sys
from typing import Any, Iterator

import pymysql
import pytest

from conftest import LANE, LANE_DB_ENV, ROOT, Net, network1_users
from test_differential import assert_same_rows
from wpmsync import db
from wpmsync.errors import Unreachable
from wpmsync.memberships import STRICT_MEMBERSHIP_DB_VERSION

# Not arrays: WordPress 7.1's is_user_member_of_blog() says "no member", 6.x says "member".
NOT_ARRAYS = ("", "garbage", "b:0;", 's:6:"a:0:{}";')


def wp_db_version(n: Net) -> int:
    return int(n.query("SELECT option_value FROM {p}options WHERE option_name = 'db_version'")[0][0])


def _spoil_caps(n: Net) -> list[tuple[int, int, str]]:
    """On both twins alike: caps rows whose value is no array, and one empty array (a member in
    every version). Returns (user, site, value)."""
    spoiled = [(n.ids["user1"], n.ids["site_plain"], NOT_ARRAYS[0]), (n.ids["user2"], n.ids["site_authors"], NOT_ARRAYS[1]),
               (n.ids["user3"], 1, NOT_ARRAYS[2]), (n.ids["user4"], n.ids["site_club"], NOT_ARRAYS[3]),
               (n.ids["user5"], n.ids["site_editors"], "a:0:{}")]
    for user, site, value in spoiled:
        key = n.prefix + ("capabilities" if site == 1 else f"{site}_capabilities")
        n.query("INSERT INTO {p}usermeta (user_id, meta_key, meta_value) VALUES (%s, %s, %s)", (user, key, value))
    return spoiled


def test_membership_follows_the_running_wordpress_on_caps_that_are_no_array(twins):
    """WordPress's own loop (is_user_member_of_blog, then add_user_to_blog) and the engine leave
    the same rows: on 7.1 the spoiled rows are repaired in place (subscriber caps, user_level),
    on 6.x they count as memberships and stay."""
    a, b = twins
    spoiled = _spoil_caps(a)
    assert _spoil_caps(b) == spoiled
    added_by_wp = a.wp.sync_like_plugin(network_id=1, user_ids=network1_users(a))
    with b.engine() as engine:
        outcome = engine.sync_sites(None)
    assert outcome.added == added_by_wp
    assert_same_rows(a, b)
    strict = wp_db_version(a) >= STRICT_MEMBERSHIP_DB_VERSION
    seen = b.wp.read_back(user_ids=[u for u, _, _ in spoiled], blog_ids=sorted({s for _, s, _ in spoiled}))
    for user, site, value in spoiled:
        member = seen["blogs"][site]["members"][user]
        assert member["member"], (user, site, value)  # WordPress sees a member now, whatever the version
        repaired = strict and value != "a:0:{}"
        assert bool(member["roles"]) == repaired, (user, site, value, member)
    # And the engine agrees with itself: nothing left to add.
    with b.engine() as engine:
        assert engine.sync_sites(None, dry_run=True).added == 0


def test_role_replication_skips_caps_that_are_no_array_on_wordpress_7_1(twins):
    """replicate_role_like_plugin asks is_user_member_of_blog too."""
    a, b = twins
    for side in (a, b):
        with side.engine() as engine:
            engine.sync_sites(None)
        side.query("UPDATE {p}usermeta SET meta_value = 'garbage' WHERE user_id = %s AND meta_key = %s",
                   (side.ids["user2"], f"{side.prefix}{side.ids['site_authors']}_capabilities"))
        side.wp.set_role(side.ids["site_plain"], side.ids["user2"], "editor")
    changed = a.wp.replicate_role_like_plugin(a.ids["user2"], a.ids["site_plain"], "editor")
    with b.engine() as engine:
        outcome = engine.replicate_role(b.ids["user2"], "editor", b.ids["site_plain"])
    strict = wp_db_version(a) >= STRICT_MEMBERSHIP_DB_VERSION
    assert (b.ids["site_authors"] in changed) == (not strict)
    assert (b.ids["site_authors"] in outcome.sites) == (not strict)
    assert_same_rows(a, b)


def test_a_copied_role_leaves_the_roles_option_autoload_as_add_role_does(twins):
    """add_role() writes autoload 'on' since WordPress 6.6; 6.1 leaves an old 'yes' row as it is."""
    a, b = twins
    source, target = b.ids["site_club"], b.ids["site_plain"]
    option = f"{b.prefix}{target}_user_roles"
    for side in (a, b):
        with side.engine() as engine:
            engine.sync_sites(None)
        side.wp.set_role(source, side.ids["user4"], "member")
        side.query(f"UPDATE {{p}}{target}_options SET autoload = 'yes' WHERE option_name = %s", (option,))
    a.wp.add_role(target, "member", "Club member", {"read": True, "level_1": True})
    a.wp.set_role(target, a.ids["user4"], "member")
    with b.engine() as engine:
        engine.change_network_options({"missing_role": "copy"})
        outcome = engine.replicate_role(b.ids["user4"], "member", source)
    assert outcome.sites[target]["role_copied_from"] == source
    read = f"SELECT option_value, autoload FROM {{p}}{target}_options WHERE option_name = %s"
    assert b.query(read, (option,)) == a.query(read, (option,))


# -- MySQL's deprecations: every statement of the engine's main paths, warnings read back ------------

DEPRECATED = {1287, 1681, 3719, 3778}  # deprecated syntax, display width, utf8 alias, collation


@pytest.fixture
def warnings_seen(monkeypatch) -> Iterator[list[tuple[int, str, str]]]:
    """(code, message, statement) of every warning the engine's statements raise."""
    seen: list[tuple[int, str, str]] = []
    real = pymysql.cursors.Cursor.execute

    def execute(self: Any, query: Any, args: Any = None) -> Any:
        result = real(self, query, args)
        if self._result is not None and self._result.warning_count and not str(query).startswith("SHOW"):
            with self.connection.cursor() as cur:
                real(cur, "SHOW WARNINGS")
                seen.extend((int(code), msg, str(query)[:200]) for _, code, msg in cur.fetchall())
        return result

    monkeypatch.setattr(pymysql.cursors.Cursor, "execute", execute)
    yield seen


def test_the_engine_uses_no_deprecated_sql(net, warnings_seen):
    from wpmsync import jobs
    from wpmsync.reconcile import reconcile

    for full in (True, False):  # the timer's passes: watermarks, leases, the role report
        with net.engine("timer") as engine:
            reconcile(engine, full=full)
    with net.engine() as engine:
        done = engine.sync_sites(None)
        net.wp.set_role(net.ids["site_plain"], net.ids["user2"], "editor")
        engine.replicate_role(net.ids["user2"], "editor", net.ids["site_plain"])
        engine.remove_users([net.ids["user3"]], [net.ids["site_plain"]])
        engine.undo(done.job_id)
        assert jobs.acquire_lease(engine.conn, engine.network, "compat-test", "one", 60)
        assert jobs.acquire_lease(engine.conn, engine.network, "compat-test", "one", 60)  # renewed
        assert not jobs.acquire_lease(engine.conn, engine.network, "compat-test", "two", 60)
    deprecated = [w for w in warnings_seen if w[0] in DEPRECATED]
    assert not deprecated, deprecated


def test_our_tables_use_wordpress_collation(net):
    with net.engine() as engine:
        engine.sync_sites(None)
    rows = net.query("SELECT TABLE_NAME, TABLE_COLLATION FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s "
                     "AND TABLE_NAME LIKE %s", (net.db, f"{net.prefix}wpmsync\\_%"))
    # Not yet: the outbox (word for word the mu-plugin's CREATE TABLE; both would change together).
    ours = {name: collation for name, collation in rows if not name.endswith("_outbox")}
    assert ours and {n: c for n, c in ours.items() if c != "utf8mb4_unicode_520_ci"} == {}
    # WordPress's own, for the record: the same collation
    assert net.query("SELECT TABLE_COLLATION FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s "
                     "AND TABLE_NAME = %s", (net.db, f"{net.prefix}usermeta"))[0][0] == "utf8mb4_unicode_520_ci"


# -- TLS (the mysql-tls lane: require_secure_transport=ON, a self-signed CA) ------------------------

tls_lane = pytest.mark.skipif(not LANE_DB_ENV.get("WPMSYNC_DB_SSL_CA"),
                              reason="TLS runs in the mysql-tls lane (bash scripts/test.sh --lane mysql-tls)")


@tls_lane
def test_the_engine_talks_tls_with_the_configured_ca(net):
    config = net.config()
    assert config.ssl and config.ssl_ca == LANE_DB_ENV["WPMSYNC_DB_SSL_CA"]
    conn = db.connect(config)
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW SESSION STATUS LIKE 'Ssl_cipher'")
            assert cur.fetchone()[1] != ""
            cur.execute("SELECT @@require_secure_transport")
            assert int(cur.fetchone()[0]) == 1
    finally:
        conn.close()
    with net.engine() as engine:  # and a whole sync over it
        assert engine.sync_sites(None).added > 0


@tls_lane
def test_a_server_whose_certificate_another_ca_signed_is_refused(net):
    other = os.environ.get("WPMSYNC_TEST_OTHER_CA", "")
    assert os.path.isfile(other), "lanes.sh makes .tools/tls/other-ca.pem"
    with pytest.raises(Unreachable) as refused:
        db.connect(net.config(ssl_ca=other))
    text = str(refused.value)
    assert text.startswith("cannot connect to MySQL") and "CERTIFICATE_VERIFY_FAILED" in text, text


@tls_lane
def test_the_lane_server_refuses_a_connection_without_tls(net):
    """The lane really requires TLS (so the sync above went over it). Note: PyMySQL 2 tries TLS
    unasked (unverified) when the server offers it, so even WPMSYNC_DB_SSL=false gets in here."""
    with pytest.raises(pymysql.err.OperationalError) as refused:
        pymysql.connect(host=net.config().db_host, port=net.config().db_port, user="root", password="",
                        ssl_disabled=True)
    assert refused.value.args[0] == 3159, refused.value  # insecure transport prohibited


# -- the CLI, the database out of reach ------------------------------------------------------------

def test_the_cli_exits_1_when_the_database_cannot_be_reached(net):
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("WPMSYNC_")}, **LANE_DB_ENV,
           "WPMSYNC_DB_PORT": "3", "WPMSYNC_DB_NAME": net.db}  # nothing listens on port 3
    done = subprocess.run([sys.executable, "-m", "wpmsync", "plan"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 1, (done.returncode, done.stderr)
    last = done.stderr.strip().splitlines()[-1]  # after the retries' log lines
    assert last.startswith("error: cannot connect to MySQL") and "Traceback" not in done.stderr
    assert LANE  # the lane runs this against its own server settings
