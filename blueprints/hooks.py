"""``POST /api/hooks``: signed callbacks from the WordPress mu-plugin.

Body: ``{"event": "user_created", "event_id": "…", "data": {…}}``; headers
``X-Wpmsync-Timestamp`` and ``X-Wpmsync-Signature`` (see ``wpmsync.signing``). Anonymous at the
Functions level: the HMAC is the authentication.
"""
from __future__ import annotations

import logging

import azure.functions as func

from wpmsync import delivery, hooks, inputs, signing
from wpmsync.secrets import get_secrets

from . import common

bp = func.Blueprint()


@bp.route(route="hooks", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
def hook(req: func.HttpRequest) -> func.HttpResponse:
    def work(correlation: str) -> func.HttpResponse:
        raw = req.get_body() or b""
        if len(raw) > common.MAX_BODY:
            raise common.TooLarge(f"request body over {common.MAX_BODY // 1024} KiB")
        signing.verify(get_secrets().hook_secrets(), req.headers.get(signing.TIMESTAMP_HEADER),
                       req.headers.get(signing.SIGNATURE_HEADER), raw)
        payload = common.body_json(req)
        event_id = inputs.event_id(payload.get("event_id"))
        event, _ = hooks.parse_data(payload.get("event"), payload.get("data"))
        with common.engine(f"hook:{event[:32]} {event_id}") as engine:
            result = delivery.deliver(engine, event_id, event, payload.get("data"), common.send,
                                    common.notify_wordpress)
            drain_after(engine)
        logging.getLogger("wpmsync.hooks").info(
            "hook %s", event, extra={"correlation_id": correlation, "event_id": event_id,
                                     "status": result.get("status"), "added": result.get("added"),
                                     "roles_set": result.get("roles_set"), "job_id": result.get("job_id")})
        return common.answer(result, 202 if result.get("status") == "queued" else 200)

    return common.run(req, "hook", work)


def drain_after(engine: object) -> None:
    """A few due outbox events ride along with each hook; a fault here is the next pass's, not
    this hook's answer."""
    try:
        delivery.drain(engine, common.send, common.notify_wordpress,  # type: ignore[arg-type]
                       limit=delivery.HOOK_DRAIN, seconds=delivery.HOOK_DRAIN_SECONDS)
    except Exception:  # noqa: BLE001 - logged; the timer drains again
        logging.getLogger("wpmsync.hooks").exception("draining the outbox after a hook failed")
