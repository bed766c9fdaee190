"""Manual actions for the portal, the WordPress network admin screen and curl (function key).

| method, route                      | does                                               |
| ---------------------------------- | -------------------------------------------------- |
| POST /api/sync                     | sync from scratch (no ``blog_ids``) or the given sites: 202 + job |
| POST /api/sites/{blog_id}/sync     | one site pulls in every network user: 202 + job    |
| POST /api/plan                     | dry run of sync / add_user / add_site / set_role; over one batch: 202 + a plan job |
| GET, PATCH /api/settings           | the three trigger switches                         |
| GET, PATCH /api/options            | per-site opt-out and role, role filters, missing roles |
| POST /api/users/sync               | selected users join selected sites                  |
| POST /api/unsync                   | take selected users off selected sites              |
| GET /api/jobs/{job_id}             | job status                                         |
| POST /api/jobs/{job_id}/undo       | put back what a change wrote (``dry_run`` previews; over one batch: 202 + job) |
| GET /api/journal                   | the newest changes in the undo journal             |
| GET /api/health                    | database reachable, settings valid (anonymous)     |
"""
from __future__ import annotations

from typing import Any

import azure.functions as func

from wpmsync import inputs, jobs
from wpmsync.errors import QueueUnreachable
from wpmsync.memberships import require_blog_ids

from . import common

bp = func.Blueprint()
PLAN_ACTIONS = ("sync", "add_user", "add_site", "set_role")


def _flag(data: dict[str, Any], name: str) -> bool:
    """``force``, ``dry_run``: JSON true or false, false when absent."""
    return inputs.optional(data, name, inputs.boolean, False)


def _route_id(req: func.HttpRequest, name: str) -> int:
    return inputs.ident(req.route_params.get(name), name, text=True)


def _accepted(req: func.HttpRequest, job: jobs.Job, **extra: Any) -> func.HttpResponse:
    """202: the job is queued; its status (and a preview's result) is at ``status_url``."""
    url = req.url.split("/api/")[0] + f"/api/jobs/{job.id}"
    return common.answer({"job_id": job.id, "kind": job.kind, "status": "queued", "batches": job.batches_total,
                          "status_url": url, **extra}, 202, headers={"Location": url})


@bp.route(route="sync", methods=["POST"])
def sync(req: func.HttpRequest) -> func.HttpResponse:
    def work(correlation: str) -> func.HttpResponse:
        data = common.body_json(req, ("blog_ids", "force"), required=False)
        selected = inputs.optional(data, "blog_ids", inputs.ids, None)
        force = _flag(data, "force")
        with common.engine() as engine:
            if selected is not None:
                blog_ids = require_blog_ids(engine.network, selected)
                kind = "sync_sites"
            else:
                blog_ids = [s.blog_id for s in engine.network.live_sites()]
                kind = "sync_all"
            job = jobs.start(engine, kind, blog_ids, common.send, force=force,
                             trigger=common.manual_trigger(req, correlation))
        return _accepted(req, job)

    return common.run(req, "sync", work)


@bp.route(route="sites/{blog_id}/sync", methods=["POST"])
def site_sync(req: func.HttpRequest) -> func.HttpResponse:
    def work(correlation: str) -> func.HttpResponse:
        data = common.body_json(req, ("force",), required=False)
        blog_id, force = _route_id(req, "blog_id"), _flag(data, "force")
        with common.engine() as engine:
            site = engine.network.require_live_site(blog_id)
            job = jobs.start(engine, "site_pull", [site.blog_id], common.send, force=force,
                             trigger=common.manual_trigger(req, correlation))
        return _accepted(req, job)

    return common.run(req, "site_sync", work)


@bp.route(route="plan", methods=["POST"])
def plan(req: func.HttpRequest) -> func.HttpResponse:
    def work(correlation: str) -> func.HttpResponse:
        data = common.body_json(req, ("action", "blog_ids", "user_id", "blog_id", "role", "actor_id", "force"),
                                required=False)
        action = inputs.optional(data, "action", inputs.choice, "sync", None, PLAN_ACTIONS)
        fields = {"sync": ("blog_ids", "force"), "add_user": ("user_id",), "add_site": ("blog_id", "force"),
                  "set_role": ("user_id", "role", "blog_id", "actor_id")}[action]
        inputs.obj(data, f"body (action {action})", ("action", *fields))
        force = _flag(data, "force")
        with common.engine() as engine:
            if action in ("sync", "add_site"):  # over many users: queued when over one batch
                if action == "sync":
                    selected = inputs.optional(data, "blog_ids", inputs.ids, None)
                    blog_ids = [s.blog_id for s in engine.network.live_sites()] if selected is None \
                        else require_blog_ids(engine.network, selected)
                else:
                    blog_ids = [engine.network.require_live_site(
                        inputs.ident(data.get("blog_id"), "blog_id")).blog_id]
                if engine.more_than_one_batch(blog_ids):
                    job = jobs.start_plan(engine, blog_ids, common.send, force=force,
                                          trigger=common.manual_trigger(req, correlation))
                    return _accepted(req, job)
            if action == "sync":
                outcome = engine.sync_sites(blog_ids, force=force, dry_run=True)
            elif action == "add_user":
                outcome = engine.add_user_to_all_sites(inputs.ident(data.get("user_id"), "user_id"), dry_run=True)
            elif action == "add_site":
                outcome = engine.add_all_users_to_site(inputs.ident(data.get("blog_id"), "blog_id"),
                                                       force=force, dry_run=True)
            else:
                outcome = engine.replicate_role(
                    inputs.ident(data.get("user_id"), "user_id"), inputs.role(data.get("role")),
                    inputs.ident(data.get("blog_id"), "blog_id"),
                    inputs.optional(data, "actor_id", inputs.actor_id, None), dry_run=True)
        return common.answer(outcome.to_dict())

    return common.run(req, "plan", work)


@bp.route(route="settings", methods=["GET", "PATCH", "PUT"])
def settings(req: func.HttpRequest) -> func.HttpResponse:
    def work(correlation: str) -> func.HttpResponse:
        changes = common.body_json(req) if req.method != "GET" else {}
        with common.engine() as engine:
            if req.method == "GET":
                return common.answer({"settings": engine.settings()})
            return common.answer({"settings": engine.change_settings(**changes)})

    return common.run(req, "settings", work)


@bp.route(route="options", methods=["GET", "PATCH"])
def network_options(req: func.HttpRequest) -> func.HttpResponse:
    """Per-site opt-out and role, role filters, the missing-role policy (wpmsync/options.py)."""
    def work(correlation: str) -> func.HttpResponse:
        changes = common.body_json(req) if req.method != "GET" else {}
        with common.engine() as engine:
            options = engine.network_options() if req.method == "GET" else engine.change_network_options(changes)
            return common.answer({"options": options, "problems": engine.option_problems()})

    return common.run(req, "options", work)


@bp.route(route="users/sync", methods=["POST"])
def users_sync(req: func.HttpRequest) -> func.HttpResponse:
    """Bulk sync by hand: selected users join selected sites (inline: a hand-picked list)."""
    def work(correlation: str) -> func.HttpResponse:
        data = common.body_json(req, ("user_ids", "blog_ids", "force", "dry_run"))
        user_ids, blog_ids = inputs.ids(data.get("user_ids"), "user_ids"), inputs.ids(data.get("blog_ids"), "blog_ids")
        force, dry_run = _flag(data, "force"), _flag(data, "dry_run")
        with common.engine(common.manual_trigger(req, correlation)) as engine:
            outcome = engine.add_users_to_sites(user_ids, blog_ids, force=force, dry_run=dry_run)
        return common.answer(outcome.to_dict())

    return common.run(req, "users_sync", work)


@bp.route(route="unsync", methods=["POST"])
def unsync(req: func.HttpRequest) -> func.HttpResponse:
    """Take selected users off selected sites, as remove_user_from_blog() does (remembered)."""
    def work(correlation: str) -> func.HttpResponse:
        data = common.body_json(req, ("user_ids", "blog_ids", "dry_run"))
        user_ids, blog_ids = inputs.ids(data.get("user_ids"), "user_ids"), inputs.ids(data.get("blog_ids"), "blog_ids")
        dry_run = _flag(data, "dry_run")
        with common.engine(common.manual_trigger(req, correlation)) as engine:
            outcome = engine.remove_users(user_ids, blog_ids, dry_run=dry_run)
            if not outcome.dry_run:
                common.notify_wordpress(outcome)
        return common.answer(outcome.to_dict())

    return common.run(req, "unsync", work)


@bp.route(route="jobs/{job_id}", methods=["GET"])
def job_status(req: func.HttpRequest) -> func.HttpResponse:
    def work(correlation: str) -> func.HttpResponse:
        job_id = inputs.job_id(req.route_params.get("job_id"))
        with common.engine() as engine:
            # WordPress's events still waiting: a job's result is only whole once they are applied.
            return common.answer({**jobs.status(engine.conn, engine.network, job_id), "outbox": engine.outbox()})

    return common.run(req, "job_status", work)


@bp.route(route="jobs/{job_id}/undo", methods=["POST"])
def undo(req: func.HttpRequest) -> func.HttpResponse:
    """Undo a change (a job, a hook, a manual action) by its id; ``{"dry_run": true}`` previews.
    Memberships changed since are kept and reported; running it again restores what is left.
    More rows than one batch: queued (202), one user-id range per message."""
    def work(correlation: str) -> func.HttpResponse:
        data = common.body_json(req, ("dry_run",), required=False)
        dry_run = _flag(data, "dry_run")
        job_id = inputs.job_id(req.route_params.get("job_id"))
        with common.engine(common.manual_trigger(req, correlation)) as engine:
            if dry_run and not engine.fits_one_request(job_id):  # a long read: the queue runs it
                job = jobs.start_undo_preview(engine, job_id, common.send,
                                              trigger=common.manual_trigger(req, correlation))
                return _accepted(req, job, undo_of=job_id, dry_run=True)
            if not dry_run and not engine.fits_one_request(job_id):
                change = engine.register_undo(job_id)
                try:
                    common.send([{"type": "undo", "job": job_id, "undo": change.job_id, "from_user": 0}])
                except Exception as exc:  # noqa: BLE001 - an open change with no rows is harmless
                    raise QueueUnreachable(f"undo {change.job_id} of {job_id}: {type(exc).__name__}: {exc}") from exc
                return common.answer({"job_id": change.job_id, "undo_of": job_id, "status": "queued"}, 202)
            outcome = engine.undo(job_id, dry_run=dry_run)
            if not dry_run:
                common.notify_wordpress(outcome)
        return common.answer(outcome.to_dict())

    return common.run(req, "undo", work)


@bp.route(route="journal", methods=["GET"])
def journal(req: func.HttpRequest) -> func.HttpResponse:
    """The newest changes (``?limit=``, default 20): id, trigger, rows, undone by."""
    def work(correlation: str) -> func.HttpResponse:
        limit = inputs.whole_number(req.params.get("limit", "20"), "limit", 1, 500, text=True)
        with common.engine() as engine:
            return common.answer({"changes": engine.journal(limit)})

    return common.run(req, "journal", work)


@bp.route(route="health", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def health(req: func.HttpRequest) -> func.HttpResponse:
    """Database reachable and settings valid; never a secret in the answer."""
    def work(correlation: str) -> func.HttpResponse:
        try:
            with common.engine() as engine:
                body = {"status": "ok", "network_id": engine.config.network_id,
                        "sites": len(engine.network.live_sites()), "settings": engine.settings(),
                        "outbox": engine.outbox(), "option_problems": engine.option_problems()}
        except Exception as exc:  # noqa: BLE001 - health answers 503 with the kind of fault, never its detail
            common.log.error("health: %s", exc if isinstance(exc, common.WpmsyncError) else type(exc).__name__,
                             exc_info=not isinstance(exc, common.WpmsyncError), extra={"correlation_id": correlation})
            message = exc.public_message() if isinstance(exc, common.WpmsyncError) else "internal error; see the logs"
            return common.answer({"status": "error", "error": message, "correlation_id": correlation}, 503)
        return common.answer(body)

    return common.run(req, "health", work)
