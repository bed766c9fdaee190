"""Run the Functions app's user code locally, as the Functions host would call it.

Azure Functions Core Tools cannot be installed here, so the demo (and the tests' style of
calling) invoke each function's user code with real ``azure.functions`` request objects:
``HttpRequest`` for HTTP routes, the worker's ``QueueMessage`` for the queue, ``TimerRequest``
for the timer, and drain the real queue (Azurite) the app writes to.
"""
from __future__ import annotations

import json
import time
import uuid
from typing import Any

import azure.functions as func
from azure.functions.queue import QueueMessage
from azure.functions.timer import TimerRequest

BASE_URL = "http://localhost:7071/api/"


class LocalFunctions:
    """The app's functions, callable in-process. Settings come from the environment."""

    def __init__(self, hook_secret: str) -> None:
        import function_app  # noqa: F401  registers the blueprints, as the host does
        from blueprints import actions, batches, common, hooks, reconcile

        self.common = common
        self.hook_secret = hook_secret
        self.functions = {
            "hook": hooks.hook, "sync": actions.sync, "site_sync": actions.site_sync,
            "plan": actions.plan, "settings": actions.settings, "job_status": actions.job_status,
            "health": actions.health, "run_batch": batches.run_batch,
            "poisoned_batch": batches.poisoned_batch, "reconcile_drift": reconcile.reconcile_drift,
        }

    def user_function(self, name: str) -> Any:
        return self.functions[name].build().get_user_function()

    def http(self, name: str, method: str, route: str, body: Any = None, *,
             params: dict[str, str] | None = None, headers: dict[str, str] | None = None) -> tuple[int, Any]:
        raw = body if isinstance(body, bytes) else (json.dumps(body).encode() if body is not None else b"")
        req = func.HttpRequest(method, BASE_URL + route, body=raw, route_params=params or {},
                               headers=headers or {})
        resp = self.user_function(name)(req)
        return resp.status_code, json.loads(resp.get_body() or b"null")

    def hook(self, event: str, data: dict[str, Any], event_id: str | None = None) -> tuple[int, Any]:
        """A callback signed exactly as the mu-plugin signs it."""
        from wpmsync import signing

        body = json.dumps({"event": event, "event_id": event_id or uuid.uuid4().hex, "data": data}).encode()
        ts = str(int(time.time()))
        headers = {signing.TIMESTAMP_HEADER: ts, signing.SIGNATURE_HEADER: signing.sign(self.hook_secret, ts, body)}
        return self.http("hook", "POST", "hooks", body, headers=headers)

    def job(self, job_id: str) -> dict[str, Any]:
        return self.http("job_status", "GET", f"jobs/{job_id}", params={"job_id": job_id})[1]

    def timer(self) -> None:
        self.user_function("reconcile_drift")(TimerRequest(past_due=False))

    def drain(self, limit: int = 1_000_000) -> int:
        """Deliver queued messages to the queue function until the queue is empty."""
        queue, run, delivered = self.common.queue(), self.user_function("run_batch"), 0
        while delivered < limit:
            got = queue.receive(max_messages=32, visibility_timeout=60)
            if not got:
                break
            for text, raw in got:
                run(QueueMessage(id=raw.id, body=text.encode(), dequeue_count=1))
                queue.delete(raw)
                delivered += 1
        return delivered
