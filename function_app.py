"""Azure Functions entry point (Python v2 programming model).

Thin on purpose: parse, authorise, call ``wpmsync``, answer. This first cut has the health
check; hooks, manual actions, the queue and the timer build on the same engine.
"""
from __future__ import annotations

import json
import logging

import azure.functions as func

from wpmsync import Config, Engine, WpmsyncError

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)


@app.route(route="health", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def health(req: func.HttpRequest) -> func.HttpResponse:
    """Database reachable and settings valid; never a secret in the answer."""
    try:
        with Engine(Config.from_env()) as engine:
            body = {"status": "ok", "network_id": engine.config.network_id,
                    "sites": len(engine.network.live_sites()), "settings": engine.settings()}
        return func.HttpResponse(json.dumps(body), status_code=200, mimetype="application/json")
    except WpmsyncError as exc:
        logging.warning("health check failed: %s", exc)
        return func.HttpResponse(json.dumps({"status": "error", "error": str(exc)}),
                                 status_code=503, mimetype="application/json")
