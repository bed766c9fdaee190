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
        from azure.functions.decorators.function_app import FunctionBuilder
        from blueprints import actions, batches, common, hooks, reconcile

        self.common = common
        self.hook_secret = hook_secret
        # Every function the blueprints declare, by name (app.get_functions() may run only once
        # per process: it is the host's indexing), so a new function needs no entry here.
        self.functions = {name: obj for module in (actions, batches, hooks, reconcile)
                          for name, obj in vars(module).items() if isinstance(obj, FunctionBuilder)}

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


# ---------------------------------------------------------------------------------------------
# serve: the app's HTTP routes and its queue on a local port, as the Functions host runs them
# ---------------------------------------------------------------------------------------------

FUNCTION_KEY_HEADER = "x-functions-key"
MAX_REQUEST_BODY = 1024 * 1024  # the app answers 413 over 64 KiB itself; refuse only absurd bodies


def _routes(local: LocalFunctions) -> list[tuple[Any, set[str], bool, Any]]:
    """(compiled route pattern, methods, needs the function key, user function) for every HTTP
    function, read off the functions' own trigger declarations (route, methods, auth level)."""
    import re

    table = []
    for fn in local.functions.values():
        built = fn.build()
        trigger = built.get_trigger()
        route = getattr(trigger, "route", None)
        if route is None:
            continue  # queue / timer triggers
        methods = {str(getattr(m, "value", m)).upper() for m in (trigger.methods or ["GET", "POST"])}
        level = getattr(trigger, "auth_level", None)
        anonymous = level is not None and str(getattr(level, "value", level)).lower() == "anonymous"
        pattern = "^" + re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(route)) + "$"
        table.append((re.compile(pattern), methods, not anonymous, built.get_user_function()))
    return table


class FunctionsServer:
    """A local stand-in for the Functions host: HTTP routes on 127.0.0.1 and a queue pump.

    Use :func:`serve_functions` (a context manager)."""

    def __init__(self, hook_secret: str, function_key: str, *, port: int | None = None,
                 drain_interval: float = 0.3, message_delay: float = 0.0,
                 env: dict[str, str] | None = None) -> None:
        self.hook_secret = hook_secret
        self.function_key = function_key
        self.port = port or 0
        self.drain_interval = drain_interval
        #: seconds to wait before each queue message (lets a person, or a test, watch progress)
        self.message_delay = message_delay
        self.env = dict(env or {})
        self.requests: list[tuple[str, str, int]] = []  # (method, path, status) of every request
        self.errors: list[str] = []  # faults of the queue pump (tracebacks)
        #: answers the caller did not wait for (WordPress's 3 s timeout): (method, path, status)
        self.disconnects: list[tuple[str, str, int]] = []
        self._httpd: Any = None
        self._threads: list[Any] = []
        self._stop = None
        self._saved_env: dict[str, str | None] = {}
        self.local: LocalFunctions | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    def start(self) -> str:
        import os
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        env = {"WPMSYNC_HOOK_SECRET": self.hook_secret, **self.env}
        for k, v in env.items():
            self._saved_env[k] = os.environ.get(k)
            os.environ[k] = v
        from wpmsync.secrets import reset_secrets

        reset_secrets()
        self.local = local = LocalFunctions(self.hook_secret)
        local.common.reset()
        local.common.queue().ensure()
        local.common.queue().poison().ensure()
        routes = _routes(local)
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
                pass

            def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
                self.send_response(status)
                for k, v in headers.items():
                    if k.lower() not in ("content-length", "connection", "transfer-encoding"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def _error(self, status: int, message: str) -> None:
                self._send(status, json.dumps({"error": message}).encode(), {"Content-Type": "application/json"})

            def _handle(self) -> None:
                from urllib.parse import parse_qs, urlsplit

                parts = urlsplit(self.path)
                path = parts.path
                length = int(self.headers.get("Content-Length") or 0)
                if length > MAX_REQUEST_BODY:
                    self._error(413, "request body too large")
                    self.close_connection = True
                    return
                body = self.rfile.read(length) if length else b""
                status = 404
                try:
                    if not path.startswith("/api/"):
                        self._error(404, "not found")
                        return
                    route = path[len("/api/"):]
                    found = None
                    for pattern, methods, keyed, fn in routes:
                        m = pattern.match(route)
                        if m:
                            found = (m, methods, keyed, fn)
                            break
                    if found is None:
                        self._error(404, "not found")
                        return
                    m, methods, keyed, fn = found
                    if self.command not in methods:
                        status = 405
                        self._error(405, "method not allowed")
                        return
                    params = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
                    if keyed:
                        key = self.headers.get(FUNCTION_KEY_HEADER) or params.get("code")
                        if key != server.function_key:
                            status = 401
                            self._send(401, b"", {})  # the host answers 401 with an empty body
                            return
                    req = func.HttpRequest(
                        self.command, f"{server.base_url}/{route}" + (f"?{parts.query}" if parts.query else ""),
                        headers={k: v for k, v in self.headers.items()}, params=params,
                        route_params=m.groupdict(), body=body)
                    resp = fn(req)
                    status = resp.status_code
                    headers = dict(resp.headers)
                    if resp.mimetype and "content-type" not in {k.lower() for k in headers}:
                        headers["Content-Type"] = resp.mimetype + (f"; charset={resp.charset}" if resp.charset else "")
                    try:
                        self._send(status, resp.get_body() or b"", headers)
                    except (BrokenPipeError, ConnectionResetError):  # the caller gave up waiting
                        server.disconnects.append((self.command, path, status))
                except Exception:  # noqa: BLE001 - the host answers 500 when user code raises
                    import traceback

                    status = 500
                    server.errors.append(traceback.format_exc())
                    self._error(500, "unhandled exception in the function")
                finally:
                    server.requests.append((self.command, path, status))

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _handle

        self._httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self._stop = threading.Event()
        t1 = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.2},
                              name="wpmsync-functions-http", daemon=True)
        t2 = threading.Thread(target=self._pump, name="wpmsync-functions-queue", daemon=True)
        self._threads = [t1, t2]
        t1.start()
        t2.start()
        return self.base_url

    def _pump(self) -> None:
        """Deliver queued messages to the queue function (``LocalFunctions.drain``), like the host.
        A message whose function raises is retried; after 5 tries it goes to the poison queue,
        whose function marks the job failed (host.json's ``maxDequeueCount``)."""
        import traceback

        assert self.local is not None and self._stop is not None
        local = self.local
        run, poisoned = local.user_function("run_batch"), local.user_function("poisoned_batch")
        tries: dict[str, int] = {}
        while not self._stop.is_set():
            try:
                queue = local.common.queue()
                got = queue.receive(max_messages=1 if self.message_delay else 32, visibility_timeout=30)
                for text, raw in got:
                    if self._stop.is_set():
                        break
                    if self.message_delay:
                        self._stop.wait(self.message_delay)
                    count = tries[raw.id] = tries.get(raw.id, 0) + 1
                    try:
                        run(QueueMessage(id=raw.id, body=text.encode(), dequeue_count=count))
                    except Exception:  # noqa: BLE001
                        self.errors.append(traceback.format_exc())
                        if count < 5:
                            continue  # visible again after the visibility timeout
                        poisoned(QueueMessage(id=raw.id, body=text.encode(), dequeue_count=count))
                    queue.delete(raw)
                if got:
                    continue
            except Exception:  # noqa: BLE001 - keep pumping; the test sees self.errors
                self.errors.append(traceback.format_exc())
            self._stop.wait(self.drain_interval)

    def stop(self) -> None:
        import os

        if self._stop is not None:
            self._stop.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        for t in self._threads:
            t.join(timeout=30)
        self._threads = []
        if self.local is not None:
            self.local.common.reset()
        for k, v in self._saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        self._saved_env = {}
        from wpmsync.secrets import reset_secrets

        reset_secrets()


def serve_functions(port: int | None = None, hook_secret: str = "", function_key: str = "", *,
                    drain_interval: float = 0.3, message_delay: float = 0.0,
                    env: dict[str, str] | None = None, server: list | None = None):
    """Serve the app's HTTP functions on ``127.0.0.1:port`` (a free port by default) and pump its
    queue; a context manager yielding the base URL ``http://127.0.0.1:PORT/api``.

    The app reads its settings from the environment (``WPMSYNC_DB_NAME``,
    ``WPMSYNC_TABLE_PREFIX``, ``AzureWebJobsStorage``...); ``env`` is set for the duration
    (restored after), and ``WPMSYNC_HOOK_SECRET`` is ``hook_secret``. Routes other than
    ``hooks`` and ``health`` need ``function_key`` (header ``x-functions-key`` or ``?code=``),
    401 otherwise, as on the host. ``message_delay`` seconds pass before each queue message
    (one message at a time then), so a progress bar can be watched. Pass a list as ``server``
    to receive the :class:`FunctionsServer` (its ``requests`` and ``errors``)."""
    import contextlib

    if len(hook_secret) < 16:
        raise ValueError("hook_secret: 16 characters or more")
    if not function_key:
        raise ValueError("function_key is required")

    @contextlib.contextmanager
    def _cm():
        srv = FunctionsServer(hook_secret, function_key, port=port, drain_interval=drain_interval,
                              message_delay=message_delay, env=env)
        if server is not None:
            server.append(srv)
        try:
            yield srv.start()
        finally:
            srv.stop()

    return _cm()
