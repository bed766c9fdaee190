"""Hook events seen before: a replayed (or retried) event id gets the first answer back.

The event id is claimed with an ``INSERT IGNORE`` on its primary key before any work, under the
event's named lock (``outbox.deliver``), so two deliveries of one event racing each other do the
work once. A claim without an answer found under that lock is a delivery that died midway: the
work is done again (every handler is idempotent).
"""
from __future__ import annotations

import json
import re
from typing import Any

from .errors import InputError
from .jobs import ensure_tables
from .schema import Network

EVENT_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{8,64}$")


def parse_event_id(value: Any) -> str:
    if not isinstance(value, str) or not EVENT_ID_RE.match(value):
        raise InputError("event_id must be 8 to 64 characters of letters, digits and . _ : -")
    return value


def claim(conn: Any, network: Network, event_id: str, event: str) -> dict[str, Any] | None:
    """None when this delivery owns the event; else the stored answer of the first delivery."""
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
    return {**json.loads(row[0]), "replayed": True}


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
