"""Hook events seen before: a replayed (or retried) event id gets the first answer back.

The event id is claimed with an ``INSERT IGNORE`` on its primary key before any work, under the
event's named lock (``outbox.deliver``), so two deliveries of one event racing each other do the
work once. A claim without an answer found under that lock is a delivery that died midway: the
work is done again (every handler is idempotent).
"""
from __future__ import annotations

import json
from typing import Any

from .errors import Replayed, WpmsyncError
from .jobs import ensure_tables
from .schema import Network


def claim(conn: Any, network: Network, event_id: str, event: str) -> dict[str, Any] | None:
    """None when this delivery owns the event; else the stored answer of the first delivery
    (a refusal is raised again as ``Replayed``, with the first answer's status and error)."""
    ensure_tables(conn, network)
    table = network.tables.own_table("events")
    with conn.cursor() as cur:
        if cur.execute(f"INSERT IGNORE INTO {table} (event_id, event, received_at) VALUES (%s, %s, NOW(6))",
                       (event_id, event[:32])):
            return None
        cur.execute(f"SELECT answer FROM {table} WHERE event_id = %s", (event_id,))
        row = cur.fetchone()
    if not row or not row[0]:
        return None  # claimed by a delivery that died before answering: ours now
    answer = json.loads(row[0])
    if answer.get("status") == "refused":
        raise Replayed(str(answer.get("error")), int(answer.get("http_status", 400)), answer.get("field"))
    return {**answer, "replayed": True}


def refuse(conn: Any, network: Network, event_id: str, exc: WpmsyncError) -> None:
    """A refusal that would come back the same however often the event is tried: kept as the
    event's answer, so a replay answers it again (same status, same error)."""
    finish(conn, network, event_id, {"status": "refused", "error": exc.public_message(),
                                     "field": getattr(exc, "field", None), "http_status": exc.status})


def finish(conn: Any, network: Network, event_id: str, answer: dict[str, Any]) -> None:
    with conn.cursor() as cur:
        cur.execute(f"UPDATE {network.tables.own_table('events')} SET answer = %s WHERE event_id = %s",
                    (json.dumps(answer), event_id))


def release(conn: Any, network: Network, event_id: str) -> None:
    """A real fault: forget the claim so WordPress's retry can do the work."""
    with conn.cursor() as cur:
        cur.execute(f"DELETE FROM {network.tables.own_table('events')} WHERE event_id = %s", (event_id,))


def prune(conn: Any, network: Network, days: int = 7) -> int:
    """Event ids older than the replay window are of no use (signatures expire in 5 minutes)."""
    ensure_tables(conn, network)
    with conn.cursor() as cur:
        return cur.execute(f"DELETE FROM {network.tables.own_table('events')} "
                           "WHERE received_at < NOW(6) - INTERVAL %s DAY", (days,))
