"""``POST /api/hooks``: signed callbacks from the WordPress mu-plugin.

Body: ``{"event": "user_created", "event_id": "…", "data": {…}}``; headers
``X-Wpmsync-Timestamp`` and ``X-Wpmsync-Signature`` (see ``wpmsync.signing``). Anonymous at the
Functions level: the HMAC is the authentication.
"""
from __future__ import annotations

import logging

import azure.functions as func

from wpmsync import events, hooks, signing
from wpmsync.errors import WpmsyncError
from wpmsync.secrets import get_secrets

from . import common

bp = func.Blueprint()


@bp.route(route="hooks", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
def hook(req: func.HttpRequest) -> func.HttpResponse:
    def work(correlation: str) -> func.HttpResponse:
        raw = req.get_body() or b""
        if len(raw) > common.MAX_BODY:
            raise common.TooLarge(f"request body over {common.MAX_BODY // 1024} KiB")
        signing.verify(get_secrets().hook_secret(), req.headers.get(signing.TIMESTAMP_HEADER),
                       req.headers.get(signing.SIGNATURE_HEADER), raw)
        payload = common.body_json(req)
        event_id = events.parse_event_id(payload.get("event_id"))
        event = str(payload.get("event", ""))
        with common.engine(f"hook:{event[:32]} {event_id}") as engine:
            replay = events.claim(engine.conn, engine.network, event_id, event)
            if replay is not None:
                return common.answer(replay, 200)
            try:
                result = hooks.handle(engine, event, payload.get("data"), common.send, common.notify_wordpress)
            except WpmsyncError as exc:
                if exc.status >= 500:
                    events.release(engine.conn, engine.network, event_id)
                else:  # the same event would fail the same way: remember the answer
                    events.finish(engine.conn, engine.network, event_id,
                                  {"error": str(exc), "status": "refused"})
                raise
            except Exception:
                events.release(engine.conn, engine.network, event_id)
                raise
            events.finish(engine.conn, engine.network, event_id, result)
        logging.getLogger("wpmsync.hooks").info(
            "hook %s", event, extra={"correlation_id": correlation, "event_id": event_id,
                                     "status": result.get("status"), "added": result.get("added"),
                                     "roles_set": result.get("roles_set"), "job_id": result.get("job_id")})
        return common.answer(result, 202 if result.get("status") == "queued" else 200)

    return common.run(req, "hook", work)
