"""Gentle on the live database (issue 12): the global writer cap, a job's lanes, batches in
steps bounded in time, connection faults retried. Real MariaDB, a network built by WordPress,
the real queue API (Azurite); the oracle for the rows is WordPress's own loop on a twin."""
from __future__ import annotations

import json
import time
from typing import Any

import pymysql
import pytest
from azure.functions.queue import QueueMessage

from blueprints import actions, batches, common
from conftest import LANE_DB_ENV, _copy, network1_users
from test_differential import assert_same_rows
import test_functions
from test_functions import answer, call, drain, http
from wpfixture import drop_database
from wpmsync import Config, Engine, db, jobs, throttle
from wpmsync.errors import Unreachable


app = test_functions.app  # the fixture: the app on a fresh network copy and a fresh queue


@pytest.fixture(autouse=True)
def _fresh_pace():
    throttle.forget_rates()
    yield
    throttle.forget_rates()


def config_of(net: Any, **overrides: Any) -> Config:
    return Config.from_env({**LANE_DB_ENV, "WPMSYNC_DB_NAME": net.db, "WPMSYNC_TABLE_PREFIX": net.prefix}, **overrides)


def receive_all(wait: float = 0.0) -> list[dict]:
    """Every visible message of the batch queue (deleted), after ``wait`` seconds."""
    time.sleep(wait)
    got = common.queue().receive(max_messages=32, visibility_timeout=30)
    for _, raw in got:
        common.queue().delete(raw)
    return [json.loads(text) for text, _ in got]


def run(message: dict, dequeue_count: int = 1) -> None:
    call(batches.run_batch, QueueMessage(id="m", body=json.dumps(message).encode(), dequeue_count=dequeue_count))


def test_writer_slots_are_held_in_the_database_across_connections(net):
    config = config_of(net, max_parallel_batches=2)
    first, second, third = (db.connect(config) for _ in range(3))
    try:
        taken = {throttle.take_slot(first, config), throttle.take_slot(second, config)}
        assert taken == {0, 1} and throttle.slots_in_use(third, config) == 2
        with pytest.raises(throttle.NoSlot):
            throttle.take_slot(third, config)
        first.close()  # a worker that dies frees its slot with its connection
        # (once the server has processed the disconnect: MySQL 9.7 takes a moment)
        deadline = time.monotonic() + 5
        while throttle.slots_in_use(third, config) == 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert throttle.take_slot(third, config) in taken
        # another network on the same server has slots of its own
        other = config_of(net, table_prefix="other_", max_parallel_batches=2)
        assert throttle.take_slot(second, other) in (0, 1)
    finally:
        for conn in (second, third):
            conn.close()


def test_a_batch_without_a_free_slot_goes_back_to_the_queue_later_without_a_failed_try(app, monkeypatch):
    monkeypatch.setenv("WPMSYNC_MAX_PARALLEL_BATCHES", "1")
    monkeypatch.setattr(throttle, "SLOT_DELAY", (2, 2))
    status, body = answer(call(actions.sync, http("POST", "sync", {})))
    assert status == 202
    run(receive_all()[0])  # prepare: one lane (cap 1), so one batch message
    (message,) = receive_all()
    assert message == {"type": "batch", "job": body["job_id"], "seq": 0, "lanes": 1}
    config = Config.from_env()
    holder = db.connect(config)
    try:
        throttle.take_slot(holder, config)  # every slot taken: another instance is writing
        before = app.usermeta_checksum()
        run(message, dequeue_count=4)  # returns: acknowledged, not raised into a retry
        assert app.usermeta_checksum() == before and receive_all() == []  # invisible for now
        (again,) = receive_all(wait=2.5)
        assert again == message  # the same work, a new message: its tries start again
    finally:
        holder.close()
    (text_row,) = app.query("SELECT attempts, state, error FROM {p}wpmsync_job_batches WHERE job_id = %s AND seq = 0",
                            (body["job_id"],))
    assert text_row == (0, "pending", None)  # waiting was not a try, nor an error
    run(again)
    assert drain() >= 1
    job = answer(call(actions.job_status, http("GET", "jobs/x", params={"job_id": body["job_id"]})))[1]
    assert job["state"] == "done" and job["errors"] == []
    assert common.queue().poison().receive(max_messages=32) == []


def test_a_job_keeps_one_message_per_lane_in_the_queue(app, templates, monkeypatch):
    monkeypatch.setenv("WPMSYNC_MAX_PARALLEL_BATCHES", "2")
    twin = _copy(templates, "wp")
    try:
        twin.wp.sync_like_plugin(network_id=1, user_ids=network1_users(twin))
        status, body = answer(call(actions.sync, http("POST", "sync", {})))
        assert body["batches"] >= 4
        run(receive_all()[0])  # prepare
        seen = 0
        while True:
            queued = receive_all()
            assert len(queued) <= 2  # never more than the lanes
            if not queued:
                break
            for message in queued:
                assert message["lanes"] == 2
                run(message)
                seen += 1
        assert seen == body["batches"]  # every batch once, each lane in order
        job = answer(call(actions.job_status, http("GET", "jobs/x", params={"job_id": body["job_id"]})))[1]
        assert job["state"] == "done"
        assert_same_rows(twin, app)
    finally:
        drop_database(twin.db)


def test_a_redelivered_lane_message_still_queues_the_next_batch(app, monkeypatch):
    """A worker that stopped between the batch's commit and queueing its successor: the retry
    finds the batch done and queues the lane's next one, so the lane never stalls."""
    monkeypatch.setenv("WPMSYNC_MAX_PARALLEL_BATCHES", "1")
    status, body = answer(call(actions.sync, http("POST", "sync", {})))
    run(receive_all()[0])
    (first,) = receive_all()
    with monkeypatch.context() as crash:
        crash.setattr(common, "send", lambda messages, delay=0: (_ for _ in ()).throw(RuntimeError("crash")))
        with pytest.raises(RuntimeError):
            run(first)  # the batch committed, the successor was never sent
    assert receive_all() == []
    run(first, dequeue_count=2)
    (following,) = receive_all()
    assert following["seq"] == 1
    run(following)
    drain()
    job = answer(call(actions.job_status, http("GET", "jobs/x", params={"job_id": body["job_id"]})))[1]
    assert job["state"] == "done" and job["batches"]["done"] == job["batches"]["total"]


def test_steps_follow_the_time_budget_and_a_stopped_batch_resumes_where_it_committed(templates):
    """One batch (every site, every user) written in steps of a measured size: a slow server
    (a long step) makes the next ones smaller. A batch stopped after some steps resumes from
    its row: the rows are WordPress's own, and ``added`` counts each membership once."""
    twin, ours = _copy(templates, "wp"), _copy(templates, "wp")
    try:
        added_by_wordpress = twin.wp.sync_like_plugin(network_id=1, user_ids=network1_users(twin))
        config = config_of(ours, batch_seconds=0.1)
        throttle.learn(config, 30, 0.1)  # 300 memberships/s: steps of 24 memberships
        with Engine(config) as engine:
            sites = [s.blog_id for s in engine.network.live_sites()]
            per_step = throttle.users_per_step(config, len(sites))
            assert per_step == max(1, 24 // len(sites))
            (top,), = ours.query("SELECT MAX(ID) FROM {p}users")
            job = jobs.create(engine.conn, engine.network, "sync_sites", sites, [(0, int(top))])
            steps: list[tuple[int, int]] = []
            real_learn, record = throttle.learn, jobs.recorder(engine.network, job.id, 0)

            def slow_learn(cfg: Config, memberships: int, seconds: float) -> None:
                real_learn(cfg, memberships, seconds + 0.5)  # the server is slower than it looked

            def dies_in_step_two(cur: Any, outcome: Any, first: int, following: int | None) -> None:
                steps.append((first, -1 if following is None else following))
                record(cur, outcome, first, following)
                if len(steps) == 2:
                    raise KeyboardInterrupt  # the worker dies inside the second step
            throttle.learn = slow_learn  # type: ignore[assignment]
            try:
                with pytest.raises(KeyboardInterrupt):
                    engine.run_batch(jobs.batch_of(engine.conn, engine.network, job.id, 0)[0],
                                     record=dies_in_step_two)
            finally:
                throttle.learn = real_learn  # type: ignore[assignment]
            assert throttle.users_per_step(config, len(sites)) < per_step or per_step == 1
            (resume, added), = ours.query("SELECT first_user, added FROM {p}wpmsync_job_batches WHERE job_id = %s",
                                          (job.id,))
            assert resume == steps[0][1] and added > 0  # the first step committed, the second rolled back
            assert jobs.handle_batch(engine, job.id, 0) is not None  # resumes there
            status = jobs.status(engine.conn, engine.network, job.id)
        assert status["batches"]["done"] == 1 and status["memberships_added"] == added_by_wordpress
        assert_same_rows(twin, ours)
    finally:
        drop_database(twin.db)
        drop_database(ours.db)


def test_connection_faults_are_tried_again_then_a_503(net, monkeypatch):
    config = config_of(net)
    real = pymysql.connect
    calls: list[int] = []
    monkeypatch.setattr(db, "backoff", lambda attempt: 0.0)

    def flaky(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) <= 2:
            raise pymysql.err.OperationalError(1040, "Too many connections")
        return real(*args, **kwargs)
    monkeypatch.setattr(pymysql, "connect", flaky)
    db.connect(config).close()  # the third try got in
    assert len(calls) == 3
    calls.clear()
    monkeypatch.setattr(pymysql, "connect", lambda *a, **k: (_ for _ in ()).throw(
        pymysql.err.OperationalError(2003, "Can't connect to MySQL server on '10.0.0.9'")))
    with pytest.raises(Unreachable) as refused:
        db.connect(config)
    assert refused.value.status == 503 and "10.0.0.9" not in refused.value.public_message()
    # a statement fault is not a connection fault: never retried
    with pytest.raises(pymysql.err.OperationalError):
        db.retry_connection_loss(lambda retried: (_ for _ in ()).throw(pymysql.err.OperationalError(1054, "x")), "t")
    tries: list[int] = []

    def lost_once(retried: bool) -> str:
        tries.append(1)
        if len(tries) == 1:
            raise pymysql.err.OperationalError(2013, "Lost connection to MySQL server during query")
        assert retried  # the second try knows it follows a loss
        return "done"
    assert db.retry_connection_loss(lost_once, "t") == "done" and len(tries) == 2


def test_a_connection_lost_under_a_request_is_a_503_without_details(app, monkeypatch):
    def lost(*args: Any, **kwargs: Any) -> Any:
        raise pymysql.err.OperationalError(2013, "Lost connection to MySQL server at 'db.internal:3306'")
    monkeypatch.setattr(Engine, "settings", lost)
    status, body = answer(call(actions.settings, http("GET", "settings")))
    assert status == 503 and "db.internal" not in json.dumps(body) and body["correlation_id"]


def _status(job_id: str) -> dict:
    return answer(call(actions.job_status, http("GET", "jobs/x", params={"job_id": job_id})))[1]


def test_a_plan_over_more_than_one_batch_is_a_queued_job_with_progress(app, templates):
    """The plan of a sync of every site (more users than one batch here): 202 and a job; its
    batches preview their ranges (parallel, in lanes) and its result adds up to what WordPress's
    own loop then adds, site by site. Nothing is written, and a sync may run beside it."""
    twin = _copy(templates, "wp")
    try:
        before = app.usermeta_checksum()
        status, body = answer(call(actions.plan, http("POST", "plan", {})))
        assert status == 202 and body["kind"] == "plan" and body["batches"] > 1
        assert _status(body["job_id"])["result"]["plan"]["added"] == 0
        run(receive_all()[0])  # prepare: the lanes start
        first = receive_all()
        run(first[0])
        partial = _status(body["job_id"])
        assert partial["batches"]["done"] == 1 and partial["state"] == "running"  # progress shows
        for message in first[1:]:
            run(message)
        drain()
        done = _status(body["job_id"])
        assert done["state"] == "done" and done["batches"]["done"] == done["batches"]["total"] == body["batches"]
        assert app.usermeta_checksum() == before  # a plan writes nothing
        # the oracle: WordPress's loop on the twin, per site
        rows_before = twin.membership_rows()
        added = twin.wp.sync_like_plugin(network_id=1, user_ids=network1_users(twin))
        assert done["result"]["plan"]["added"] == added
        new_caps = [key for key in (set(twin.membership_rows()) - set(rows_before)) if key[1].endswith("capabilities")]
        per_site: dict[str, int] = {}
        for _, key, _ in new_caps:
            blog = key[len("wp_"):-len("_capabilities")].rstrip("_") or str(app.ids.get("main", 1))
            per_site[blog] = per_site.get(blog, 0) + 1
        assert {b: v["added"] for b, v in done["result"]["plan"]["sites"].items() if v["added"]} == per_site
        # a plan job holds no site: a sync starts beside it
        status, sync = answer(call(actions.sync, http("POST", "sync", {})))
        assert status == 202
    finally:
        drop_database(twin.db)


def test_an_undo_preview_over_more_than_one_batch_is_a_queued_job(app):
    before = app.usermeta_checksum()
    status, sync = answer(call(actions.sync, http("POST", "sync", {})))
    drain()
    synced = app.usermeta_checksum()
    status, body = answer(call(actions.undo, http("POST", "jobs/x/undo", {"dry_run": True},
                                                  params={"job_id": sync["job_id"]})))
    assert status == 202 and body["kind"] == "undo_preview" and body["undo_of"] == sync["job_id"] and body["dry_run"]
    (message,) = receive_all()
    run(message)
    partial = _status(body["job_id"])["result"]
    assert partial["next_user"] is not None and 0 < partial["preview"]["restored"] < len(synced) - len(before)
    run(message)  # a copy of a step already handled adds nothing
    assert _status(body["job_id"])["result"]["preview"]["restored"] == partial["preview"]["restored"]
    drain()
    done = _status(body["job_id"])
    # the oracle: the rows the sync added to WordPress's usermeta, which the undo would take back
    assert done["state"] == "done" and done["result"]["preview"]["restored"] == len(synced) - len(before)
    assert app.usermeta_checksum() == synced  # a preview writes nothing
