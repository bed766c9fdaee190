"""The undo journal: every row a change writes is journaled, and ``undo JOB_ID`` puts back the
exact previous rows (``umeta_id`` included), never overwriting what changed since.

The strongest check is the whole ``usermeta`` table, ids and all, and the roles options: equal
before a change and after its undo. Real WordPress then reads the memberships back."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import azure.functions as func
import pytest

from conftest import network1_users
from wpmsync.errors import Conflict, InputError, NotFound

ROOT = Path(__file__).resolve().parent.parent


def journal_rows(n, job_id):
    """The change's journal rows, with the job id of the undo that undid each (if any)."""
    return n.query("SELECT j.tbl, j.row_id, j.user_id, j.blog_id, j.meta_key, j.old_value, j.new_value, u.job_id "
                   "FROM {p}wpmsync_journal j LEFT JOIN {p}wpmsync_changes u ON u.seq = j.undone_by "
                   "WHERE j.change_seq = (SELECT seq FROM {p}wpmsync_changes WHERE job_id = %s) ORDER BY j.id",
                   (job_id,))


def roles_options(n):
    """Every site's roles option row (id and value)."""
    blogs = [b for (b,) in n.query("SELECT blog_id FROM {p}blogs WHERE site_id = 1 ORDER BY blog_id")]
    return {b: n.query(f"SELECT option_id, option_value FROM {{p}}{'' if b == 1 else f'{b}_'}options "
                       f"WHERE option_name = 'wp_{'' if b == 1 else f'{b}_'}user_roles'") for b in blogs}


def test_undo_of_a_sync_from_scratch_restores_every_row_exactly(net):
    before = net.usermeta_checksum()
    with net.engine() as engine:
        outcome = engine.sync_sites(None)
        assert outcome.added > 0 and outcome.job_id
        rows = journal_rows(net, outcome.job_id)
        # one journal row per row written: the memberships (two rows each) and primary_blog /
        # source_domain of users who had none
        written = net.query("SELECT COUNT(*) FROM {p}usermeta")[0][0] - len(before)
        assert len([r for r in rows if r[5] is None]) == written > 2 * outcome.added - 1
        plan = engine.undo(outcome.job_id, dry_run=True)
        assert plan.restored == len(rows) and plan.conflicts == 0 and plan.job_id is None
        assert net.query("SELECT COUNT(*) FROM {p}usermeta")[0][0] == len(before) + written  # preview wrote nothing
        result = engine.undo(outcome.job_id)
    assert result.restored == len(rows) and result.conflicts == 0 and result.job_id
    assert net.usermeta_checksum() == before
    assert {r[7] for r in journal_rows(net, outcome.job_id)} == {result.job_id}


def test_undo_of_an_unsync_puts_back_rows_ids_primary_blog_and_removal_record(twins):
    _, b = twins
    b.wp.sync_like_plugin(network_id=1, user_ids=network1_users(b))
    users = [b.ids["user2"], b.ids["user3"]]
    sites = [1, b.ids["site_plain"], b.ids["site_club"]]  # 1 is their primary_blog: it moves
    before = b.usermeta_checksum()
    seen_before = b.wp.read_back(user_ids=users, blog_ids=sites)
    with b.engine() as engine:
        outcome = engine.remove_users(users, sites)
        assert b.members(1).isdisjoint(users)
        kinds = {r[4] for r in journal_rows(b, outcome.job_id)}
        assert {"primary_blog", "wpmus_removed_from_blogs", "wp_capabilities", "wp_user_level"} <= kinds
        result = engine.undo(outcome.job_id)
    assert result.conflicts == 0
    assert b.usermeta_checksum() == before  # the same rows, with the same umeta_id
    assert b.wp.read_back(user_ids=users, blog_ids=sites) == seen_before  # WordPress agrees
    with b.engine() as engine:  # no removal is remembered any more: nothing to add, nothing skipped
        plan = engine.sync_sites(sites, dry_run=True)
    assert plan.added == 0 and not [s for s in plan.skipped if s.get("user_id") in users]


def test_undo_of_a_role_copy_restores_the_roles_option_and_the_caps(net):
    source, target = net.ids["site_club"], net.ids["site_plain"]
    uid = net.ids["user4"]
    with net.engine() as engine:
        engine.sync_sites(None)
    net.wp.set_role(source, uid, "member")
    before, roles_before = net.usermeta_checksum(), roles_options(net)
    with net.engine() as engine:
        engine.change_network_options({"missing_role": "copy"})
        outcome = engine.replicate_role(uid, "member", source)
        assert outcome.sites[target]["role_copied_from"] == source and target in outcome.touched_roles
        copied = roles_options(net)
        assert {b for b in copied if copied[b] != roles_before[b]} == outcome.touched_roles
        result = engine.undo(outcome.job_id)
    assert result.conflicts == 0 and result.touched_roles == outcome.touched_roles
    assert net.usermeta_checksum() == before and roles_options(net) == roles_before
    net.wp.flush_cache()
    assert net.wp.eval("switch_to_blog(%d); $r = get_role('member'); restore_current_blog(); "
                       "return $r === null;" % target) is True


def test_undo_keeps_memberships_changed_since_and_reports_them(net):
    plain, uid = net.ids["site_plain"], net.ids["user3"]
    before, members_before = net.usermeta_checksum(), net.members(plain)
    with net.engine() as engine:
        outcome = engine.sync_sites([plain])
    net.wp.set_role(plain, uid, "editor")  # someone promoted user3 there after the sync
    mine = lambda: [r for r in net.membership_rows() if r[0] == uid and r[1].startswith(f"wp_{plain}_")]
    after_edit = mine()
    with net.engine() as engine:
        result = engine.undo(outcome.job_id)
        assert result.conflicts == 2  # the caps row changed; its user_level row stays with it
        assert result.skipped == [{"user_id": uid, "blog_id": plain, "reason": "changed since this change"}]
    assert mine() == after_edit and net.members(plain) == members_before | {uid}
    others = lambda rows: [r for r in rows if r[1] != uid]
    assert others(net.usermeta_checksum()) == others(before)  # everyone else is back as they were
    with net.engine() as engine:  # a second undo finds nothing left that it may restore
        again = engine.undo(outcome.job_id)
    assert again.restored == 0 and again.conflicts == 2 and again.job_id is None


def test_undo_twice_restores_nothing_and_undo_of_the_undo_redoes(net):
    with net.engine() as engine:
        outcome = engine.sync_sites(None)
        synced = net.usermeta_checksum()
        first = engine.undo(outcome.job_id)
        assert engine.undo(outcome.job_id).restored == 0  # a retried undo is harmless
        redo = engine.undo(first.job_id)
    assert redo.restored == first.restored and net.usermeta_checksum() == synced
    assert net.duplicates() == []


def test_undo_of_a_queued_job_and_of_a_hook(net):
    """A job run batch by batch through the queue handlers, and an inline hook, are each one change."""
    from wpmsync import hooks, jobs

    before = net.usermeta_checksum()
    with net.engine() as engine:
        job = jobs.start(engine, "sync_all", [s.blog_id for s in engine.network.live_sites()], lambda m: len(m))
        sent: list[dict] = []
        jobs.handle_prepare(engine, job.id, lambda msgs: sent.extend(msgs) or len(msgs))
        with pytest.raises(Conflict):  # batches still pending: the job is running
            engine.undo(job.id)
        for message in sent + sent[:1]:  # the first message redelivered: journals nothing twice
            jobs.handle_batch(engine, job.id, message["seq"])
        listed = {c["job_id"]: c for c in engine.journal()}
        assert listed[job.id]["rows"] == len(net.usermeta_checksum()) - len(before)
        assert listed[job.id]["trigger"] == "sync_all (api)"
        assert engine.undo(job.id).conflicts == 0
    assert net.usermeta_checksum() == before

    uid = net.wp.create_user("hooked")
    created = net.usermeta_checksum()
    with net.engine(trigger="hook:user_created e1") as engine:
        engine.change_settings(new_user=True)
        answer = hooks.handle(engine, "user_created", {"user_id": uid, "blog_id": 1}, lambda m: len(m))
        assert answer["added"] > 1 and engine.journal(1)[0]["trigger"] == "add_user (hook:user_created e1)"
        engine.undo(answer["job_id"])
    assert net.usermeta_checksum() == created


def test_bad_ids_are_refused_and_change_nothing(net):
    before = net.usermeta_checksum()
    with net.engine() as engine:
        for bad in ("", "x" * 32, "1; DROP TABLE wp_users", None, 42):
            with pytest.raises(InputError):
                engine.undo(bad)
        with pytest.raises(NotFound):
            engine.undo("0" * 32)
        with pytest.raises(InputError):
            engine.journal(0)
    assert net.usermeta_checksum() == before


def test_undo_and_journal_over_http_and_cli(net, monkeypatch):
    from blueprints import actions

    monkeypatch.setenv("WPMSYNC_DB_NAME", net.db)
    before = net.usermeta_checksum()
    sync = actions.users_sync.build().get_user_function()
    body = json.dumps({"user_ids": [net.ids["user1"], net.ids["user2"]], "blog_ids": [net.ids["site_plain"]]})
    answer = json.loads(sync(func.HttpRequest("POST", "http://localhost/api/users/sync", body=body.encode(),
                                              headers={"X-Wpmsync-Actor": "ann (user 7)\n"})).get_body())
    assert answer["added"] == 2 and answer["job_id"]
    journal = actions.journal.build().get_user_function()
    listed = json.loads(journal(func.HttpRequest("GET", "http://localhost/api/journal", body=b"",
                                                 params={"limit": "5"})).get_body())["changes"]
    assert listed[0]["job_id"] == answer["job_id"] and listed[0]["trigger"].startswith("users_sync (manual:")
    assert listed[0]["trigger"].endswith(" by ann (user 7))")  # who clicked, as the mu-plugin says
    undo = actions.undo.build().get_user_function()

    def call(job_id, payload):
        return undo(func.HttpRequest("POST", f"http://localhost/api/jobs/{job_id}/undo",
                                     body=json.dumps(payload).encode(), route_params={"job_id": job_id}))

    preview = call(answer["job_id"], {"dry_run": True})
    assert preview.status_code == 200 and json.loads(preview.get_body())["restored"] == listed[0]["rows"] >= 4
    assert net.usermeta_checksum() != before
    assert call("f" * 32, {}).status_code == 404 and call("nope", {}).status_code == 400
    cli = subprocess.run([sys.executable, "-m", "wpmsync", "undo", answer["job_id"], "--json", "--db", net.db],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert cli.returncode == 0, cli.stderr
    assert json.loads(cli.stdout)["restored"] == listed[0]["rows"] and net.usermeta_checksum() == before
    shown = subprocess.run([sys.executable, "-m", "wpmsync", "journal", "--db", net.db], cwd=ROOT,
                           capture_output=True, text=True, timeout=60)
    assert f"undone by {json.loads(cli.stdout)['job_id']}" in shown.stdout
    assert f"undo {answer['job_id']} (cli:undo)" in shown.stdout  # the same form as a queued undo's


def test_the_timer_prunes_changes_older_than_the_journal_days(net):
    """WPMSYNC_JOURNAL_DAYS (30): older changes and their rows go, newer ones stay; even with
    every trigger switched off (manual actions journal too)."""
    from wpmsync.reconcile import reconcile

    with net.engine() as engine:
        old = engine.sync_sites([net.ids["site_plain"]]).job_id
        new = engine.sync_sites([net.ids["site_club"]]).job_id
    net.query("UPDATE {p}wpmsync_changes SET created_at = NOW(6) - INTERVAL 31 DAY WHERE job_id = %s", (old,))
    with net.engine() as engine:
        assert reconcile(engine)["status"] == "skipped"  # all triggers off, the journal still pruned
        assert [c["job_id"] for c in engine.journal()] == [new]
        with pytest.raises(NotFound):
            engine.undo(old)
    assert journal_rows(net, old) == [] and journal_rows(net, new) != []
    assert net.query("SELECT COUNT(*) FROM {p}wpmsync_journal")[0][0] == len(journal_rows(net, new))


def test_a_forced_sync_clears_a_users_removal_record_in_one_write_and_undo_puts_it_back(net):
    """A forced sync that adds a user back to two sites they were removed from clears the record
    once, in the transaction that writes the memberships: undo puts back the record with its id."""
    uid, plain, club = net.ids["user2"], net.ids["site_plain"], net.ids["site_club"]
    with net.engine() as engine:
        engine.sync_sites([plain, club])
        engine.remove_users([uid], [plain, club])
        removed = net.usermeta_checksum()
        record = [r for r in removed if r[1] == uid and r[2] == "wpmus_removed_from_blogs"]
        assert len(record) == 1
        outcome = engine.sync_sites([plain, club], force=True)
        assert outcome.removals_cleared == 2 and uid in net.members(plain)
        writes = [r for r in journal_rows(net, outcome.job_id) if r[4] == "wpmus_removed_from_blogs"]
        assert [(w[1], w[6]) for w in writes] == [(record[0][0], None)]  # deleted, once
        result = engine.undo(outcome.job_id)
    assert result.conflicts == 0 and net.usermeta_checksum() == removed


def test_a_row_written_twice_by_one_change_gets_its_first_value_back(net):
    """One change that writes the same row twice (a removal record changed, then deleted) is
    undone to the row as it was before the first write, with its id."""
    from wpmsync import removals
    from wpmsync.journal import Change
    uid, plain, club = net.ids["user2"], net.ids["site_plain"], net.ids["site_club"]
    with net.engine() as engine:
        engine.sync_sites([plain, club])
        engine.remove_users([uid], [plain, club])
        before = net.usermeta_checksum()
        change = Change.new("test: two writes")
        removals.forget(engine.conn, engine.network, uid, plain, by=change)
        removals.forget(engine.conn, engine.network, uid, club, by=change)
        writes = [r for r in journal_rows(net, change.job_id) if r[4] == "wpmus_removed_from_blogs"]
        assert len({w[1] for w in writes}) == 1 and len(writes) == 2 and writes[-1][6] is None
        result = engine.undo(change.job_id)
    assert result.conflicts == 0 and net.usermeta_checksum() == before
