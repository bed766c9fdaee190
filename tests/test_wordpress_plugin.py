"""The WordPress mu-plugin (wordpress/mu-plugins/) against real WordPress.

Each test boots Debian's WordPress (wpfixture) with a private ``wp-content`` whose ``mu-plugins``
holds a copy of the plugin plus a test-only mu-plugin (``0-wpmsync-test.php``, loaded first) that
defines the three constants and answers every outgoing HTTP request through ``pre_http_request``,
recording it in a JSON-lines file. Hooks are sent at PHP ``shutdown`` exactly as in production, so
the file holds what the Functions app would receive; every recorded hook is checked with the
Python verifier (``wpmsync.signing.verify``): the cross-language check.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from wpfixture import WordPress
from wpmsync.errors import Unauthorized
from wpmsync.signing import sign, signature_header, verify

ROOT = Path(__file__).resolve().parent.parent
PLUGIN = ROOT / "wordpress" / "mu-plugins"
SIGNING = json.loads((Path(__file__).parent / "vectors" / "signing.json").read_text("utf-8"))
VECTORS = SIGNING["vectors"]
ROTATION = SIGNING["rotation"]  # two secrets: "sha256=<current>,sha256=<previous>"
HEADERS = SIGNING["headers"]  # the header grammar both verifiers must agree on

SECRET = "test-hook-secret-0123456789abcdef"
KEY = "test-function-key-must-stay-on-the-server"
ENDPOINT = "https://wpmsync.example.test/api"
CONSTANTS = {"WPMSYNC_ENDPOINT": ENDPOINT, "WPMSYNC_FUNCTION_KEY": KEY, "WPMSYNC_HOOK_SECRET": SECRET}
JOB = "0123456789abcdef0123456789abcdef"

# Test-only mu-plugin: constants from the JSON config, canned answers, a request log.
TEST_MU = r"""<?php
$wpmsync_test = json_decode( file_get_contents( dirname( __DIR__ ) . '/wpmsync-test.json' ), true );
foreach ( $wpmsync_test['constants'] as $name => $value ) {
	define( $name, $value );
}
// After wpfixture's own filter (priority 10), which refuses every request.
add_filter( 'pre_http_request', function ( $pre, $args, $url ) use ( $wpmsync_test ) {
	$path = (string) wp_parse_url( $url, PHP_URL_PATH );
	$key  = $args['method'] . ' ' . preg_replace( '#^/api/#', '', $path );
	file_put_contents( $wpmsync_test['log'], wp_json_encode( array(
		'url' => $url, 'method' => $args['method'], 'headers' => $args['headers'],
		'body' => isset( $args['body'] ) ? $args['body'] : null, 'timeout' => $args['timeout'],
	) ) . "\n", FILE_APPEND );
	$answer = isset( $wpmsync_test['responses'][ $key ] ) ? $wpmsync_test['responses'][ $key ]
		: array( 'status' => 200, 'body' => array( 'status' => 'done' ) );
	if ( 'error' === $answer ) {
		return new WP_Error( 'http_request_failed', 'cURL error 7: Failed to connect (test)' );
	}
	return array( 'headers' => array(), 'body' => wp_json_encode( $answer['body'] ), 'cookies' => array(),
		'filename' => null, 'response' => array( 'code' => $answer['status'], 'message' => '' ) );
}, 100, 3 );
"""


class Plugged:
    """A fixture network booted with the mu-plugin; ``run`` executes PHP in one request."""

    def __init__(self, net: Any, tmp: Path) -> None:
        self.net, self.ids = net, net.ids
        content = tmp / "wp-content"
        shutil.copytree(PLUGIN, content / "mu-plugins", dirs_exist_ok=True)
        (content / "mu-plugins" / "0-wpmsync-test.php").write_text(TEST_MU)
        self.config_path = content / "wpmsync-test.json"
        self.log = tmp / "requests.jsonl"
        self.wp = WordPress(net.db, net.prefix, content_dir=str(content))
        self.configure()

    def configure(self, constants: dict[str, str] | None = None,
                  responses: dict[str, Any] | None = None) -> None:
        self.config_path.write_text(json.dumps({
            "constants": CONSTANTS if constants is None else constants,
            "responses": responses or {}, "log": str(self.log)}))

    def run(self, *codes: str, **args: Any) -> list[Any]:
        """Run PHP snippets (``eval`` ops, ``$args`` available) in one WordPress request."""
        self.log.unlink(missing_ok=True)
        return self.wp.run([{"op": "eval", "code": c, "args": {**self.ids, **args}} for c in codes])

    def requests(self) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    def hooks(self) -> list[dict[str, Any]]:
        """The hooks sent by the last run, each checked with the Python verifier."""
        out = []
        for r in self.requests():
            assert r["url"] == f"{ENDPOINT}/hooks" and r["method"] == "POST", r
            h = r["headers"]
            assert h["Content-Type"] == "application/json"
            assert r["timeout"] == 3
            assert verify(SECRET, h["X-Wpmsync-Timestamp"], h["X-Wpmsync-Signature"], r["body"].encode()) \
                == int(h["X-Wpmsync-Timestamp"])
            assert KEY not in json.dumps(r)
            doc = json.loads(r["body"])
            assert set(doc) == {"event", "event_id", "data"}
            assert 8 <= len(doc["event_id"]) <= 64
            out.append(doc)
        assert len({d["event_id"] for d in out}) == len(out)
        return out

    def events(self) -> list[tuple[str, dict]]:
        return [(d["event"], d["data"]) for d in self.hooks()]


@pytest.fixture
def wp(net, tmp_path) -> Plugged:
    return Plugged(net, tmp_path)


ROLE_SYNC_ON = "update_site_option('wpmus_setUserRoleSync', 'yes'); return true;"


# -- hooks ------------------------------------------------------------------------------------

def test_user_created_on_a_subsite_sends_one_user_created(wp):
    """user-new.php on a subsite: wpmu_create_user, then add_user_to_blog (role sync on: still no
    role_changed, no user_added)."""
    uid, = wp.run(ROLE_SYNC_ON, """
        switch_to_blog($args['site_plain']);
        $uid = wpmu_create_user('newbie', 'pw', 'newbie@example.test');
        add_user_to_blog($args['site_plain'], $uid, 'author');
        restore_current_blog();
        return $uid;""")[1:]
    assert wp.events() == [("user_created", {"user_id": uid, "blog_id": wp.ids["site_plain"]})]


def test_user_created_by_network_admin_then_added_reports_the_site(wp):
    uid, = wp.run("""
        $uid = wpmu_create_user('netnew', 'pw', 'netnew@example.test');
        add_user_to_blog($args['site_authors'], $uid, 'subscriber');
        add_user_to_blog($args['site_editors'], $uid, 'subscriber');
        return $uid;""")
    assert wp.events() == [("user_created", {"user_id": uid, "blog_id": wp.ids["site_authors"]})]


def test_wp_insert_user_on_a_subsite_sends_one_user_created(wp):
    uid, = wp.run(ROLE_SYNC_ON, """
        switch_to_blog($args['site_editors']);
        $uid = wp_insert_user(['user_login' => 'inserted', 'user_pass' => 'pw',
                               'user_email' => 'inserted@example.test', 'role' => 'editor']);
        restore_current_blog();
        return $uid;""")[1:]
    assert wp.events() == [("user_created", {"user_id": uid, "blog_id": wp.ids["site_editors"]})]


def test_network_admin_user_without_site(wp):
    uid, = wp.run("return wpmu_create_user('lonely', 'pw', 'lonely@example.test');")
    assert wp.events() == [("user_created", {"user_id": uid, "blog_id": 1})]


def test_invitee_activation_is_one_user_created_and_no_removal(wp):
    """An invitation: the signup is activated; core removes the new user from the main site and
    adds it to the inviting site: one user_created for the inviting site, nothing else."""
    signup = wp.run("""
        $signup = [];
        add_action('after_signup_user', function ($user, $email, $key, $meta, $id = 0) use (&$signup) {
            $signup = ['key' => $key, 'id' => (int) $id];
        }, 10, 5);
        wpmu_signup_user('invitee', 'invitee@example.test',
                         ['add_to_blog' => $args['site_plain'], 'new_role' => 'editor']);
        return $signup;""")[0]
    assert wp.events() == []
    uid, = wp.run(ROLE_SYNC_ON, """
        // Debian's 6.1.9 takes the signup id as well (a security backport); upstream 6.1 only the key.
        $r = (new ReflectionFunction('wpmu_activate_signup'))->getNumberOfParameters() > 1
            ? wpmu_activate_signup($args['key'], $args['id'])
            : wpmu_activate_signup($args['key']);
        if (is_wp_error($r)) { throw new Exception($r->get_error_message()); }
        return [(int) $r['user_id'], did_action('remove_user_from_blog')];""", **signup)[1:]
    uid, removals = uid
    assert removals == 1  # core removed the invitee from the main site: housekeeping, not reported
    assert wp.net.members(wp.ids["site_plain"]) >= {uid} and uid not in wp.net.members(1)
    assert wp.events() == [("user_created", {"user_id": uid, "blog_id": wp.ids["site_plain"]})]


def test_site_created(wp):
    bid, = wp.run(ROLE_SYNC_ON, """
        $bid = wpmu_create_blog('wp.test', '/fresh/', 'Fresh', 1);
        return $bid;""")[1:]
    # The creator becomes administrator of the new site: part of site_created, not user_added.
    assert wp.events() == [("site_created", {"blog_id": bid})]


def test_remove_user_from_blog_sends_user_removed(wp):
    wp.run("remove_user_from_blog($args['user_ed'], $args['site_editors']); return true;")
    assert wp.events() == [("user_removed", {"user_id": wp.ids["user_ed"], "blog_id": wp.ids["site_editors"]})]


@pytest.mark.parametrize("how", [
    "wpmu_delete_blog($args['site_editors'], true);",
    "wpmu_delete_blog($args['site_editors'], false);",
    "wp_delete_site($args['site_editors']);",
])
def test_deleting_a_site_reports_no_removals(wp, how):
    wp.run("""add_user_to_blog($args['site_editors'], $args['user2'], 'author');
              add_user_to_blog($args['site_editors'], $args['user3'], 'author'); return true;""")
    assert len(wp.events()) == 2  # user_added x 2
    wp.run("require_once ABSPATH . 'wp-admin/includes/ms.php';" + how + " return true;")
    assert wp.events() == []
    assert wp.net.members(wp.ids["site_editors"]) == set() or "false" in how


def test_deleting_a_user_reports_no_removals(wp):
    wp.run("wpmu_delete_user($args['user_ed']); return true;")
    assert wp.events() == []


def test_add_user_to_blog_sends_user_added_and_no_role_changed(wp):
    wp.run(ROLE_SYNC_ON, "add_user_to_blog($args['site_plain'], $args['user2'], 'author'); return true;")
    assert wp.events() == [("user_added", {"user_id": wp.ids["user2"], "blog_id": wp.ids["site_plain"]})]


def test_removed_then_added_back_sends_only_the_last(wp):
    wp.run("""remove_user_from_blog($args['user_ed'], $args['site_editors']);
              add_user_to_blog($args['site_editors'], $args['user_ed'], 'editor'); return true;""")
    assert wp.events() == [("user_added", {"user_id": wp.ids["user_ed"], "blog_id": wp.ids["site_editors"]})]


SET_ROLE = """
    wp_set_current_user($args['admin']);
    switch_to_blog($args['site_authors']);
    $u = new WP_User($args['user1']);
    $u->set_role('author');
    $u->set_role('editor');
    restore_current_blog();
    return true;"""


def test_set_role_without_role_sync_sends_nothing(wp):
    wp.run(SET_ROLE)
    assert wp.events() == []


def test_set_role_with_role_sync_sends_one_role_changed(wp):
    wp.run(ROLE_SYNC_ON, SET_ROLE)
    assert wp.events() == [("role_changed", {"user_id": wp.ids["user1"], "blog_id": wp.ids["site_authors"],
                                             "role": "editor", "actor_id": wp.ids["admin"]})]


def test_set_role_through_for_site_reports_that_site(wp):
    """WP_User::for_site() without switching: the role is written on that site, reported there."""
    wp.run(ROLE_SYNC_ON, """
        $u = new WP_User($args['user_ed']);
        $u->for_site($args['site_editors']);
        $u->set_role('author');
        return true;""")
    assert wp.events() == [("role_changed", {"user_id": wp.ids["user_ed"], "blog_id": wp.ids["site_editors"],
                                             "role": "author", "actor_id": 0})]


# -- signing ----------------------------------------------------------------------------------

def test_shared_vectors_python():
    for v in VECTORS:
        assert sign(v["secret"], v["timestamp"], v["body"].encode("utf-8")) == v["signature"]
        assert verify(v["secret"], v["timestamp"], v["signature"], v["body"].encode("utf-8"),
                      now=int(v["timestamp"])) == int(v["timestamp"])


def test_shared_vectors_php(wp):
    signed, verified, tampered, late = wp.run("""
        $out = [[], [], [], []];
        foreach ($args['vectors'] as $v) {
            $out[0][] = Wpmsync_Signer::sign($v['secret'], $v['timestamp'], $v['body']);
            $out[1][] = Wpmsync_Signer::verify($v['secret'], $v['timestamp'], $v['signature'], $v['body'], (int) $v['timestamp']);
            $out[2][] = is_wp_error(Wpmsync_Signer::verify($v['secret'], $v['timestamp'], $v['signature'], $v['body'] . ' ', (int) $v['timestamp']));
            $out[3][] = is_wp_error(Wpmsync_Signer::verify($v['secret'], $v['timestamp'], $v['signature'], $v['body'], (int) $v['timestamp'] + 301));
        }
        return $out;""", vectors=VECTORS)[0]
    assert signed == [v["signature"] for v in VECTORS]
    assert verified == [True] * len(VECTORS)
    assert tampered == [True] * len(VECTORS) and late == [True] * len(VECTORS)


def openssl_signature(secret: str, timestamp: str, body: str) -> str:
    """An oracle that is neither of our signers: ``openssl dgst -sha256 -hmac``."""
    out = subprocess.run(["openssl", "dgst", "-sha256", "-hmac", secret, "-hex"],
                         input=f"{timestamp}.{body}".encode("utf-8"), capture_output=True, check=True)
    return "sha256=" + out.stdout.decode().split()[-1]


def test_one_secret_header_is_the_old_single_signature():
    """Without a previous secret the header is byte for byte what it always was."""
    for v in VECTORS:
        body = v["body"].encode("utf-8")
        assert signature_header(v["secret"], v["timestamp"], body) == v["signature"]
        assert signature_header([v["secret"]], v["timestamp"], body) == v["signature"]
        assert signature_header([v["secret"], v["secret"], ""], v["timestamp"], body) == v["signature"]


def test_rotation_vectors_python():
    for v in ROTATION:
        body = v["body"].encode("utf-8")
        items = v["header"].split(",")
        assert items == [openssl_signature(s, v["timestamp"], v["body"]) for s in v["secrets"]]
        assert signature_header(v["secrets"], v["timestamp"], body) == v["header"]  # current first
        for secrets in ([v["secrets"][0]], [v["secrets"][1]], v["secrets"], v["secrets"][::-1]):
            assert verify(secrets, v["timestamp"], v["header"], body, now=int(v["timestamp"])) \
                == int(v["timestamp"])


def _header_case(case: dict[str, Any]) -> tuple[str, str]:
    of = ROTATION[case["of"]]
    return of["timestamp"], of["body"]


def test_header_vectors_python():
    for case in HEADERS:
        timestamp, body = _header_case(case)
        try:
            verify(case["secrets"], timestamp, case["header"], body.encode("utf-8"), now=int(timestamp))
            accepted = True
        except Unauthorized:
            accepted = False
        assert accepted is case["accepted"], case["why"]


def test_rotation_and_header_vectors_php(wp):
    oracle, signed, single, verdicts = wp.run("""
        $out = [[], [], [], []];
        foreach ($args['rotation'] as $v) {
            $items = [];
            foreach ($v['secrets'] as $s) { $items[] = 'sha256=' . hash_hmac('sha256', $v['timestamp'] . '.' . $v['body'], $s); }
            $out[0][] = implode(',', $items);
            $out[1][] = Wpmsync_Signer::signature_header($v['secrets'], $v['timestamp'], $v['body']);
        }
        foreach ($args['vectors'] as $v) {
            $out[2][] = Wpmsync_Signer::signature_header([$v['secret'], $v['secret'], ''], $v['timestamp'], $v['body']);
        }
        foreach ($args['headers'] as $c) {
            $of = $args['rotation'][$c['of']];
            $r = Wpmsync_Signer::verify($c['secrets'], $of['timestamp'], $c['header'], $of['body'], (int) $of['timestamp']);
            $out[3][] = true === $r ? true : (is_wp_error($r) ? $r->get_error_data()['status'] : 'neither');
        }
        return $out;""", rotation=ROTATION, vectors=VECTORS, headers=HEADERS)[0]
    assert oracle == signed == [v["header"] for v in ROTATION]
    assert single == [v["signature"] for v in VECTORS]
    assert verdicts == [True if c["accepted"] else 401 for c in HEADERS], [c["why"] for c in HEADERS]


# -- the clean-cache route --------------------------------------------------------------------

CLEAN = """
    get_userdata($args['user1']); get_user_meta($args['user1']);
    wp_cache_set($args['site_plain'] . '_user_count', 5, 'blog-details');
    $req = new WP_REST_Request('POST', '/wpmsync/v1/clean-cache');
    $req->set_body($args['body']);
    $req->set_header('Content-Type', 'application/json');
    foreach ($args['headers'] as $k => $v) { $req->set_header($k, $v); }
    $res = rest_do_request($req);
    return ['status' => $res->get_status(), 'data' => $res->get_data(),
            'users' => wp_cache_get($args['user1'], 'users'),
            'meta' => wp_cache_get($args['user1'], 'user_meta'),
            'count' => wp_cache_get($args['site_plain'] . '_user_count', 'blog-details')];"""


def _clean(wp, body: str, headers: dict[str, str]) -> dict[str, Any]:
    return wp.run(CLEAN, body=body, headers=headers)[0]


def test_clean_cache_signed_by_python_cleans(wp):
    body = json.dumps({"user_ids": [wp.ids["user1"]], "blog_ids": [wp.ids["site_plain"]]})
    ts = str(int(time.time()))
    out = _clean(wp, body, {"X-Wpmsync-Timestamp": ts, "X-Wpmsync-Signature": sign(SECRET, ts, body.encode())})
    assert out["status"] == 200 and out["data"] == {"users": 1, "blogs": 1}
    assert out["users"] is False and out["meta"] is False and out["count"] is False
    assert wp.events() == []


@pytest.mark.parametrize("case", ["unsigned", "expired", "bad", "other secret", "malformed"])
def test_clean_cache_refuses_unsigned_and_expired(wp, case):
    body = json.dumps({"user_ids": [wp.ids["user1"]]})
    ts = str(int(time.time()) - (600 if case == "expired" else 0))
    sig = sign("x" * 32 if case == "other secret" else SECRET, ts, body.encode())
    if case == "malformed":  # a valid signature, then an empty item: refused as a whole
        sig += ","
    headers = {} if case == "unsigned" else {"X-Wpmsync-Timestamp": ts,
                                             "X-Wpmsync-Signature": sig[:-1] + "0" if case == "bad" else sig}
    if case == "bad" and sig.endswith("0"):
        headers["X-Wpmsync-Signature"] = sig[:-1] + "1"
    out = _clean(wp, body, headers)
    assert out["status"] == 401
    assert out["users"] is not False  # nothing cleaned


def test_clean_cache_limits_and_validates(wp):
    ts = str(int(time.time()))
    for payload in ({"user_ids": list(range(1, 10002))}, {"user_ids": ["1; DROP"]}, [1, 2]):
        body = json.dumps(payload)
        out = _clean(wp, body, {"X-Wpmsync-Timestamp": ts, "X-Wpmsync-Signature": sign(SECRET, ts, body.encode())})
        assert out["status"] == 400, payload


# -- failures and configuration ---------------------------------------------------------------

def test_failed_send_is_logged_and_harmless(wp):
    wp.configure(responses={"POST hooks": "error"})
    wp.run("remove_user_from_blog($args['user_ed'], $args['site_editors']);"
           "add_user_to_blog($args['site_plain'], $args['user2'], 'author'); return true;")
    assert len(wp.requests()) == 1  # unreachable: the rest of the request's hooks are dropped
    err = wp.wp.last_stderr
    assert "wpmsync: hook user_removed" in err and "not delivered" in err and "1 more hook(s)" in err
    assert SECRET not in err and KEY not in err
    assert wp.ids["user_ed"] not in wp.net.members(wp.ids["site_editors"])  # WordPress's work stands


def test_error_answer_is_logged(wp):
    wp.configure(responses={"POST hooks": {"status": 500, "body": {"error": "database down",
                                                                    "correlation_id": "c0ffee"}}})
    wp.run("remove_user_from_blog($args['user_ed'], $args['site_editors']);"
           "add_user_to_blog($args['site_plain'], $args['user2'], 'author'); return true;")
    assert len(wp.requests()) == 2  # an HTTP error is not a dead endpoint: keep sending
    # A fault is named by its correlation id (its detail is in the functions' logs), not its words.
    assert "HTTP 500" in wp.wp.last_stderr and "c0ffee" in wp.wp.last_stderr
    assert "database down" not in wp.wp.last_stderr


# -- the outbox and the removal record -------------------------------------------------------

def outbox(wp: Plugged) -> list[dict[str, Any]]:
    rows = wp.net.query("SELECT event_id, event, user_id, blog_id, data, attempts, "
                        "TIMESTAMPDIFF(SECOND, UTC_TIMESTAMP(), next_try), last_error FROM {p}wpmsync_outbox ORDER BY id")
    keys = ("event_id", "event", "user_id", "blog_id", "data", "attempts", "due_in", "last_error")
    return [dict(zip(keys, r)) for r in rows]


def removal_record(wp: Plugged, user_id: int) -> Any:
    """The record as WordPress reads it (get_user_meta, single)."""
    return wp.wp.eval("wp_cache_flush(); return get_user_meta( $args['u'], 'wpmus_removed_from_blogs', true );",
                      {"u": user_id})


def test_an_event_is_an_outbox_row_from_the_moment_it_happens_until_acknowledged(wp):
    seen = wp.run("remove_user_from_blog($args['user_ed'], $args['site_editors']);"
                  "return $GLOBALS['wpdb']->get_results(\"SELECT event_id, event, user_id, blog_id, data FROM "
                  "{$GLOBALS['wpdb']->base_prefix}wpmsync_outbox\", ARRAY_A);")[0]
    assert [(r["event"], int(r["user_id"]), int(r["blog_id"])) for r in seen] == [
        ("user_removed", wp.ids["user_ed"], wp.ids["site_editors"])]
    sent, = wp.hooks()
    assert sent["event_id"] == seen[0]["event_id"] and json.loads(seen[0]["data"]) == sent["data"]
    assert outbox(wp) == []  # acknowledged (200): gone


@pytest.mark.parametrize("answer,kept", [
    ({"status": 503, "body": {"error": "busy"}}, True),       # try again later
    ({"status": 500, "body": {"error": "fault"}}, True),
    ({"status": 404, "body": {"error": "no such site"}}, False),  # refused for good: settled
    ({"status": 400, "body": {"error": "bad data"}}, False),
    ({"status": 200, "body": {"status": "done", "replayed": True}}, False),
])
def test_an_answer_settles_the_event_or_keeps_it_with_backoff(wp, answer, kept):
    wp.configure(responses={"POST hooks": answer})
    wp.run("remove_user_from_blog($args['user_ed'], $args['site_editors']); return true;")
    rows = outbox(wp)
    if not kept:
        assert rows == []
        return
    (row,) = rows
    assert row["attempts"] == 1 and 55 <= row["due_in"] <= 60 and str(answer["status"]) in row["last_error"]
    wp.configure(responses={"POST hooks": answer})
    wp.net.query("UPDATE {p}wpmsync_outbox SET next_try = UTC_TIMESTAMP()")
    wp.run("do_action( 'wpmsync_outbox_retry' ); return true;")
    (row,) = outbox(wp)
    assert row["attempts"] == 2 and 115 <= row["due_in"] <= 120  # 1, 2, 4 ... minutes


def test_an_unreachable_endpoint_leaves_every_event_in_the_outbox_and_wp_cron_sends_them(wp):
    wp.configure(responses={"POST hooks": "error"})
    wp.run("remove_user_from_blog($args['user_ed'], $args['site_editors']);"
           "add_user_to_blog($args['site_plain'], $args['user2'], 'author'); return true;")
    rows = outbox(wp)
    assert [(r["event"], r["attempts"]) for r in rows] == [("user_removed", 1), ("user_added", 0)]
    assert "Failed to connect" in rows[0]["last_error"] and rows[1]["due_in"] > 0  # the rest: after the grace
    assert wp.net.query("SELECT COUNT(*) FROM {p}options WHERE option_name = 'cron' "
                        "AND option_value LIKE '%%wpmsync_outbox_retry%%'") == [(1,)]  # WP-Cron knows
    # The endpoint is back; WP-Cron's run (the scheduled action) sends them, same event ids.
    wp.configure()
    wp.net.query("UPDATE {p}wpmsync_outbox SET next_try = UTC_TIMESTAMP()")
    wp.run("do_action( 'wpmsync_outbox_retry' ); return true;")
    assert [h["event_id"] for h in wp.hooks()] == [r["event_id"] for r in rows]
    assert outbox(wp) == []


def test_a_later_event_of_a_user_waits_for_the_earlier_one(wp):
    """Within one send, a user whose event was not acknowledged keeps the later ones back."""
    wp.configure(responses={"POST hooks": {"status": 503, "body": {"error": "busy"}}})
    wp.run("remove_user_from_blog($args['user_ed'], $args['site_editors']);"
           "add_user_to_blog($args['site_plain'], $args['user_ed'], 'author');"
           "add_user_to_blog($args['site_plain'], $args['user2'], 'author'); return true;")
    assert [json.loads(r["body"])["data"]["user_id"] for r in wp.requests()] == [wp.ids["user_ed"], wp.ids["user2"]]
    assert [(r["event"], r["attempts"]) for r in outbox(wp)] == [
        ("user_removed", 1), ("user_added", 0), ("user_added", 1)]


def test_removed_then_added_back_leaves_no_removal_anywhere(wp):
    wp.configure(responses={"POST hooks": "error"})
    wp.run("remove_user_from_blog($args['user_ed'], $args['site_editors']);"
           "add_user_to_blog($args['site_editors'], $args['user_ed'], 'editor'); return true;")
    assert [r["event"] for r in outbox(wp)] == ["user_added"]
    assert removal_record(wp, wp.ids["user_ed"]) == ""


def test_a_removal_is_recorded_where_it_happens_even_when_nothing_is_delivered(wp):
    wp.configure(responses={"POST hooks": "error"})
    uid = wp.ids["user_ed"]
    wp.run("add_user_to_blog($args['site_plain'], $args['user_ed'], 'author');"
           "remove_user_from_blog($args['user_ed'], $args['site_editors']); return true;")
    wp.run("remove_user_from_blog($args['user_ed'], $args['site_plain']); return true;")
    assert removal_record(wp, uid) == [wp.ids["site_editors"], wp.ids["site_plain"]]
    wp.run("add_user_to_blog($args['site_editors'], $args['user_ed'], 'editor'); return true;")  # by hand
    assert removal_record(wp, uid) == [wp.ids["site_plain"]]
    # Core's housekeeping is not a decision: deleting the site or the user records nothing.
    wp.run("require_once ABSPATH . 'wp-admin/includes/ms.php'; wpmu_delete_blog($args['site_editors'], true);"
           "return true;")
    assert removal_record(wp, uid) == [wp.ids["site_plain"]]


def test_the_removal_lock_and_the_outbox_table_are_the_same_in_php_and_python(wp):
    """The mu-plugin and the functions hold one named lock per user bucket and make one table."""
    from wpmsync import db, outbox as py_outbox
    from wpmsync.schema import Network
    config = wp.net.config()
    users = [1, 255, 256, 70_000, 2**40]
    php = wp.run("return array_map( array( 'Wpmsync_Removals', 'lock_name' ), $args['users'] );", users=users)[0]
    assert php == [db.lock_name(config, scope) for u in users for scope in db.user_locks(u, u)]
    table = f"{wp.net.prefix}wpmsync_outbox"
    wp.net.query(f"DROP TABLE IF EXISTS {table}")
    wp.run("Wpmsync_Outbox::create_table(); return true;")
    made_by_php = wp.net.query(f"SHOW CREATE TABLE {table}")
    wp.net.query(f"DROP TABLE {table}")
    with wp.net.engine() as engine:
        with engine.conn.cursor() as cur:
            cur.execute(f"DROP TABLE {table}")  # the engine made it on start: made again below
            py_outbox.ensure_table(cur, Network.load(engine.conn, config))
    assert wp.net.query(f"SHOW CREATE TABLE {table}") == made_by_php


def test_without_constants_the_plugin_does_nothing_but_a_notice(wp):
    wp.configure(constants={"WPMSYNC_ENDPOINT": ENDPOINT})
    status, notice = wp.run("""
        wpmu_create_user('quiet', 'pw', 'quiet@example.test');
        remove_user_from_blog($args['user_ed'], $args['site_editors']);
        $res = rest_do_request(new WP_REST_Request('POST', '/wpmsync/v1/clean-cache'));
        wp_set_current_user($args['admin']);
        ob_start(); do_action('network_admin_notices'); $notice = ob_get_clean();
        return [$res->get_status(), $notice];""")[0]
    assert wp.requests() == []
    assert status == 404
    assert "WPMSYNC_FUNCTION_KEY, WPMSYNC_HOOK_SECRET" in notice and "WPMSYNC_ENDPOINT," not in notice


def test_previous_hook_secret_signs_too_and_a_bad_one_is_named(wp):
    """WPMSYNC_HOOK_SECRET_PREVIOUS set: hooks carry both signatures, current first; defined as
    something other than a string: not ignored, the plugin names it like a missing constant."""
    old = "old-hook-secret-0123456789abcdef"
    wp.configure(constants={**CONSTANTS, "WPMSYNC_HOOK_SECRET_PREVIOUS": old})
    wp.run("remove_user_from_blog($args['user_ed'], $args['site_editors']); return true;")
    (request,) = wp.requests()
    h, body = request["headers"], request["body"].encode()
    assert h["X-Wpmsync-Signature"] == f"{sign(SECRET, h['X-Wpmsync-Timestamp'], body)},{sign(old, h['X-Wpmsync-Timestamp'], body)}"
    assert verify([old], h["X-Wpmsync-Timestamp"], h["X-Wpmsync-Signature"], body)  # a verifier not rotated yet
    for empty in ("", SECRET):  # empty, or equal to the current one: one signature, as before
        wp.configure(constants={**CONSTANTS, "WPMSYNC_HOOK_SECRET_PREVIOUS": empty})
        wp.run("add_user_to_blog($args['site_plain'], $args['user2'], 'author'); return true;")
        (request,) = wp.requests()
        assert request["headers"]["X-Wpmsync-Signature"].count("sha256=") == 1
    wp.configure(constants={**CONSTANTS, "WPMSYNC_HOOK_SECRET_PREVIOUS": 12345})
    notice = wp.run("""wp_set_current_user($args['admin']);
        ob_start(); do_action('network_admin_notices'); return ob_get_clean();""")[0]
    assert "WPMSYNC_HOOK_SECRET_PREVIOUS" in notice


def test_refused_hook_is_logged_with_a_hint_at_the_secret(wp):
    wp.configure(responses={"POST hooks": {"status": 401, "body": {"error": "bad signature"}}})
    wp.run("remove_user_from_blog($args['user_ed'], $args['site_editors']); return true;")
    err = wp.wp.last_stderr
    assert "answered HTTP 401" in err and "bad signature" in err and "WPMSYNC_HOOK_SECRET" in err
    assert SECRET not in err


# -- screens ----------------------------------------------------------------------------------

RENDER_NETWORK = """
    require_once ABSPATH . 'wp-admin/includes/plugin.php';
    wp_set_current_user($args['admin']);
    $admin = Wpmsync_Plugin::instance()->admin;
    $_SERVER['REQUEST_METHOD'] = $args['post'] ? 'POST' : 'GET';
    $_POST = $_REQUEST = [];
    if ($args['post']) {
        $_POST = $args['post'];
        $_POST['_wpnonce'] = wp_create_nonce('wpmsync_' . $args['post']['wpmsync_action']);
        $_REQUEST = $_POST;
        $admin->handle_network_request();
    }
    ob_start(); $admin->render_network_page(); return ob_get_clean();"""


def test_network_page_shows_switches_from_the_functions(wp):
    wp.configure(responses={"GET settings": {"status": 200, "body": {"settings": {
        "new_user": True, "new_site": False, "role_sync": True}}}})
    html = wp.run(RENDER_NETWORK, post=None)[0]
    for el in ("wpmsync-new-user", "wpmsync-new-site", "wpmsync-role-sync", "wpmsync-save-settings",
               "wpmsync-sync-all", "wpmsync-sync-selected", 'select id="wpmsync-sites"'):
        assert el in html
    assert 'id="wpmsync-new-user" name="wpmsync_new_user" value="on"  checked' in html
    assert 'id="wpmsync-new-site" name="wpmsync_new_site" value="on"  />' in html
    assert f'<option value="{wp.ids["site_club"]}">' in html
    assert f'<option value="{wp.ids["site_archived"]}">' not in html
    assert KEY not in html and SECRET not in html
    req, = wp.requests()
    assert req["method"] == "GET" and req["url"] == f"{ENDPOINT}/settings"
    assert req["headers"]["x-functions-key"] == KEY


def test_the_sync_screen_and_the_job_status_show_what_waits_in_the_outbox(wp):
    html = wp.run(RENDER_NETWORK, post=None)[0]
    assert "Every change made in WordPress has reached the sync service." in html
    wp.configure(responses={"POST hooks": "error"})
    wp.run("remove_user_from_blog($args['user_ed'], $args['site_editors']);"
           "add_user_to_blog($args['site_plain'], $args['user2'], 'author'); return true;")
    wp.net.query("UPDATE {p}wpmsync_outbox SET created_at = UTC_TIMESTAMP() - INTERVAL 5 MINUTE")
    wp.configure()
    html = wp.run(RENDER_NETWORK, post=None)[0]
    five_minutes = wp.run("return human_time_diff( time() - 300 );")[0]  # "5 mins" (6.1), "5 minutes" (6.8)
    assert f"2 changes made in WordPress are waiting for the sync service (oldest: {five_minutes} ago)" in html
    assert "Last error: cURL error 7: Failed to connect (test)" in html
    wp.configure(responses={f"GET jobs/{JOB}": {"status": 200, "body": {
        "job_id": JOB, "state": "done", "blog_ids": [2], "batches": {"done": 1, "failed": 0, "total": 1},
        "memberships_added": 3, "skipped": {"count": 0, "first": []}, "errors": []}}})
    out = wp.run(JOB_STATUS, user=wp.ids["admin"], job=JOB, nonce_job=JOB)[0]["data"]
    assert out["outbox"] == 2 and out["label"] == "done: 3 memberships added · 2 changes made in WordPress still waiting"


def test_network_page_falls_back_to_sitemeta(wp):
    wp.configure(responses={"GET settings": "error"})
    html = wp.run(ROLE_SYNC_ON, RENDER_NETWORK, post=None)[1]
    assert "notice-warning" in html and "showing the values stored in WordPress" in html
    assert 'id="wpmsync-role-sync" name="wpmsync_role_sync" value="on"  checked' in html


def test_save_settings_patches_the_functions(wp):
    wp.run(RENDER_NETWORK, post={"wpmsync_action": "save_settings", "wpmsync_new_user": "on"})
    patch = [r for r in wp.requests() if r["method"] == "PATCH"]
    assert len(patch) == 1 and patch[0]["url"] == f"{ENDPOINT}/settings"
    assert json.loads(patch[0]["body"]) == {"new_user": True, "new_site": False, "role_sync": False}


def test_sync_all_starts_a_job_and_shows_progress(wp):
    wp.configure(responses={"POST sync": {"status": 202, "body": {"job_id": JOB, "status": "queued", "batches": 7}}})
    html = wp.run(RENDER_NETWORK, post={"wpmsync_action": "sync_all"})[0]
    sync = [r for r in wp.requests() if r["method"] == "POST"]
    assert sync[0]["url"] == f"{ENDPOINT}/sync" and sync[0]["body"] == "{}"
    assert sync[0]["headers"]["x-functions-key"] == KEY
    assert '<progress id="wpmsync-progress" max="7" value="0"' in html
    assert f'data-job-id="{JOB}"' in html and 'id="wpmsync-job-state"' in html
    assert "notice-success" in html and KEY not in html


def test_sync_selected_sends_the_sites_and_shows_a_conflict(wp):
    wp.configure(responses={"POST sync": {"status": 409, "body": {
        "error": "a job is already syncing sites 2, 3", "correlation_id": "abc123"}}})
    html = wp.run(RENDER_NETWORK, post={"wpmsync_action": "sync_selected",
                                        "wpmsync_sites": [str(wp.ids["site_plain"]), str(wp.ids["site_club"])]})[0]
    sync = [r for r in wp.requests() if r["method"] == "POST"]
    assert json.loads(sync[0]["body"]) == {"blog_ids": [wp.ids["site_plain"], wp.ids["site_club"]]}
    assert "notice-error" in html and "HTTP 409" in html and "a job is already syncing sites 2, 3" in html
    assert "wpmsync-progress" not in html


def test_site_page_pulls_users(wp):
    wp.configure(responses={f"POST sites/{wp.ids['site_club']}/sync": {
        "status": 202, "body": {"job_id": JOB, "status": "queued", "batches": 1}}})
    html = wp.run("""
        wp_set_current_user($args['admin']);
        switch_to_blog($args['site_club']);
        $admin = Wpmsync_Plugin::instance()->admin;
        $_SERVER['REQUEST_METHOD'] = 'POST';
        $_POST = $_REQUEST = ['wpmsync_action' => 'pull_users', '_wpnonce' => wp_create_nonce('wpmsync_pull_users')];
        $admin->handle_site_request();
        ob_start(); $admin->render_site_page(); return ob_get_clean();""")[0]
    req, = wp.requests()
    assert req["url"] == f"{ENDPOINT}/sites/{wp.ids['site_club']}/sync" and req["headers"]["x-functions-key"] == KEY
    assert 'id="wpmsync-pull-users"' in html and f'data-job-id="{JOB}"' in html


def test_a_forged_form_is_refused(wp):
    with pytest.raises(Exception, match="wp_die"):
        wp.run("""
            wp_set_current_user($args['admin']);
            $_SERVER['REQUEST_METHOD'] = 'POST';
            $_POST = $_REQUEST = ['wpmsync_action' => 'sync_all', '_wpnonce' => 'forged'];
            Wpmsync_Plugin::instance()->admin->handle_network_request();""")
    assert [r for r in wp.requests() if r["method"] == "POST"] == []


JOB_STATUS = """
    define('DOING_AJAX', true);
    wp_set_current_user($args['user']);
    $_GET = $_REQUEST = ['action' => 'wpmsync_job_status', 'job_id' => $args['job'],
                         '_wpnonce' => wp_create_nonce('wpmsync_job_' . $args['nonce_job'])];
    ob_start();
    try { do_action('wp_ajax_wpmsync_job_status'); } catch (Exception $e) { }
    return json_decode(ob_get_clean(), true);"""


def test_job_status_proxy(wp):
    wp.configure(responses={f"GET jobs/{JOB}": {"status": 200, "body": {
        "job_id": JOB, "state": "running", "blog_ids": [2, 3], "batches": {"done": 3, "failed": 0, "total": 10},
        "memberships_added": 40, "skipped": {"count": 0, "first": []}, "errors": []}}})
    out = wp.run(JOB_STATUS, user=wp.ids["admin"], job=JOB, nonce_job=JOB)[0]
    assert out == {"success": True, "data": {"state": "running", "done": 3, "failed": 0, "total": 10,
                                             "memberships_added": 40, "finished": False,
                                             "label": "running 3/10 batches", "outbox": 0}}
    req, = wp.requests()
    assert req["url"] == f"{ENDPOINT}/jobs/{JOB}" and req["headers"]["x-functions-key"] == KEY
    assert KEY not in json.dumps(out)


def test_job_status_proxy_checks_nonce_id_and_capability(wp):
    other = "f" * 32
    assert wp.run(JOB_STATUS, user=wp.ids["admin"], job=JOB, nonce_job=other)[0]["success"] is False
    assert wp.run(JOB_STATUS, user=wp.ids["admin"], job="../settings", nonce_job="../settings")[0]["success"] is False
    assert wp.run(JOB_STATUS, user=wp.ids["user2"], job=JOB, nonce_job=JOB)[0]["success"] is False
    assert wp.requests() == []


def test_job_status_labels(wp):
    wp.configure(responses={
        f"GET jobs/{JOB}": {"status": 200, "body": {"state": "done", "blog_ids": [2],
                                                   "batches": {"done": 2, "failed": 0, "total": 2},
                                                   "memberships_added": 120, "skipped": {"count": 0}}},
        "GET jobs/" + "e" * 32: {"status": 200, "body": {"state": "failed", "blog_ids": [2],
                                                        "batches": {"done": 1, "failed": 1, "total": 2},
                                                        "errors": [{"batch": 2, "error": "lock timeout"}]}},
        "GET jobs/" + "d" * 32: {"status": 404, "body": {"error": "unknown job", "correlation_id": "x"}},
    })
    done, failed, missing = wp.run("""
        wp_set_current_user($args['admin']);
        $a = Wpmsync_Plugin::instance()->admin;
        $m = $a->job_status(str_repeat('d', 32));
        return [$a->job_status($args['job']), $a->job_status(str_repeat('e', 32)), $m->get_error_message()];""",
                                   job=JOB)[0]
    assert done["label"] == "done: 120 memberships added" and done["finished"] is True
    assert failed["label"] == "failed: lock timeout"
    assert "HTTP 404" in missing and "unknown job" in missing


# -- the clean-cache route: roles options rewritten by role replication -----------------------

# What WordPress reads of the role 'member', through its object cache: first this request's
# global wp_roles() / get_role() as they stand (switching does not reload them for the current
# site), then on each site with WP_Roles::for_site() (get_blog_option() for another site), with
# wp_roles() after switch_to_blog(), and get_role().
ROLES_SEEN = """
    $seen = function () use ($args) {
        $role = get_role('member');
        $out = [[wp_roles()->is_role('member'), $role ? $role->capabilities : null]];
        foreach ($args['sites'] as $site) {
            $for_site = (new WP_Roles($site))->is_role('member');
            switch_to_blog($site);
            $role = get_role('member');
            $out[] = [$for_site, wp_roles()->is_role('member'), $role ? $role->capabilities : null];
            restore_current_blog();
        }
        return $out;
    };"""

# One PHP process stands in for the persistent object cache (Redis): read the roles (priming
# alloptions), rewrite the roles rows with SQL behind WordPress's back as replication.py does,
# then make each signed call and read again.
ROLES_CLEAN = ROLES_SEEN + """
    global $wpdb;
    $primed = $seen();
    foreach ($args['sites'] as $site) {
        $p = $wpdb->get_blog_prefix($site);
        $wpdb->query($wpdb->prepare("UPDATE `{$p}options` SET option_value = %s WHERE option_name = %s",
                                    $args['values'][$site], $p . 'user_roles'));
    }
    $in_db = [];
    foreach ($args['sites'] as $site) {
        $p = $wpdb->get_blog_prefix($site);
        $row = $wpdb->get_var($wpdb->prepare("SELECT option_value FROM `{$p}options` WHERE option_name = %s",
                                             $p . 'user_roles'));
        $in_db[] = isset(maybe_unserialize($row)['member']);
    }
    $stale = $seen();
    $calls = [];
    foreach ($args['calls'] as $call) {
        get_userdata($args['user1']);
        $req = new WP_REST_Request('POST', '/wpmsync/v1/clean-cache');
        $req->set_body($call['body']);
        $req->set_header('Content-Type', 'application/json');
        foreach ($call['headers'] as $k => $v) { $req->set_header($k, $v); }
        $res = rest_do_request($req);
        $calls[] = ['status' => $res->get_status(), 'data' => $res->get_data(),
                    'users' => wp_cache_get($args['user1'], 'users') !== false, 'seen' => $seen()];
    }
    return ['primed' => $primed, 'in_db' => $in_db, 'stale' => $stale, 'calls' => $calls];"""

MEMBER = {"name": "Club member", "capabilities": {"read": True, "level_1": True}}


def _signed(payload: Any) -> dict[str, Any]:
    body = json.dumps(payload)
    ts = str(int(time.time()))
    return {"body": body, "headers": {"X-Wpmsync-Timestamp": ts, "X-Wpmsync-Signature": sign(SECRET, ts, body.encode())}}


def _roles_with_member(wp, site: int) -> str:
    """The site's roles option plus the role 'member' copied from site_club, serialized by the
    Python serializer that replication.py writes with."""
    from wpmsync import phpserial

    p = wp.net.prefix + ("" if site == 1 else f"{site}_")
    (raw,), = wp.net.query(f"SELECT option_value FROM {p}options WHERE option_name = %s", (p + "user_roles",))
    roles = phpserial.loads(raw)
    assert "member" not in roles
    roles["member"] = MEMBER
    return phpserial.dumps(roles)


def _run_roles(wp, sites: list[int], calls: list[dict[str, Any]]) -> dict[str, Any]:
    values = {str(s): _roles_with_member(wp, s) for s in sites}
    return wp.run(ROLES_CLEAN, sites=sites, values=values, calls=calls)[0]


@pytest.mark.parametrize("send_roles", [True, False])
def test_clean_cache_roles_blog_ids_makes_wordpress_read_the_copied_role(wp, send_roles):
    # site_plain lacks 'member' (site_club has it); the main site is this request's current blog,
    # whose roles were loaded into the global wp_roles() at boot.
    sites = [wp.ids["site_plain"], 1]
    payload: dict[str, Any] = {"user_ids": [wp.ids["user1"]], "blog_ids": sites}
    if send_roles:
        payload["roles_blog_ids"] = sites
    out = _run_roles(wp, sites, [_signed(payload)])
    absent = [[False, None]] + [[False, False, None]] * 2
    assert out["primed"] == absent
    assert out["in_db"] == [True, True]
    assert out["stale"] == absent  # the cache holds the old roles: the test cannot pass vacuously
    (call,) = out["calls"]
    assert call["status"] == 200 and call["users"] is False
    if send_roles:
        assert call["data"] == {"users": 1, "blogs": 2, "roles": 2}
        caps = MEMBER["capabilities"]
        assert call["seen"] == [[True, caps]] + [[True, True, caps]] * 2
    else:
        assert call["data"] == {"users": 1, "blogs": 2}
        assert call["seen"] == absent  # without roles_blog_ids WordPress still serves the old roles
    assert wp.events() == []


def test_clean_cache_roles_blog_ids_validated_before_anything_is_cleaned(wp):
    site = wp.ids["site_plain"]
    bad = [
        {"user_ids": [wp.ids["user1"]], "roles_blog_ids": [site, "x"]},
        {"user_ids": [wp.ids["user1"]], "roles_blog_ids": [site, 0]},
        {"user_ids": [wp.ids["user1"]], "roles_blog_ids": [site, -3]},
        {"user_ids": [wp.ids["user1"]], "roles_blog_ids": [site, 2.5]},
        {"user_ids": [wp.ids["user1"]], "roles_blog_ids": [site, None]},
        {"user_ids": [wp.ids["user1"]], "roles_blog_ids": [site, "1; DROP"]},
        {"user_ids": [wp.ids["user1"]], "roles_blog_ids": str(site)},
        {"user_ids": [wp.ids["user1"]], "roles_blog_ids": {"a": site}},
        {"roles_blog_ids": [site] + list(range(100000, 110001))},  # over 10,000 in the field
        {"user_ids": list(range(1, 6001)), "blog_ids": list(range(1, 4001)),  # over 10,000 in all
         "roles_blog_ids": [site]},
    ]
    unknown = 999999  # a site deleted meanwhile: skipped, the rest is cleaned
    good = {"user_ids": [wp.ids["user1"]], "roles_blog_ids": [site, unknown, str(site)]}
    unsigned = {"body": json.dumps({"roles_blog_ids": [site]}), "headers": {}}
    out = _run_roles(wp, [site], [unsigned] + [_signed(p) for p in bad] + [_signed(good)])
    absent = [[False, None], [False, False, None]]
    assert out["in_db"] == [True] and out["stale"] == absent
    *refused, last = out["calls"]
    assert refused[0]["status"] == 401
    for payload, call in zip([None] + bad, refused):
        assert call["status"] in (400, 401), payload
        assert call["users"] is True and call["seen"] == absent, payload  # nothing cleaned
    assert [c["status"] for c in refused[1:]] == [400] * len(bad)
    assert last["status"] == 200 and last["data"] == {"users": 1, "blogs": 0, "roles": 1}
    # site_plain is not the current site: this request's global roles (the main site's) stand
    assert last["users"] is False and last["seen"] == [[False, None], [True, True, MEMBER["capabilities"]]]
