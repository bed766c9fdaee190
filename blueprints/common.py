"""What every function shares: the engine and queue it talks to, JSON answers, error mapping.

Settings and secrets are read once per worker process (secrets are cached by ``wpmsync.secrets``);
a database connection is opened per invocation and closed after it.
"""
from __future__ import annotations

import json
import logging
import uuid
from typing import Any, Callable, Iterable

import azure.functions as func
import pymysql

from wpmsync import Config, Engine, WpmsyncError, cache, db, inputs
from wpmsync.memberships import Outcome
from wpmsync.errors import InputError, Unreachable
from wpmsync.queue import DEFAULT_QUEUE_NAME, BatchQueue
from wpmsync.secrets import get_secrets

MAX_BODY = 64 * 1024
QUEUE_NAME = DEFAULT_QUEUE_NAME  # the poison queue is QUEUE_NAME + "-poison" (the host's convention)
log = logging.getLogger("wpmsync.functions")
_queue: BatchQueue | None = None


def engine(trigger: str = "manual") -> Engine:
    """A fresh engine (one connection) for this invocation; the password comes from Key Vault.
    ``trigger`` is what the undo journal records as the cause of the changes."""
    return Engine(Config.from_env(db_password=get_secrets().db_password()), trigger=trigger)


ACTOR_HEADER = "x-wpmsync-actor"


def manual_trigger(req: func.HttpRequest, correlation: str) -> str:
    """What the journal records as the cause of a manual action: ``manual:<correlation id>``, and
    who clicked when the caller says so (the mu-plugin sends the WordPress admin's login in
    ``X-Wpmsync-Actor``). A label for people reading the journal, not authentication: the
    function key is that."""
    actor = inputs.header_label(req.headers.get(ACTOR_HEADER))
    return f"manual:{correlation}" + (f" by {actor}" if actor else "")


def writer(trigger: str = "queue") -> Engine:
    """An engine for a queue batch, holding one of the writer slots (``Engine.writer``);
    ``throttle.NoSlot`` when every slot is taken."""
    return Engine.writer(Config.from_env(db_password=get_secrets().db_password()), trigger=trigger)


def queue() -> BatchQueue:
    global _queue
    if _queue is None:
        _queue = BatchQueue.from_env(name=QUEUE_NAME)
    return _queue


def reset() -> None:
    """Forget the cached queue client (tests point the app at another Azurite)."""
    global _queue
    _queue = None


def send(messages: list[dict], delay: int = 0) -> int:
    """Queue ``messages``; with ``delay``, seen by the queue function only after that many seconds."""
    return queue().send(messages, delay)


def notify_wordpress(outcome: Outcome) -> None:
    """After writing memberships (and roles options, when role replication copied a role to a
    site): WordPress cleans its object cache for them (when configured)."""
    touched_roles = getattr(outcome, "touched_roles", None) or set()
    if outcome.touched_users or outcome.touched_sites or touched_roles:
        cache.clean(outcome.touched_users, outcome.touched_sites, get_secrets().hook_secrets(),
                    roles_blog_ids=touched_roles)


def answer(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> func.HttpResponse:
    return func.HttpResponse(json.dumps(body, sort_keys=True, default=str), status_code=status,
                             mimetype="application/json", headers=headers)


def body_json(req: func.HttpRequest, allowed: Iterable[str] | None = None, required: bool = True) -> dict[str, Any]:
    """The request's JSON object, or a clear 400/413; with ``allowed``, another key is refused."""
    raw = req.get_body() or b""
    if len(raw) > MAX_BODY:
        raise TooLarge(f"request body over {MAX_BODY // 1024} KiB")
    if not raw.strip():
        if required:
            raise InputError("request body must be a JSON object", "body")
        return {}
    try:
        data = json.loads(raw, parse_constant=_no_constant)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise InputError("request body is not valid JSON", "body") from None
    return inputs.obj(data, "body", allowed)


def _no_constant(name: str) -> Any:
    """``NaN`` and ``Infinity`` are not JSON (Python's parser takes them by default)."""
    raise ValueError(f"{name} is not JSON")


def error_body(exc: WpmsyncError, correlation: str) -> dict[str, Any]:
    """A refusal's JSON: what was wrong (and which field), never a fault's inner detail."""
    body: dict[str, Any] = {"error": exc.public_message(), "correlation_id": correlation}
    field = getattr(exc, "field", None)
    if field:
        body["field"] = field
    if getattr(exc, "replayed", False):
        body["replayed"] = True
    return body


class TooLarge(WpmsyncError):
    status = 413


def run(req: func.HttpRequest, name: str, work: Callable[[str], func.HttpResponse]) -> func.HttpResponse:
    """Run ``work`` and turn every failure into a JSON answer with the right status.
    Expected failures (bad input, unknown ids, conflicts, bad signatures) say what was wrong;
    anything else is a real fault: 500 with a correlation id, logged with its traceback."""
    correlation = inputs.header_token(req.headers.get("x-correlation-id")) or uuid.uuid4().hex
    try:
        return work(correlation)
    except WpmsyncError as exc:
        level = logging.ERROR if exc.status >= 500 else logging.WARNING
        log.log(level, "%s refused: %s", name, exc, extra={"correlation_id": correlation, "status": exc.status,
                                                          "error": str(exc)})
        return answer(error_body(exc, correlation), exc.status)
    except pymysql.MySQLError as exc:
        if db.connection_error(exc):  # the connection was lost under the request: a moment's fault
            log.error("%s: database connection lost", name, exc_info=True, extra={"correlation_id": correlation})
            return answer({"error": Unreachable("").public_message(), "correlation_id": correlation}, 503)
        log.exception("%s: database fault", name, extra={"correlation_id": correlation})
        return answer({"error": "database error; see the logs", "correlation_id": correlation}, 500)
    except Exception:  # noqa: BLE001 - the caller gets an answer, the log gets the traceback
        log.exception("%s: unexpected fault", name, extra={"correlation_id": correlation})
        return answer({"error": "internal error; see the logs", "correlation_id": correlation}, 500)
