"""No event is lost: the outbox, against real WordPress with the mu-plugin and the local
functions host (real HTTP, Azurite for the queue, MariaDB).

WordPress runs with the repository's mu-plugin and a test-only mu-plugin that defines the three
constants and lets HTTP to this machine through (wpfixture refuses all HTTP otherwise). "The
functions are down" means the endpoint constant points at a closed port: the mu-plugin's
shutdown send meets a refused connection, exactly as during a deploy or an outage. "Only the
timer" means the timer's own user code runs; WP-Cron never runs (wpfixture disables it).
"""
from __future__ import annotations

import json
import shutil
import socket
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Iterator

import pytest
from azure.functions.timer import TimerRequest

from conftest import network1_users
from wpfixture import WordPress

ROOT = Path(__file__).resolve().parent.parent
PLUGIN = ROOT / "wordpress" / "mu-plugins"
SECRET = "outbox-hook-secret-" + uuid.uuid4().hex
KEY = "outbox-function-key-" + uuid.uuid4().hex

TEST_MU = r"""<?php
$wpmsync_test = json_decode( file_get_contents( dirname( __DIR__ ) . '/wpmsync-test.json' ), true );
foreach ( $wpmsync_test['constants'] as $name => $value ) {
	define( $name, $value );
}
// wpfixture refuses every request at priority 10; requests to this machine go through.
add_filter( 'pre_http_request', function ( $pre, $args, $url ) {
	return in_array( wp_parse_url( $url, PHP_URL_HOST ), array( '127.0.0.1', 'localhost' ), true ) ? false : $pre;
}, 100, 3 );
"""


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Site:
    """The network's WordPress with the mu-plugin, pointed at the functions or at nothing."""

    def __init__(self, net: Any, tmp: Path, api: str) -> None:
        # "localhost": WordPress's WP_HTTP_BLOCK_EXTERNAL (wpfixture sets it) lets that name through.
        self.net, self.ids, self.api = net, net.ids, api.replace("//127.0.0.1:", "//localhost:")
        content = tmp / "wp-content"
        shutil.copytree(PLUGIN, content / "mu-plugins", dirs_exist_ok=True)
        (content / "mu-plugins" / "0-wpmsync-test.php").write_text(TEST_MU)
        self.config_path = content / "wpmsync-test.json"
        # transaction=False: every statement commits on its own, as WordPress runs (wpfixture
        # otherwise wraps a request in one transaction, which holds row locks to its end).
        self.wp = WordPress(net.db, net.prefix, content_dir=str(content), transaction=False)
        self.up()

    def _point(self, endpoint: str) -> None:
        self.config_path.write_text(json.dumps({"constants": {
            "WPMSYNC_ENDPOINT": endpoint, "WPMSYNC_FUNCTION_KEY": KEY, "WPMSYNC_HOOK_SECRET": SECRET}}))

    def up(self) -> None:
        self._point(self.api)

    def down(self) -> None:
        self._point(f"http://localhost:{closed_port()}/api")

    def run(self, *codes: str, **args: Any) -> list[Any]:
        """PHP snippets in one WordPress request (its shutdown sends the request's events)."""
        return self.wp.run([{"op": "eval", "code": c, "args": {**self.ids, **args}} for c in codes])

    def outbox(self) -> list[tuple]:
        return self.net.query("SELECT event, user_id, blog_id, attempts, event_id FROM {p}wpmsync_outbox ORDER BY id")

    def removed(self, user_id: int) -> list[int]:
        """The removal record, as WordPress reads it."""
        value = self.wp.eval("wp_cache_flush(); return get_user_meta( $args['uid'], 'wpmus_removed_from_blogs', true );",
                             {"uid": user_id})
        return sorted(int(b) for b in value) if value else []

    def blogs_of(self, user_id: int) -> set[int]:
        """What WordPress says (get_blogs_of_user)."""
        return set(self.wp.read_back(user_ids=[user_id], members=False)["users"][user_id]["blogs"])


@pytest.fixture
def site(net, azurite, tmp_path) -> Iterator[Site]:
    from blueprints import common
    from wpfixture.local_host import serve_functions

    mp = pytest.MonkeyPatch()
    mp.setattr(common, "QUEUE_NAME", f"wpmsync-outbox-{uuid.uuid4().hex[:12]}")
    env = {"WPMSYNC_DB_NAME": net.db, "WPMSYNC_TABLE_PREFIX": net.prefix, "AzureWebJobsStorage": azurite}
    server: list = []
    try:
        with serve_functions(hook_secret=SECRET, function_key=KEY, env=env, server=server) as api:
            s = Site(net, tmp_path, api)
            s.server = server[0]
            yield s
            assert not s.server.errors, s.server.errors  # no 500, no fault in a queue function
    finally:
        mp.undo()


def timer() -> dict:
    """One run of the timer's user code, as the host would call it."""
    import function_app  # noqa: F401  (registers the blueprints, as the host does)
    from blueprints import reconcile

    reconcile.reconcile_drift.build().get_user_function()(TimerRequest(past_due=False))
    return {}


def wait_for_jobs(net: Any, timeout: float = 30) -> None:
    """Until every job the timer queued is in a final state (the local host pumps the queue)."""
    deadline = time.monotonic() + timeout
    while net.query("SELECT (SELECT COUNT(*) FROM {p}wpmsync_jobs WHERE state = 'queued') + "
                    "(SELECT COUNT(*) FROM {p}wpmsync_job_batches WHERE state = 'pending')")[0][0]:
        assert time.monotonic() < deadline, (net.query("SELECT id, state, result, error FROM {p}wpmsync_jobs"),
                                             net.query("SELECT * FROM {p}wpmsync_job_batches"))
        time.sleep(0.2)


def roles_of(net: Any, user_id: int) -> dict[int, str]:
    """The user's role on each site, from the capabilities rows (one role each here)."""
    out = {}
    for key, value in net.query("SELECT meta_key, meta_value FROM {p}usermeta WHERE user_id = %s "
                                "AND meta_key LIKE 'wp\\_%%capabilities'", (user_id,)):
        middle = key[len("wp_"):-len("capabilities")].rstrip("_")
        out[int(middle) if middle else 1] = value.split('"')[1]
    return out


def synced(site: Site) -> None:
    """Every user everywhere, and the three switches on (as an operator runs it)."""
    with site.net.engine() as engine:
        engine.sync_sites(None)
        engine.change_settings(new_user=True, new_site=True, role_sync=True)


CHANGES = (
    "remove_user_from_blog( $args['user2'], $args['site_plain'] ); return true;",
    "wp_set_current_user( $args['admin'] ); $u = new WP_User( $args['user3'] ); $u->set_role( 'author' ); return true;",
    "return wpmu_create_user( 'latecomer', 'pw-123456789', 'late@example.test' );",
    "return wpmu_create_blog( get_network()->domain, '/late/', 'Late', $args['admin'] );",
)


def test_events_made_while_the_functions_are_down_are_applied_by_the_timer_alone(site):
    net = site.net
    synced(site)
    site.down()
    _, _, new_user, new_blog = site.run(*CHANGES)
    # In WordPress, at once: the removal is recorded where it happened, every event is a row.
    assert site.removed(net.ids["user2"]) == [net.ids["site_plain"]]
    waiting = site.outbox()
    assert [(e, u, b) for e, u, b, _, _ in waiting] == [
        ("user_removed", net.ids["user2"], net.ids["site_plain"]), ("role_changed", net.ids["user3"], 1),
        ("user_created", new_user, 1), ("site_created", 0, new_blog)]
    assert waiting[0][3] == 1 and "Connection refused" in net.query(
        "SELECT last_error FROM {p}wpmsync_outbox ORDER BY id LIMIT 1")[0][0]
    # The functions are back; WordPress sends nothing more (no request, no WP-Cron): the timer.
    site.up()
    net.query("UPDATE {p}wpmsync_outbox SET next_try = UTC_TIMESTAMP()")  # past the backoff
    timer()
    wait_for_jobs(net)
    assert site.outbox() == []
    live = {r[0] for r in net.query("SELECT blog_id FROM {p}blogs WHERE site_id = 1 AND archived = 0 "
                                    "AND deleted = 0 AND spam = 0")}
    assert net.ids["site_plain"] not in site.blogs_of(net.ids["user2"])           # the removal is kept
    assert site.removed(net.ids["user2"]) == [net.ids["site_plain"]]
    roles = roles_of(net, net.ids["user3"])
    assert roles.pop(new_blog) == "subscriber" and set(roles.values()) == {"author"}  # replicated; the
    # site made after the change gave its default_role, as WordPress does
    assert site.blogs_of(new_user) == live                                        # joined every site
    everyone = {u for u in network1_users(net) if u not in (net.ids["user_spammer"], net.ids["user_boss"])}
    assert everyone | {new_user} <= net.members(new_blog)                         # the site got everyone
    # Each event applied once: one answer each in the ledger, and a second timer writes nothing.
    ids = [w[4] for w in waiting]
    answers = net.query("SELECT event_id FROM {p}wpmsync_events WHERE answer IS NOT NULL")
    assert sorted(ids) == sorted(a for (a,) in answers if a in ids)
    before = net.usermeta_checksum()
    timer()
    wait_for_jobs(net)
    assert net.usermeta_checksum() == before


def test_the_reconcile_never_adds_a_user_whose_event_is_still_undelivered(site):
    """A removal whose event is not applied yet: even with the record gone (say, edited by
    hand), the reconcile pass leaves the user out while the outbox holds an event of theirs."""
    net = site.net
    synced(site)
    uid, plain = net.ids["user2"], net.ids["site_plain"]
    site.down()
    site.run("remove_user_from_blog( $args['user2'], $args['site_plain'] ); return true;")
    net.query("DELETE FROM {p}usermeta WHERE user_id = %s AND meta_key = 'wpmus_removed_from_blogs'", (uid,))
    with net.engine() as engine:
        outcome = engine.sync_sites([plain])
    assert uid not in net.members(plain) and any(
        s.get("user_id") == uid and "outbox" in s["reason"] for s in outcome.skipped), outcome.skipped
    with net.engine() as engine:
        assert engine.sync_sites([plain], force=True).added == 1  # a person's forced sync is obeyed


def test_one_users_events_are_applied_in_the_order_they_happened(site):
    """Two role changes made while the functions were down: the last one wins everywhere, even
    when the newer event is delivered first (its earlier one is applied before it)."""
    net = site.net
    synced(site)
    site.down()
    set_role = "wp_set_current_user( $args['admin'] ); ( new WP_User( $args['user3'] ) )->set_role( $args['role'] ); return true;"
    site.run(set_role, role="author")
    site.run(set_role, role="editor")
    (first, second) = [w[4] for w in site.outbox()]
    # The newer event arrives first (WP-Cron, or a retry, racing the timer): applied after the older.
    from blueprints import common
    from wpmsync import delivery
    engine = common.engine("test")
    try:
        row = net.query("SELECT event, data FROM {p}wpmsync_outbox WHERE event_id = %s", (second,))[0]
        delivery.deliver(engine, second, row[0], json.loads(row[1]), common.send, common.notify_wordpress)
    finally:
        engine.close()
    assert site.outbox() == [] and set(roles_of(net, net.ids["user3"]).values()) == {"editor"}
    assert [r[0] for r in net.query("SELECT event_id FROM {p}wpmsync_events WHERE event_id IN (%s, %s) "
                                    "ORDER BY received_at", (first, second))] == [first, second]


def test_an_event_delivered_twice_at_once_is_applied_once(site):
    """The shutdown send and the timer's drain race for the same events: each is applied once,
    and a row left behind by a delivery that died after applying it is only settled."""
    net = site.net
    synced(site)
    uid = net.ids["user4"]
    stop, passes = threading.Event(), []

    def drain_all_the_time() -> None:
        from blueprints import common
        from wpmsync import delivery
        engine = common.engine("test-race")
        try:
            while not stop.is_set():
                passes.append(delivery.drain(engine, common.send, common.notify_wordpress))
        finally:
            engine.close()

    racer = threading.Thread(target=drain_all_the_time)
    racer.start()
    try:
        # Each event is due at once (no grace): the drain may take it before the shutdown send.
        site.run("remove_user_from_blog( $args['user4'], $args['site_plain'] ); "
                 "$GLOBALS['wpdb']->query( \"UPDATE {$GLOBALS['wpdb']->base_prefix}wpmsync_outbox SET next_try = UTC_TIMESTAMP() - INTERVAL 1 SECOND\" ); "
                 "usleep( 300000 ); return true;",
                 "wp_set_current_user( $args['admin'] ); ( new WP_User( $args['user4'] ) )->set_role( 'author' ); "
                 "$GLOBALS['wpdb']->query( \"UPDATE {$GLOBALS['wpdb']->base_prefix}wpmsync_outbox SET next_try = UTC_TIMESTAMP() - INTERVAL 1 SECOND\" ); "
                 "usleep( 300000 ); return true;")
        deadline = time.monotonic() + 20
        while site.outbox() and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        stop.set()
        racer.join(timeout=60)
    assert site.outbox() == []
    changes = [c for (c,) in net.query("SELECT trigger_info FROM {p}wpmsync_changes")]
    ledger = dict(net.query("SELECT event, event_id FROM {p}wpmsync_events WHERE answer IS NOT NULL"))
    assert set(ledger) == {"user_removed", "role_changed"}
    # Whoever applied it (the hook or the drain), one change at most per event: the removal was
    # already recorded by the mu-plugin (nothing to write), the role change wrote once.
    assert [len([c for c in changes if ledger[e] in c]) for e in ("user_removed", "role_changed")] == [0, 1], changes
    # and the shutdown send reached the functions too (answered as a replay, or applying first)
    assert len([r for r in site.server.requests if r[1].endswith("/hooks") and r[2] == 200]) == 2
    assert uid not in net.members(net.ids["site_plain"])
    assert set(roles_of(net, uid).values()) == {"author"}
    # A delivery that applied an event and died before deleting its row: the row comes back.
    applied = net.query("SELECT event_id FROM {p}wpmsync_events WHERE event = 'role_changed'")[0][0]
    before = net.usermeta_checksum()
    net.query("INSERT INTO {p}wpmsync_outbox (event_id, event, network_id, user_id, blog_id, data, created_at, "
              "next_try) VALUES (%s, 'role_changed', 1, %s, 1, %s, UTC_TIMESTAMP(), UTC_TIMESTAMP())",
              (applied, uid, json.dumps({"user_id": uid, "blog_id": 1, "role": "editor", "actor_id": net.ids["admin"]})))
    timer()
    assert site.outbox() == [] and net.usermeta_checksum() == before
