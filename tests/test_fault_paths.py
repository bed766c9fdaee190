"""Fault paths that end (issue 11): each test is written from one finding of the fuzz, and
fails on the code as it was.

- late batch messages of a failed job that was undone write nothing;
- messages of unknown jobs, and queue messages malformed in any way, are dropped with one log
  line and never raise (raising makes the host retry them into the poison queue);
- a job whose first message cannot be queued ends failed from every path that starts one;
- the timer skips, never raises, when a sync job starts while it scans;
- our tables dropped by another process's ``uninstall`` are made again by this one;
- the role report names the users whose role differs where role replication would have acted,
  not every user who got each site's own default role.

The real app is called as the host calls it (real HttpRequest / QueueMessage / TimerRequest, the
queue on Azurite), against a network built by real WordPress; what WordPress's rows say is the
oracle wherever they can say it.
"""
from __future__ import annotations

import json
import logging
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from azure.functions.queue import QueueMessage
from azure.functions.timer import TimerRequest

from blueprints import actions, batches, common, hooks, reconcile
import test_functions
from test_functions import answer, call, deliver_one, drain, hook_request, http
from wpmsync import memberships
from wpmsync.errors import QueueUnreachable

app = test_functions.app  # the fixture: the app on a fresh network copy and a fresh queue

ROOT = Path(__file__).resolve().parent.parent


def job_status(job_id: str) -> dict[str, Any]:
    return answer(call(actions.job_status, http("GET", f"jobs/{job_id}", params={"job_id": job_id})))[1]


def own_tables(n) -> list[tuple]:
    """Every row of our own tables, for 'nothing was written' (the outbox and events too)."""
    rows = []
    for (name,) in n.query("SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE() "
                           "AND table_name LIKE %s ORDER BY table_name", (n.prefix.replace("_", "\\_") + "wpmsync\\_%",)):
        rows.append((name, n.query(f"SELECT * FROM `{name}`")))
    return rows


def wpmsync_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name.startswith("wpmsync")]


def queue_message(body: bytes | str, dequeue_count: int = 1) -> QueueMessage:
    raw = body if isinstance(body, bytes) else body.encode()
    return QueueMessage(id=uuid.uuid4().hex, body=raw, dequeue_count=dequeue_count)


def held_messages() -> list[tuple[dict, QueueMessage]]:
    """Every message now in the queue, received and hidden for five minutes (delivered later, by
    hand: the late messages of a job)."""
    held = []
    while got := common.queue().receive(max_messages=32, visibility_timeout=300):
        held += [(json.loads(text), QueueMessage(id=raw.id, body=text.encode(), dequeue_count=1))
                 for text, raw in got]
    return held


# ---------------------------------------------------------------- 1. late batches of an undone job

def test_late_batches_of_a_failed_job_write_nothing_after_its_undo(app, caplog, monkeypatch):
    monkeypatch.setenv("WPMSYNC_MAX_PARALLEL_BATCHES", "64")  # one lane per batch: all queued at once
    before = app.usermeta_checksum()
    status, body = answer(call(actions.sync, http("POST", "sync", {})))
    assert status == 202
    assert deliver_one()["type"] == "prepare"
    late = held_messages()
    assert len(late) == body["batches"] >= 4
    while app.usermeta_checksum() == before:  # batches run until one has written memberships
        call(batches.run_batch, late.pop(0)[1])
    (_, poisoned), *rest = late
    assert rest
    call(batches.poisoned_batch, poisoned)  # another batch ran out of retries: the job failed
    assert job_status(body["job_id"])["state"] == "failed"
    status, undo = answer(call(actions.undo, http("POST", "jobs/x/undo", {}, params={"job_id": body["job_id"]})))
    assert status in (200, 202)
    drain()  # the undo's own messages (the job's batch messages are still hidden)
    assert app.usermeta_checksum() == before
    caplog.set_level(logging.INFO)
    for data, msg in rest:  # the host redelivers the failed job's other batches, late
        caplog.clear()
        call(batches.run_batch, msg)
        assert len(wpmsync_records(caplog)) == 1, [r.getMessage() for r in caplog.records]
    call(batches.run_batch, queue_message(json.dumps({"type": "prepare", "job": body["job_id"]})))
    assert common.queue().receive(max_messages=32, visibility_timeout=1) == []  # fanned out nothing
    assert app.usermeta_checksum() == before  # WordPress's rows: nothing written after the undo
    listed = {c["job_id"]: c for c in answer(call(actions.journal, http("GET", "journal")))[1]["changes"]}
    assert listed[body["job_id"]]["undone_by"]


# ---------------------------------------------------------------- 2. unknown jobs, malformed messages

UNKNOWN = uuid.uuid4().hex


@pytest.mark.parametrize("message", [
    {"type": "prepare", "job": UNKNOWN},
    {"type": "batch", "job": UNKNOWN, "seq": 0},
    {"type": "undo", "job": UNKNOWN, "undo": uuid.uuid4().hex, "from_user": 0},
])
@pytest.mark.parametrize("queue", ["run_batch", "poisoned_batch"])
def test_a_message_of_an_unknown_job_is_dropped_with_one_log_line(app, caplog, message, queue):
    answer(call(actions.settings, http("GET", "settings")))  # our tables exist
    rows, tables = app.usermeta_checksum(), own_tables(app)
    caplog.set_level(logging.INFO)
    call(getattr(batches, queue), queue_message(json.dumps(message), 5 if queue == "poisoned_batch" else 1))
    assert len(wpmsync_records(caplog)) == 1, [r.getMessage() for r in caplog.records]
    assert app.usermeta_checksum() == rows and own_tables(app) == tables
    assert common.queue().receive(max_messages=1, visibility_timeout=1) == []


def test_a_late_copy_of_a_finished_jobs_message_changes_nothing(app, caplog):
    status, body = answer(call(actions.sync, http("POST", "sync", {"blog_ids": [app.ids["site_plain"]]})))
    assert deliver_one()["type"] == "prepare"
    late = held_messages()
    for _, msg in late:
        call(batches.run_batch, msg)
    assert job_status(body["job_id"])["state"] == "done"
    rows, tables = app.usermeta_checksum(), own_tables(app)
    caplog.set_level(logging.INFO)
    copies = [queue_message(json.dumps({"type": "prepare", "job": body["job_id"]}))] + [msg for _, msg in late]
    for queue in (batches.run_batch, batches.poisoned_batch):
        for msg in copies:  # delivered again, or landed in the poison queue after all
            caplog.clear()
            call(queue, msg)
            assert len(wpmsync_records(caplog)) == 1, [r.getMessage() for r in caplog.records]
    assert app.usermeta_checksum() == rows and own_tables(app) == tables
    assert job_status(body["job_id"])["state"] == "done"  # a stale copy fails no job that ended well
    assert common.queue().receive(max_messages=1, visibility_timeout=1) == []


JOB = uuid.uuid4().hex
MALFORMED = [
    b"", b"not json", b"\xff\xfe", b"[" * 50_000 + b"]" * 50_000, b"null", b"[]", b'"prepare"', b"42",
    json.dumps({}), json.dumps({"type": "explode", "job": JOB}), json.dumps({"type": "batch"}),
    json.dumps({"type": "prepare", "job": 7}), json.dumps({"type": "prepare", "job": "x" * 32}),
    json.dumps({"type": "prepare", "job": [JOB]}), json.dumps({"type": "prepare", "job": JOB, "seq": 0}),
    json.dumps({"type": "prepare", "job": JOB, "garbage": True}),
    json.dumps({"type": "batch", "job": JOB}), json.dumps({"type": "batch", "job": JOB, "seq": "0"}),
    json.dumps({"type": "batch", "job": JOB, "seq": 1.5}), json.dumps({"type": "batch", "job": JOB, "seq": True}),
    json.dumps({"type": "batch", "job": JOB, "seq": -1}), json.dumps({"type": "batch", "job": JOB, "seq": 2**70}),
    json.dumps({"type": "batch", "job": JOB, "seq": None}), json.dumps({"type": "batch", "job": JOB, "seq": 0, "x": 1}),
    json.dumps({"type": ["batch"], "job": JOB, "seq": 0}), json.dumps({"type": "BATCH", "job": JOB, "seq": 0}),
    json.dumps({"type": "undo", "job": JOB}), json.dumps({"type": "undo", "job": JOB, "undo": 5}),
    json.dumps({"type": "undo", "job": JOB, "undo": JOB, "from_user": "0"}),
    json.dumps({"type": "undo", "job": JOB, "undo": JOB, "from_user": -3}),
    json.dumps({"type": "undo", "job": JOB, "undo": JOB, "from_user": 0.5}),
    json.dumps({"type": "undo", "job": JOB, "undo": JOB, "from_user": 0, "more": "garbage"}),
]


@pytest.mark.parametrize("body", MALFORMED, ids=range(len(MALFORMED)))
def test_a_malformed_queue_message_is_dropped_with_one_log_line(app, caplog, body):
    status, started = answer(call(actions.sync, http("POST", "sync", {"blog_ids": [app.ids["site_plain"]]})))
    assert status == 202
    held_messages()  # the job's prepare message: out of the way
    rows, tables = app.usermeta_checksum(), own_tables(app)
    caplog.set_level(logging.INFO)
    for queue, count in ((batches.run_batch, 1), (batches.poisoned_batch, 5)):
        caplog.clear()
        call(queue, queue_message(body, count))  # never raises: the host would retry it
        records = wpmsync_records(caplog)
        assert len(records) == 1 and records[0].levelno >= logging.WARNING, [r.getMessage() for r in records]
    assert app.usermeta_checksum() == rows and own_tables(app) == tables
    assert job_status(started["job_id"])["state"] == "queued"  # a malformed message fails no job


# ---------------------------------------------------------------- 3. the first message cannot be queued

def _start_by_sync(app) -> Any:
    return call(actions.sync, http("POST", "sync", {}))


def _start_by_site_sync(app) -> Any:
    site = str(app.ids["site_club"])
    return call(actions.site_sync, http("POST", f"sites/{site}/sync", params={"blog_id": site}))


def _start_by_hook(app) -> Any:
    blog_id = app.wp.create_site("unqueued", options={"default_role": "author"})
    return call(hooks.hook, hook_request("site_created", {"blog_id": blog_id}))


def _start_by_timer(app) -> Any:
    return call(reconcile.reconcile_drift, TimerRequest(past_due=False))


@pytest.mark.parametrize("start", [_start_by_sync, _start_by_site_sync, _start_by_hook, _start_by_timer])
def test_a_job_whose_first_message_cannot_be_queued_ends_failed_from_every_path(app, monkeypatch, start):
    call(actions.settings, http("PATCH", "settings", {"new_user": True, "new_site": True}))

    def unreachable(messages: list) -> int:
        raise ConnectionError("storage unreachable")

    working = common.send
    monkeypatch.setattr(common, "send", unreachable)
    try:
        resp = start(app)
    except QueueUnreachable:  # the timer: the host records the failed invocation
        resp = None
    if resp is not None:  # a 503 that says the job holds nothing; a hook's event is tried again
        status, body = answer(resp)
        assert status == 503 and "ended failed" in body["error"] and body["correlation_id"]
    (job_id,), = app.query("SELECT id FROM {p}wpmsync_jobs")
    job = job_status(job_id)
    assert job["state"] == "failed" and "could not queue the job" in job["errors"][0]["job"]
    monkeypatch.setattr(common, "send", working)
    status, body = answer(call(actions.sync, http("POST", "sync", {})))
    assert status == 202, body  # not a 409 for an hour


# ---------------------------------------------------------------- 4. a sync starts during the scan

def test_the_timer_skips_when_a_sync_job_starts_during_its_scan(app, monkeypatch, caplog):
    call(actions.settings, http("PATCH", "settings", {"new_user": True}))
    scan = memberships.sites_missing_members
    started: list[str] = []

    def scan_while_a_sync_starts(*args: Any, **kwargs: Any) -> list[int]:
        status, body = answer(call(actions.sync, http("POST", "sync", {"blog_ids": [app.ids["site_plain"]]})))
        assert status == 202
        started.append(body["job_id"])
        return scan(*args, **kwargs)

    monkeypatch.setattr(memberships, "sites_missing_members", scan_while_a_sync_starts)
    caplog.set_level(logging.INFO)
    call(reconcile.reconcile_drift, TimerRequest(past_due=False))  # never raises
    passes = [r for r in caplog.records if r.name == "wpmsync.reconcile" and r.getMessage().startswith("reconcile ")]
    assert [r.getMessage() for r in passes] == ["reconcile skipped"]
    assert started[0] in passes[0].reason
    assert app.query("SELECT id FROM {p}wpmsync_jobs") == [(started[0],)]  # no job of the timer's own


# ---------------------------------------------------------------- 5. uninstall in another process

def test_our_tables_dropped_by_another_process_are_made_again(app):
    call(actions.settings, http("PATCH", "settings", {"new_user": True}))
    status, _ = answer(call(hooks.hook, hook_request("user_created", {"user_id": app.ids["user2"], "blog_id": 1})))
    assert status == 200  # this process has made (and remembered) our tables
    other = subprocess.run([sys.executable, "-m", "wpmsync", "uninstall", "--json", "--db", app.db,
                            "--prefix", app.prefix], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert other.returncode == 0, other.stderr
    assert json.loads(other.stdout)["tables_dropped"]
    assert app.query("SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = DATABASE() "
                     "AND table_name LIKE 'wp\\_wpmsync\\_%%'") == [(0,)]
    assert answer(call(actions.settings, http("PATCH", "settings", {"new_user": True})))[0] == 200
    status, body = answer(call(hooks.hook, hook_request("user_created", {"user_id": app.ids["user3"],
                                                                          "blog_id": 1})))
    assert status == 200 and body["added"] > 0, body
    assert app.ids["user3"] in app.members(app.ids["site_club"])  # WordPress's rows
    call(reconcile.reconcile_drift, TimerRequest(past_due=False))
    drain()  # the job the timer queued, if any
    assert answer(call(actions.journal, http("GET", "journal")))[0] == 200
    status, body = answer(call(actions.sync, http("POST", "sync", {})))
    assert status == 202, body


# ---------------------------------------------------------------- 6. the role report

def _sync_everyone(app) -> None:
    status, _ = answer(call(actions.sync, http("POST", "sync", {})))
    assert status == 202
    drain()


def role_report(app) -> dict[str, Any]:
    """What the full timer reports (the job it leaves behind keeps its findings): a role change
    updates a row in place, which only the full pass reads; the incremental passes repeat its
    report with its time."""
    call(reconcile.reconcile_full, TimerRequest(past_due=False))
    (job_id,), = app.query("SELECT id FROM {p}wpmsync_jobs WHERE kind = 'reconcile' ORDER BY created_at DESC LIMIT 1")
    report = job_status(job_id)["result"]["role_differences"]
    assert report["users"] == len(report["user_ids"])  # this network is small: all of them shown
    return report


def wordpress_roles(app) -> dict[int, dict[int, list[str]]]:
    """user -> live site of network 1 -> the roles WordPress reads back there; and each site's
    default role as WordPress has it."""
    seen = app.wp.read_back()
    live = {b: info for b, info in seen["blogs"].items()
            if info["network_id"] == 1 and not (info["archived"] or info["spam"] or info["deleted"])}
    roles: dict[int, dict[int, list[str]]] = {}
    for blog_id, info in live.items():
        for user_id, member in info["members"].items():
            if member["member"]:
                roles.setdefault(user_id, {})[blog_id] = sorted(member["roles"])
    return roles


def default_roles(app) -> dict[int, str]:
    seen = app.wp.read_back(members=False)
    return {b: (info["default_role"] if info["default_role"] in info["roles"] else "subscriber")
            for b, info in seen["blogs"].items() if info["network_id"] == 1}


def test_the_role_report_shows_a_lost_role_change_and_not_each_sites_default_role(app):
    call(actions.settings, http("PATCH", "settings", {"new_user": True, "role_sync": True}))
    _sync_everyone(app)
    roles, defaults = wordpress_roles(app), default_roles(app)
    # WordPress: these users have each site's own default role, which differ from site to site
    only_defaults = {u for u, sites in roles.items() if all(r == [defaults[b]] for b, r in sites.items())}
    assert {app.ids[f"user{i}"] for i in range(2, 9)} <= only_defaults
    assert any(len({tuple(r) for r in roles[u].values()}) > 1 for u in only_defaults)
    first = role_report(app)
    assert not set(first["user_ids"]) & only_defaults, first
    # user1 was made contributor on one site: WordPress says contributor there, subscriber elsewhere
    assert roles[app.ids["user1"]][app.ids["site_authors"]] == ["contributor"]
    assert set(first["user_ids"]) == {app.ids["user1"]}

    # the functions are down: a role set in WordPress never reaches the user's other sites
    user5 = app.ids["user5"]
    app.wp.set_role(app.ids["site_plain"], user5, "editor")
    second = role_report(app)
    assert set(second["user_ids"]) == {app.ids["user1"], user5} and second["users"] == 2
    # what the PHP plugin's replication does makes the difference go away
    app.wp.replicate_role_like_plugin(user5, app.ids["site_plain"], "editor")
    assert all(r == ["editor"] for r in wordpress_roles(app)[user5].values())
    assert set(role_report(app)["user_ids"]) == {app.ids["user1"]}


def test_the_role_report_follows_the_rules_of_role_replication(app):
    call(actions.settings, http("PATCH", "settings", {"new_user": True, "role_sync": True}))
    _sync_everyone(app)
    ids = app.ids
    plain, club = ids["site_plain"], ids["site_club"]
    call(actions.network_options, http("PATCH", "options", {"sites": {str(ids["site_editors"]): {"opt_out": True}},
                                                          "excluded_roles": ["author"]}))
    app.wp.set_role(ids["site_editors"], ids["user2"], "administrator")  # on a site that opted out
    app.wp.set_role(plain, ids["user3"], "author")         # an excluded role
    app.wp.set_role(club, ids["user4"], "administrator")   # at the role ceiling (level_10)
    app.wp.add_user_to_blog(plain, ids["user_boss"], "editor")   # a super admin
    app.wp.add_user_to_blog(club, ids["user_boss"], "author")
    app.wp.set_role(plain, ids["user6"], "editor")         # none of those: a lost role change
    report = role_report(app)
    assert set(report["user_ids"]) == {ids["user1"], ids["user6"]}, report
    # scope main_to_subsites: role changes flow from the main site only
    call(actions.network_options, http("PATCH", "options", {"scope": "main_to_subsites"}))
    app.wp.set_role(1, ids["user7"], "editor")
    assert set(role_report(app)["user_ids"]) == {ids["user7"]}
