"""Manual actions for the portal, the WordPress network admin screen and curl (function key).

| method, route                      | does                                               |
| ---------------------------------- | -------------------------------------------------- |
| POST /api/sync                     | sync from scratch (no ``blog_ids``) or the given sites: 202 + job |
| POST /api/sites/{blog_id}/sync     | one site pulls in every network user: 202 + job    |
| POST /api/plan                     | dry run of sync / add_user / add_site / set_role   |
| GET, PATCH /api/settings           | the three trigger switches                         |
| GET, PATCH /api/options            | per-site opt-out and role, role filters, missing roles |
| POST /api/users/sync               | selected users join selected sites                  |
| POST /api/unsync                   | take selected users off selected sites              |
| GET /api/jobs/{job_id}             | job status                                         |
| POST /api/jobs/{job_id}/undo       | put back what a change wrote (``dry_run`` previews) |
| GET /api/journal                   | the newest changes in the undo journal             |
| GET /api/health                    | database reachable, settings valid (anonymous)     |
"""
from __future__ import annotations

from typing import Any

import azure.functions as func

from wpmsync import jobs
from wpmsync.engine import parse_blog_ids
from wpmsync.errors import InputError
from wpmsync.journal import parse_job_id
from wpmsync.memberships import require_blog_ids
from wpmsync.settings import parse_switch

from . import common

bp = func.Blueprint()


def _force(data: dict[str, Any]) -> bool:
    return parse_switch("force", data.get("force", False))


def _accepted(req: func.HttpRequest, job: jobs.Job) -> func.HttpResponse:
    url = req.url.split("/api/")[0] + f"/api/jobs/{job.id}"
    return common.answer({"job_id": job.id, "status": "queued", "batches": job.batches_total,
                          "status_url": url}, 202, headers={"Location": url})


@bp.route(route="sync", methods=["POST"])
def sync(req: func.HttpRequest) -> func.HttpResponse:
    def work(correlation: str) -> func.HttpResponse:
        data = common.body_json(req, required=False)
        with common.engine() as engine:
            if "blog_ids" in data:
                blog_ids = require_blog_ids(engine.network, parse_blog_ids(data["blog_ids"]))
                kind = "sync_sites"
            else:
                blog_ids = [s.blog_id for s in engine.network.live_sites()]
                kind = "sync_all"
            job = jobs.start(engine, kind, blog_ids, common.send, force=_force(data),
                             trigger=common.manual_trigger(req, correlation))
        return _accepted(req, job)

    return common.run(req, "sync", work)


@bp.route(route="sites/{blog_id}/sync", methods=["POST"])
def site_sync(req: func.HttpRequest) -> func.HttpResponse:
    def work(correlation: str) -> func.HttpResponse:
        data = common.body_json(req, required=False)
        with common.engine() as engine:
            site = engine.network.require_live_site(req.route_params.get("blog_id"))
            job = jobs.start(engine, "site_pull", [site.blog_id], common.send, force=_force(data),
                             trigger=common.manual_trigger(req, correlation))
        return _accepted(req, job)

    return common.run(req, "site_sync", work)


@bp.route(route="plan", methods=["POST"])
def plan(req: func.HttpRequest) -> func.HttpResponse:
    def work(correlation: str) -> func.HttpResponse:
        data = common.body_json(req, required=False)
        action = data.get("action", "sync")
        with common.engine() as engine:
            if action == "sync":
                ids = parse_blog_ids(data["blog_ids"]) if "blog_ids" in data else None
                outcome = engine.sync_sites(ids, force=_force(data), dry_run=True)
            elif action == "add_user":
                outcome = engine.add_user_to_all_sites(data.get("user_id"), dry_run=True)
            elif action == "add_site":
                outcome = engine.add_all_users_to_site(data.get("blog_id"), force=_force(data), dry_run=True)
            elif action == "set_role":
                outcome = engine.replicate_role(data.get("user_id"), data.get("role"), data.get("blog_id"),
                                                data.get("actor_id"), dry_run=True)
            else:
                raise InputError("action must be one of sync, add_user, add_site, set_role")
        return common.answer(outcome.to_dict())

    return common.run(req, "plan", work)


@bp.route(route="settings", methods=["GET", "PATCH", "PUT"])
def settings(req: func.HttpRequest) -> func.HttpResponse:
    def work(correlation: str) -> func.HttpResponse:
        with common.engine() as engine:
            if req.method == "GET":
                return common.answer({"settings": engine.settings()})
            return common.answer({"settings": engine.change_settings(**common.body_json(req))})

    return common.run(req, "settings", work)


@bp.route(route="options", methods=["GET", "PATCH"])
def network_options(req: func.HttpRequest) -> func.HttpResponse:
    """Per-site opt-out and role, role filters, the missing-role policy (wpmsync/options.py)."""
    def work(correlation: str) -> func.HttpResponse:
        with common.engine() as engine:
            if req.method == "GET":
                return common.answer({"options": engine.network_options()})
            return common.answer({"options": engine.change_network_options(common.body_json(req))})

    return common.run(req, "options", work)


@bp.route(route="users/sync", methods=["POST"])
def users_sync(req: func.HttpRequest) -> func.HttpResponse:
    """Bulk sync by hand: selected users join selected sites (inline: a hand-picked list)."""
    def work(correlation: str) -> func.HttpResponse:
        data = common.body_json(req)
        with common.engine(common.manual_trigger(req, correlation)) as engine:
            outcome = engine.add_users_to_sites(data.get("user_ids") or [], parse_blog_ids(data.get("blog_ids") or []),
                                                force=_force(data),
                                                dry_run=parse_switch("dry_run", data.get("dry_run", False)))
        return common.answer(outcome.to_dict())

    return common.run(req, "users_sync", work)


@bp.route(route="unsync", methods=["POST"])
def unsync(req: func.HttpRequest) -> func.HttpResponse:
    """Take selected users off selected sites, as remove_user_from_blog() does (remembered)."""
    def work(correlation: str) -> func.HttpResponse:
        data = common.body_json(req)
        with common.engine(common.manual_trigger(req, correlation)) as engine:
            outcome = engine.remove_users(data.get("user_ids") or [], data.get("blog_ids") or [],
                                          dry_run=parse_switch("dry_run", data.get("dry_run", False)))
            if not outcome.dry_run:
                common.notify_wordpress(outcome)
        return common.answer(outcome.to_dict())

    return common.run(req, "unsync", work)


@bp.route(route="jobs/{job_id}", methods=["GET"])
def job_status(req: func.HttpRequest) -> func.HttpResponse:
    def work(correlation: str) -> func.HttpResponse:
        job_id = req.route_params.get("job_id", "")
        if not job_id.isalnum() or len(job_id) != 32:
            raise InputError("job_id must be the 32-character id a sync answered with")
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
        data = common.body_json(req, required=False)
        dry_run = parse_switch("dry_run", data.get("dry_run", False))
        job_id = parse_job_id(req.route_params.get("job_id", ""))
        with common.engine(common.manual_trigger(req, correlation)) as engine:
            if not dry_run and not engine.fits_one_request(job_id):
                change = engine.register_undo(job_id)
                common.send([{"type": "undo", "job": job_id, "undo": change.job_id, "from_user": 0}])
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
        raw = req.params.get("limit", "20")
        if not raw.isdigit():
            raise InputError("limit must be a whole number between 1 and 500")
        with common.engine() as engine:
            return common.answer({"changes": engine.journal(int(raw))})

    return common.run(req, "journal", work)


@bp.route(route="health", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def health(req: func.HttpRequest) -> func.HttpResponse:
    """Database reachable and settings valid; never a secret in the answer."""
    def work(correlation: str) -> func.HttpResponse:
        try:
            with common.engine() as engine:
                body = {"status": "ok", "network_id": engine.config.network_id,
                        "sites": len(engine.network.live_sites()), "settings": engine.settings(),
                        "outbox": engine.outbox()}
        except Exception as exc:  # health answers 503 with the reason instead of raising
            message = str(exc) if isinstance(exc, common.WpmsyncError) else type(exc).__name__
            return common.answer({"status": "error", "error": message, "correlation_id": correlation}, 503)
        return common.answer(body)

    return common.run(req, "health", work)
