"""How gently our writers use the live WordPress database: a global cap on concurrent batch
writers, and transactions sized in time, not only in rows.

**The cap.** Azure Database for MySQL B1ms allows 171 connections in all, shared with WordPress;
Flex Consumption runs many instances, each several queue messages at once. So a queue batch
writes only while it holds one of ``WPMSYNC_MAX_PARALLEL_BATCHES`` (4) *writer slots*: named
locks ``writer:0 .. writer:N-1`` of this network (``GET_LOCK`` with no wait), taken on the
batch's own connection, freed by the server when that connection ends (a crashed worker never
keeps one). The lock lives in the database every instance talks to, so the cap holds across
instances. A batch that finds no slot free raises ``NoSlot`` before anything else: its queue
function puts the message back with a delay (a new message, so the try is not counted and it
never reaches the poison queue), and its connection is closed at once.

**The pace.** A batch of the queue covers a user-id range sized by ``WPMSYNC_BATCH_SIZE``
memberships; WordPress's own writes for those users wait behind its transaction. So the range
is written in *steps*, one transaction each, as many users per step as commit within
``WPMSYNC_BATCH_SECONDS`` (1 s) at the rate this process has measured on this server
(memberships examined per second, a moving average of the steps so far; a first guess before
the first step). A slow server, or one busy with WordPress, gets smaller steps; a fast one
larger, up to the batch's whole range.
"""
from __future__ import annotations

import random
import threading
from typing import Any

from .config import Config
from .db import lock_name

SLOT_DELAY = (5, 15)       # seconds a message without a slot waits before it is seen again
FIRST_RATE = 20_000.0      # memberships examined per second, before this server was measured
HEADROOM = 0.8             # steps aim at this share of WPMSYNC_BATCH_SECONDS
SMOOTHING = 0.5            # weight of the newest step in the moving average

_rates: dict[tuple[str, int, str], float] = {}
_rates_lock = threading.Lock()


class NoSlot(Exception):
    """Every writer slot is taken: the message goes back to the queue, later (not a failure)."""

    def __init__(self, slots: int) -> None:
        super().__init__(f"all {slots} writer slots are taken (WPMSYNC_MAX_PARALLEL_BATCHES)")
        self.slots = slots


def slot_name(config: Config, slot: int) -> str:
    return lock_name(config, f"writer:{slot}")


def take_slot(conn: Any, config: Config) -> int:
    """Take a free writer slot on ``conn`` (held until ``release_slot`` or the connection
    ends) and return its number; ``NoSlot`` when all are taken. The slots are tried from a
    random one, so instances do not all queue up on slot 0; each try is one ``GET_LOCK`` that
    does not wait."""
    count = config.max_parallel_batches
    first = random.randrange(count)
    with conn.cursor() as cur:
        for i in range(count):
            slot = (first + i) % count
            cur.execute("SELECT GET_LOCK(%s, 0)", (slot_name(config, slot),))
            if cur.fetchone()[0] == 1:
                return slot
    raise NoSlot(count)


def release_slot(conn: Any, config: Config, slot: int) -> None:
    with conn.cursor() as cur:
        cur.execute("SELECT RELEASE_LOCK(%s)", (slot_name(config, slot),))


def slots_in_use(conn: Any, config: Config) -> int:
    """How many writer slots are held now (for health and tests)."""
    names = [slot_name(config, s) for s in range(config.max_parallel_batches)]
    with conn.cursor() as cur:
        cur.execute("SELECT " + " + ".join(["(IS_USED_LOCK(%s) IS NOT NULL)"] * len(names)), names)
        return int(cur.fetchone()[0])


def slot_delay() -> int:
    """Seconds before a message without a slot is seen again (spread, so they do not return
    together)."""
    return random.randint(*SLOT_DELAY)


# ---------------------------------------------------------------- the pace of steps

def _server(config: Config) -> tuple[str, int, str]:
    return (config.db_host, config.db_port, config.db_name)


def rate(config: Config) -> float:
    """Memberships examined per second on this server, as measured by this process so far."""
    with _rates_lock:
        return _rates.get(_server(config), FIRST_RATE)


def users_per_step(config: Config, sites: int) -> int:
    """Users of one step over ``sites`` sites: as many as commit within the time budget at the
    measured rate, at most ``WPMSYNC_BATCH_SIZE`` memberships, at least one user."""
    sites = max(1, sites)
    budget = rate(config) * config.batch_seconds * HEADROOM
    return max(1, min(int(budget // sites), config.batch_size // sites))


def learn(config: Config, memberships: int, seconds: float) -> None:
    """One step examined ``memberships`` (users × sites) in ``seconds`` (its transaction, lock
    waits included): the next steps are sized on it."""
    if memberships <= 0 or seconds <= 0:
        return
    measured = memberships / seconds
    with _rates_lock:
        old = _rates.get(_server(config))
        _rates[_server(config)] = measured if old is None else SMOOTHING * measured + (1 - SMOOTHING) * old


def forget_rates() -> None:
    """Back to the first guess (tests)."""
    with _rates_lock:
        _rates.clear()
