"""Delivery: how a WordPress event becomes rows, whether it came in a signed hook or from the
outbox table (``outbox.py``).

``deliver`` is the one way an event is applied: under a named lock of its user (or, for a new
site, its site) it first applies that user's earlier rows still in the outbox, in order, then the
event itself, once per event id (``hooks.handle_once``), and the event's row leaves the outbox.
So a removal that follows an add stays a removal however the deliveries race, and a second
delivery of an event writes nothing. ``drain`` applies the due rows of the outbox, oldest first:
the timer calls it, and each hook drains a few, so delivery needs neither WP-Cron nor HTTP.
"""
from __future__ import annotations

import contextlib
import logging
import time
from typing import TYPE_CHECKING, Any, Callable, Iterator

import pymysql

from . import hooks, inputs, outbox
from .db import named_locks
from .errors import Busy, InputError, WpmsyncError

if TYPE_CHECKING:
    from .engine import Engine

log = logging.getLogger("wpmsync.delivery")

HOOK_DRAIN = 10      # due rows a hook applies after its own event ...
HOOK_DRAIN_SECONDS = 0.5  # ... within this time: WordPress waits 3 s for the hook's answer
TIMER_DRAIN = 5_000  # due rows one timer pass applies at most


def deliver(engine: "Engine", event_id: str, event: str, data: Any, send: Callable[[list[dict]], Any],
            notify: Callable[[Any], Any], source: str = "hook", row: outbox.Row | None = None) -> dict[str, Any]:
    """Apply one event once, after the earlier outbox events of its user; its row (if any;
    ``row`` when the caller read it already) leaves the outbox. Raises what
    ``hooks.handle_once`` raises; a retryable failure of an earlier event raises ``Busy``
    (noted on that event's row) and leaves this one for later."""
    conn, network = engine.conn, engine.network
    row = row or outbox.find(conn, network, event_id)
    user_id = row.user_id if row else _number(data, "user_id")
    # Every delivery of an event takes the same lock (a hook and a drain of one event, or two
    # events of one user, take turns), which is what lets ``events.claim`` take over a claim
    # whose delivery died.
    scope = f"events:u{user_id}" if user_id else f"events:s{_number(data, 'blog_id')}"
    with named_locks(conn, network.config, [scope]):
        if user_id:
            _apply_earlier(engine, user_id, row.id if row else None, send, notify)
        try:
            with _applying(engine, f"{source}:{event[:32]} {event_id}", user_id):
                result = hooks.handle_once(engine, event_id, event, data, send, notify)
        except WpmsyncError as exc:
            if row is not None and exc.status in hooks.FINAL_STATUSES:
                outbox.delete(conn, network, row.id)
            raise
        if row is not None:
            outbox.delete(conn, network, row.id)
    return result


def drain(engine: "Engine", send: Callable[[list[dict]], Any], notify: Callable[[Any], Any],
          limit: int = TIMER_DRAIN, seconds: float | None = None) -> dict[str, Any]:
    """Apply the due rows, oldest first, each through ``deliver`` (so a row a hook is applying
    at the same moment is applied once), at most ``limit`` of them and, given ``seconds``, no
    new one after that time. A user (or site) whose event fails keeps its later events for the
    next pass, with the error and a backoff noted on the row."""
    counts = {"applied": 0, "refused": 0, "failed": 0}
    held: set[tuple[str, int]] = set()
    stop = None if seconds is None else time.monotonic() + seconds
    for row in outbox.due(engine.conn, engine.network, limit):
        if stop is not None and time.monotonic() > stop:
            break
        key = ("u", row.user_id) if row.user_id else ("s", row.blog_id)
        if key in held:
            continue
        try:
            deliver(engine, row.event_id, row.event, row.data, send, notify, source="outbox", row=row)
            counts["applied"] += 1
        except WpmsyncError as exc:
            if exc.status in hooks.FINAL_STATUSES:
                counts["refused"] += 1
                log.warning("outbox event refused: %s", exc, extra={
                    "event_id": row.event_id, "event": row.event, "data": row.data})
                continue
            counts["failed"] += 1
            held.add(key)
            outbox.note_failure(engine.conn, engine.network, row.id, str(exc))
        except (pymysql.MySQLError, OSError) as exc:  # the database or the queue is in trouble
            counts["failed"] += 1
            held.add(key)
            outbox.note_failure(engine.conn, engine.network, row.id, f"{type(exc).__name__}")
            log.exception("outbox event %s failed", row.event_id)
    return counts


def _apply_earlier(engine: "Engine", user_id: int, before: int | None, send: Callable[[list[dict]], Any],
                   notify: Callable[[Any], Any]) -> None:
    """The user's outbox rows older than ``before``, applied in order (the caller holds the
    user's event lock). A refused one is settled and does not hold the later ones back."""
    for row in outbox.earlier(engine.conn, engine.network, user_id, before):
        try:
            with _applying(engine, f"outbox:{row.event} {row.event_id}", user_id):
                hooks.handle_once(engine, row.event_id, row.event, row.data, send, notify)
        except WpmsyncError as exc:
            if exc.status in hooks.FINAL_STATUSES:
                outbox.delete(engine.conn, engine.network, row.id)
                continue
            outbox.note_failure(engine.conn, engine.network, row.id, str(exc))
            raise Busy(f"an earlier event of user {user_id} ({row.event} {row.event_id}) "
                       f"could not be applied yet: {exc}") from None
        outbox.delete(engine.conn, engine.network, row.id)


def _number(data: Any, name: str) -> int:
    """A positive id from event data for the lock scope, else 0 (validation happens later)."""
    try:
        return inputs.ident(data.get(name) if isinstance(data, dict) else None, name)
    except InputError:
        return 0


@contextlib.contextmanager
def _applying(engine: "Engine", trigger: str, user_id: int) -> Iterator[None]:
    """While an event is applied: what the journal records for its writes, and its user, whose
    own rows in the outbox must not keep this very event from writing (``users_waiting``)."""
    saved = engine.trigger, engine.applying
    engine.trigger, engine.applying = trigger[:200], frozenset({user_id} if user_id else ())
    try:
        yield
    finally:
        engine.trigger, engine.applying = saved
