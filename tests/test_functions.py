"""The Functions app end to end: real HttpRequest / QueueMessage / TimerRequest objects, the
real MariaDB with a network built by real WordPress, and the real queue API (Azurite)."""
from __future__ import annotations

import http.server as http_server
import json
import threading
import time
import uuid
from typing import Any

import azure.functions as func
import pytest
from azure.functions.queue import QueueMessage  # the worker's concrete classes (with dequeue_count)
from azure.functions.timer import TimerRequest

import function_app  # noqa: F401  (registers the blueprints, as the host does)
from blueprints import actions, batches, common, hooks, reconcile
from conftest import network1_users
from test_differential import assert_same_rows
from wpmsync import db, signing
from wpfixture.local_host import LocalFunctions
from wpmsync.secrets import reset_secrets

SECRET = "test-hook-secret-0123456789"


def call(fn: Any, *args: Any) -> Any:
    return fn.build().get_user_function()(*args)


def answer(resp: func.HttpResponse) -> tuple[int, dict]:
    return resp.status_code, json.loads(resp.get_body())


def http(method: str, route: str, body: Any = None, params: dict | None = None,
         headers: dict | None = None) -> func.HttpRequest:
    raw = body if isinstance(body, bytes) else (json.dumps(body).encode() if body is not None else b"")
    return func.HttpRequest(method, f"http://localhost:7071/api/{route}", body=raw,
                            route_params=params or {}, headers=headers or {})


def hook_request(event: str, data: dict, *, event_id: str | None = None, secret: str = SECRET,
                 timestamp: int | None = None, signature: str | None = None) -> func.HttpRequest:
    body = json.dumps({"event": event, "event_id": event_id or uuid.uuid4().hex, "data": data}).encode()
    ts = str(int(time.time()) if timestamp is None else timestamp)
    headers = {signing.TIMESTAMP_HEADER: ts,
               signing.SIGNATURE_HEADER: signature or signing.sign(secret, ts, body)}
    return http("POST", "hooks", body, headers=headers)


@pytest.fixture
def app(net, azurite, monkeypatch):
    """The app pointed at a fresh network copy and a fresh queue on Azurite."""
    monkeypatch.setenv("WPMSYNC_DB_NAME", net.db)
    monkeypatch.setenv("WPMSYNC_TABLE_PREFIX", net.prefix)
    monkeypatch.setenv("WPMSYNC_HOOK_SECRET", SECRET)
    monkeypatch.setenv("WPMSYNC_BATCH_SIZE", "3")
    monkeypatch.setattr(db, "LOCK_BUCKET", 2)  # small networks still make several batches
    monkeypatch.setenv("AzureWebJobsStorage", azurite)
    monkeypatch.setattr(common, "QUEUE_NAME", f"wpmsync-{uuid.uuid4().hex[:12]}")
    reset_secrets()
    common.reset()
    common.queue().ensure()
    common.queue().poison().ensure()
    yield net
    common.reset()
    reset_secrets()


def drain() -> int:
    """Deliver every queued message to the queue function, as the host would; returns the count."""
    return LocalFunctions(SECRET).drain()


def deliver_one() -> dict:
    """Deliver the next message (the job's prepare message, in these tests); returns it."""
    (text, raw), = common.queue().receive(max_messages=1, visibility_timeout=30)
    call(batches.run_batch, QueueMessage(id=raw.id, body=text.encode(), dequeue_count=1))
    common.queue().delete(raw)
    return json.loads(text)


def test_hook_signatures(app):
    ok = hook_request("user_removed", {"user_id": app.ids["user2"], "blog_id": app.ids["site_plain"]})
    assert answer(call(hooks.hook, ok))[0] == 200
    for bad in (
        hook_request("user_removed", {"user_id": 3, "blog_id": 3}, secret="another-secret-0123456"),
        hook_request("user_removed", {"user_id": 3, "blog_id": 3}, timestamp=int(time.time()) - 301),
        hook_request("user_removed", {"user_id": 3, "blog_id": 3}, signature="sha256=00"),
        http("POST", "hooks", {"event": "user_removed", "event_id": "abcdefgh1", "data": {}}),
        # malformed headers: a trailing comma, five signatures, a non-ASCII digit timestamp
        hook_request("user_removed", {"user_id": 3, "blog_id": 3}, signature="sha256=" + "0" * 64 + ","),
        hook_request("user_removed", {"user_id": 3, "blog_id": 3}, signature=",".join(["sha256=" + "0" * 64] * 5)),
        http("POST", "hooks", b"{}", headers={signing.TIMESTAMP_HEADER: "\u0661\u0662",
                                              signing.SIGNATURE_HEADER: "sha256=" + "0" * 64}),
    ):
        status, body = answer(call(hooks.hook, bad))
        assert status == 401 and body["error"] and "correlation_id" in body


def test_replayed_event_is_answered_as_done_and_writes_nothing(app):
    app.query("UPDATE {p}sitemeta SET meta_value = 'yes' WHERE meta_key = 'x'")  # no-op, warm
    call(actions.settings, http("PATCH", "settings", {"new_user": True}))
    event_id = "evt-" + uuid.uuid4().hex
    first = answer(call(hooks.hook, hook_request("user_created", {"user_id": app.ids["user3"], "blog_id": 1},
                                                 event_id=event_id)))
    assert first[0] == 200 and first[1]["added"] == 6
    snapshot = app.usermeta_checksum()
    again = answer(call(hooks.hook, hook_request("user_created", {"user_id": app.ids["user3"], "blog_id": 1},
                                                 event_id=event_id)))
    assert again[0] == 200 and again[1]["replayed"] is True and again[1]["added"] == 6
    assert app.usermeta_checksum() == snapshot


def test_switched_off_trigger_is_acknowledged_and_does_nothing(app):
    snapshot = app.usermeta_checksum()
    for event, data in (("user_created", {"user_id": app.ids["user3"], "blog_id": 1}),
                        ("site_created", {"blog_id": app.ids["site_club"]}),
                        ("role_changed", {"user_id": app.ids["user1"], "blog_id": app.ids["site_authors"],
                                          "role": "contributor"})):
        status, body = answer(call(hooks.hook, hook_request(event, data)))
        assert status == 200 and body["status"] == "ignored", body
    assert app.usermeta_checksum() == snapshot


def test_hooks_add_user_replicate_role_and_remember_removals(app):
    call(actions.settings, http("PATCH", "settings", {"new_user": True, "role_sync": True}))
    uid = app.wp.create_user("hooked")
    app.wp.add_user_to_blog(app.ids["site_authors"], uid, "author")  # created on a subsite
    removed = answer(call(hooks.hook, hook_request("user_removed", {"user_id": uid, "blog_id": app.ids["site_plain"]})))
    assert removed[1]["removed_from"] == [app.ids["site_plain"]]
    status, body = answer(call(hooks.hook, hook_request("user_created", {"user_id": uid,
                                                                          "blog_id": app.ids["site_authors"]})))
    assert status == 200 and body["added"] == 4 and uid in app.members(1) and uid not in app.members(app.ids["site_plain"])
    app.wp.set_role(1, uid, "editor")
    status, body = answer(call(hooks.hook, hook_request("role_changed", {
        "user_id": uid, "blog_id": 1, "role": "editor", "actor_id": app.ids["user3"]})))
    assert status == 200 and body["roles_set"] == 3  # authors, club, ghostly (editors: editor already)
    status, body = answer(call(hooks.hook, hook_request("role_changed", {
        "user_id": uid, "blog_id": 1, "role": "administrator", "actor_id": app.ids["user3"]})))
    assert status == 400  # the user is not administrator on site 1: refused
    back = answer(call(hooks.hook, hook_request("user_added", {"user_id": uid, "blog_id": app.ids["site_plain"]})))
    assert back[1]["removed_from"] == []


def test_bad_hook_input_is_a_clear_error(app):
    call(actions.settings, http("PATCH", "settings", {"new_user": True}))
    cases = [
        (hook_request("user_created", {"user_id": "x1"}), 400),
        (hook_request("user_created", {"user_id": 99999}), 404),
        (hook_request("no_such_event", {}), 400),
        (hook_request("user_created", {}), 400),
    ]
    for req, status in cases:
        got, body = answer(call(hooks.hook, req))
        assert got == status and body["error"], body
    big = hook_request("user_created", {"pad": "x" * 70000})
    assert answer(call(hooks.hook, big))[0] == 413


def test_new_site_hook_with_many_users_goes_through_the_queue(app, templates):
    call(actions.settings, http("PATCH", "settings", {"new_site": True}))
    blog_id = app.wp.create_site("hooked-site", options={"default_role": "author"})
    status, body = answer(call(hooks.hook, hook_request("site_created", {"blog_id": blog_id})))
    assert status == 202 and body["status"] == "queued"
    assert drain() == 1 + body["batches"]
    status, job = answer(call(actions.job_status, http("GET", f"jobs/{body['job_id']}",
                                                        params={"job_id": body["job_id"]})))
    assert job["state"] == "done" and job["memberships_added"] == 9  # user1..8 and ed
    assert app.members(blog_id) >= set(network1_users(app)) - {app.ids["user_spammer"], app.ids["user_boss"],
                                                              app.ids["admin"]}


def test_manual_sync_through_queue_equals_wordpress_loop(app, templates):
    from conftest import _copy
    from wpfixture import drop_database
    twin = _copy(templates, "wp")
    try:
        added_by_wordpress = twin.wp.sync_like_plugin(network_id=1, user_ids=network1_users(twin))
        status, body = answer(call(actions.sync, http("POST", "sync", {})))
        assert status == 202 and body["status_url"].endswith(f"/api/jobs/{body['job_id']}")
        queued = answer(call(actions.job_status, http("GET", "jobs/x", params={"job_id": body["job_id"]})))[1]
        assert queued["state"] == "queued" and queued["batches"] == {"done": 0, "failed": 0, "total": body["batches"]}
        assert drain() == 1 + body["batches"]
        status, job = answer(call(actions.job_status, http("GET", "jobs/x", params={"job_id": body["job_id"]})))
        assert job["state"] == "done" and job["batches"]["done"] == job["batches"]["total"] == body["batches"]
        assert job["memberships_added"] == added_by_wordpress
        assert_same_rows(twin, app)
        assert job["finished_at"] and job["started_at"]
    finally:
        drop_database(twin.db)


def test_redelivered_batch_changes_nothing_and_counts_once(app):
    status, body = answer(call(actions.sync, http("POST", "sync", {"blog_ids": [app.ids["site_plain"]]})))
    queue = common.queue()
    assert deliver_one()["type"] == "prepare"  # fans out the batches
    (text, raw), *_ = queue.receive(max_messages=1, visibility_timeout=1)
    msg = QueueMessage(id=raw.id, body=text.encode(), dequeue_count=1)
    call(batches.run_batch, msg)
    snapshot = app.usermeta_checksum()
    call(batches.run_batch, QueueMessage(id=raw.id, body=text.encode(), dequeue_count=2))
    assert app.usermeta_checksum() == snapshot
    time.sleep(1.2)
    drain()  # includes the same message again
    job = answer(call(actions.job_status, http("GET", "jobs/x", params={"job_id": body["job_id"]})))[1]
    assert job["state"] == "done" and job["memberships_added"] == 9 and app.duplicates() == []


def test_a_large_undo_goes_through_the_queue_range_by_range(app):
    """More rows than a batch (WPMSYNC_BATCH_SIZE=3 here): 202, one message per user-id range,
    each redelivery harmless; the table ends exactly as before the sync."""
    before = app.usermeta_checksum()
    status, body = answer(call(actions.sync, http("POST", "sync", {})))
    drain()
    synced = app.usermeta_checksum()
    status, queued_preview = answer(call(actions.undo, http("POST", "jobs/x/undo", {"dry_run": True},
                                                            params={"job_id": body["job_id"]})))
    assert status == 202 and queued_preview["kind"] == "undo_preview"  # over one batch: the queue previews it
    drain()
    preview = answer(call(actions.job_status, http("GET", "jobs/x", params={"job_id": queued_preview["job_id"]})))[1]
    assert preview["state"] == "done" and preview["result"]["preview"]["restored"] == len(synced) - len(before)
    assert app.usermeta_checksum() == synced
    status, queued = answer(call(actions.undo, http("POST", "jobs/x/undo", {}, params={"job_id": body["job_id"]})))
    assert status == 202 and queued["status"] == "queued" and queued["undo_of"] == body["job_id"]
    (text, raw), = common.queue().receive(max_messages=1, visibility_timeout=30)
    first = QueueMessage(id=raw.id, body=text.encode(), dequeue_count=1)
    call(batches.run_batch, first)
    common.queue().delete(raw)
    partly = app.usermeta_checksum()
    assert before != partly != synced  # one range undone, the next one queued
    call(batches.run_batch, first)  # redelivered: its range is undone already
    assert drain() >= 2 and app.usermeta_checksum() == before
    listed = {c["job_id"]: c for c in answer(call(actions.journal, http("GET", "journal")))[1]["changes"]}
    assert listed[body["job_id"]]["undone_by"] == queued["job_id"]
    assert listed[queued["job_id"]]["rows"] == len(synced) - len(before)
    assert listed[queued["job_id"]]["trigger"].startswith(f"undo {body['job_id']} (manual:")  # who asked


def test_poisoned_batch_ends_the_job_failed_with_the_reason(app):
    status, body = answer(call(actions.sync, http("POST", "sync", {"blog_ids": [app.ids["site_club"]]})))
    assert deliver_one()["type"] == "prepare"
    site = app.ids["site_club"]
    app.query(f"UPDATE {{p}}{site}_options SET option_value = 'garbage' WHERE option_name = 'wp_{site}_user_roles'")
    (text, raw), *_ = common.queue().receive(max_messages=1)
    for attempt in (1, 2):
        with pytest.raises(Exception):
            call(batches.run_batch, QueueMessage(id=raw.id, body=text.encode(), dequeue_count=attempt))
    call(batches.poisoned_batch, QueueMessage(id=raw.id, body=text.encode(), dequeue_count=1))
    job = answer(call(actions.job_status, http("GET", "jobs/x", params={"job_id": body["job_id"]})))[1]
    assert job["state"] == "failed"
    failed = [e for e in job["errors"] if e.get("batch") == json.loads(text)["seq"]]
    assert failed and failed[0]["attempts"] == 2 and "roles option" in failed[0]["error"]
    assert "failed after every retry" in failed[0]["error"]


def test_manual_action_errors(app):
    cases = [
        (actions.sync, http("POST", "sync", {"blog_ids": []}), 400),
        (actions.sync, http("POST", "sync", {"blog_ids": [99999]}), 404),
        (actions.sync, http("POST", "sync", b"{not json"), 400),
        (actions.sync, http("POST", "sync", [1, 2]), 400),
        (actions.site_sync, http("POST", "sites/x/sync", params={"blog_id": "abc"}), 400),
        (actions.site_sync, http("POST", "sites/2/sync", params={"blog_id": str(app.ids["net2_main"])}), 404),
        (actions.job_status, http("GET", "jobs/x", params={"job_id": "0" * 32}), 404),
        (actions.job_status, http("GET", "jobs/x", params={"job_id": "../etc"}), 400),
        (actions.settings, http("PATCH", "settings", {"new_user": "perhaps"}), 400),
        (actions.plan, http("POST", "plan", {"action": "explode"}), 400),
        (actions.sync, http("POST", "sync", {"pad": "x" * 70000}), 413),
    ]
    for fn, req, status in cases:
        got, body = answer(call(fn, req))
        assert got == status and body["error"] and body["correlation_id"], (fn, body)
    first = answer(call(actions.sync, http("POST", "sync", {"blog_ids": [app.ids["site_plain"]]})))
    assert first[0] == 202
    conflict = answer(call(actions.sync, http("POST", "sync", {})))
    assert conflict[0] == 409 and first[1]["job_id"] in conflict[1]["error"]


def test_real_fault_is_500_with_a_correlation_id_and_no_traceback(app):
    app.query("ALTER TABLE {p}usermeta CHANGE meta_value meta_value_gone LONGTEXT")
    status, body = answer(call(actions.plan, http("POST", "plan", {"action": "add_user", "user_id": app.ids["user2"]},
                                                  headers={"x-correlation-id": "corr-123"})))
    assert status == 500 and body == {"error": "database error; see the logs", "correlation_id": "corr-123"}


def test_plan_and_settings_endpoints(app):
    snapshot = app.usermeta_checksum()
    status, queued = answer(call(actions.plan, http("POST", "plan", {"blog_ids": [app.ids["site_club"]]})))
    assert status == 202 and queued["kind"] == "plan"  # more users than one batch of 3: a queued plan
    drain()
    plan = answer(call(actions.job_status, http("GET", "jobs/x", params={"job_id": queued["job_id"]})))[1]["result"]["plan"]
    assert plan["dry_run"] and plan["added"] == 9
    status, plan = answer(call(actions.plan, http("POST", "plan", {"action": "add_user", "user_id": app.ids["user2"]})))
    assert plan["added"] == 6 and app.usermeta_checksum() == snapshot
    assert answer(call(actions.settings, http("GET", "settings")))[1]["settings"]["new_site"] is False
    assert answer(call(actions.settings, http("PATCH", "settings", {"new_site": True})))[1]["settings"]["new_site"]


def test_timer_repairs_drift_and_never_overlaps(app):
    timer = TimerRequest(past_due=False)
    snapshot = app.usermeta_checksum()
    call(reconcile.reconcile_drift, timer)  # all triggers off: nothing at all
    assert app.usermeta_checksum() == snapshot and app.query("SELECT COUNT(*) FROM {p}wpmsync_jobs") == [(0,)]
    call(actions.settings, http("PATCH", "settings", {"new_user": True, "role_sync": True}))
    call(reconcile.reconcile_drift, timer)  # every user missing everywhere: a job is queued
    drain()
    assert app.ids["user5"] in app.members(app.ids["site_club"])
    # a hand edit removes a membership: the next full run (nightly) puts it back (a deleted row
    # leaves no mark for the incremental passes)
    app.query("DELETE FROM {p}usermeta WHERE user_id = %s AND meta_key LIKE %s",
              (app.ids["user5"], f"wp\\_{app.ids['site_club']}\\_%"))
    call(reconcile.reconcile_full, timer)
    jobs_before = app.query("SELECT COUNT(*) FROM {p}wpmsync_jobs")[0][0]
    # while that job is queued, another run does not overlap it
    call(reconcile.reconcile_drift, timer)
    assert app.query("SELECT COUNT(*) FROM {p}wpmsync_jobs")[0][0] == jobs_before
    drain()
    assert app.ids["user5"] in app.members(app.ids["site_club"])
    call(reconcile.reconcile_drift, timer)  # in sync now: a job with no batches, done
    kinds = app.query("SELECT j.id, COUNT(b.seq) FROM {p}wpmsync_jobs j LEFT JOIN {p}wpmsync_job_batches b "
                      "ON b.job_id = j.id GROUP BY j.id ORDER BY j.created_at DESC LIMIT 1")
    assert kinds[0][1] == 0
    job = answer(call(actions.job_status, http("GET", "jobs/x", params={"job_id": kinds[0][0]})))[1]
    assert job["state"] == "done" and job["result"]["sites_missing_members"] == []
    assert "role_differences" in job["result"]


class _Recorder(http_server.BaseHTTPRequestHandler):
    """Stands in for WordPress's REST route: records what the functions send."""

    calls: list[tuple[dict, bytes]] = []

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Recorder.calls.append((dict(self.headers), body))
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b'{"cleaned": true}')

    def log_message(self, *args: Any) -> None:
        pass


@pytest.mark.parametrize("configured", [True, False])
def test_wordpress_is_told_to_clean_its_cache_when_configured(app, monkeypatch, configured):
    server = http_server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _Recorder.calls = []
    try:
        if configured:
            monkeypatch.setenv("WPMSYNC_WORDPRESS_URL", f"http://127.0.0.1:{server.server_port}/")
        call(actions.settings, http("PATCH", "settings", {"new_user": True}))
        call(hooks.hook, hook_request("user_created", {"user_id": app.ids["user3"], "blog_id": 1}))
        status, body = answer(call(actions.sync, http("POST", "sync", {"blog_ids": [app.ids["site_club"]]})))
        drain()
    finally:
        server.shutdown()
    if not configured:
        assert _Recorder.calls == []
        return
    assert len(_Recorder.calls) >= 2  # the inline hook, then the batch
    users, blogs = set(), set()
    for headers, raw in _Recorder.calls:
        signing.verify(SECRET, headers[signing.TIMESTAMP_HEADER], headers[signing.SIGNATURE_HEADER], raw)
        data = json.loads(raw)
        users |= set(data["user_ids"])
        blogs |= set(data["blog_ids"])
    assert app.ids["user3"] in users and app.ids["user5"] in users
    assert {1, app.ids["site_club"]} <= blogs


def test_timer_skips_while_another_reconcile_holds_the_lease(app):
    from wpmsync import Config, Engine, jobs
    from wpmsync.reconcile import LEASE, reconcile as reconcile_pass

    call(actions.settings, http("PATCH", "settings", {"new_user": True}))
    with Engine(Config.from_env()) as engine:
        assert jobs.acquire_lease(engine.conn, engine.network, LEASE, "another-worker", 60)
        assert reconcile_pass(engine) == {"status": "skipped", "reason": "another reconcile is running"}
        assert not jobs.acquire_lease(engine.conn, engine.network, LEASE, "a-third-worker", 60)
        engine.conn.cursor().execute("UPDATE wp_wpmsync_leases SET expires_at = NOW(6) - INTERVAL 1 SECOND")
        result = reconcile_pass(engine)  # the holder died: its lease ran out
    assert result["status"] == "queued" and result["sites_missing_members"]


