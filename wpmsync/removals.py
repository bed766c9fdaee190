"""Remembered removals: a user taken off a site on purpose is not synced back there.

Kept where the PHP plugin keeps them, the usermeta ``wpmus_removed_from_blogs`` (a serialized
list of blog ids per user), so a network moving from the plugin keeps its record. Few users have
one, so reading the record of a user-id range is one small indexed query per batch.
"""
from __future__ import annotations

from typing import Any

from . import db, journal, phpserial
from .journal import Change
from .schema import REMOVED_META_KEY, Network


def _blog_ids(raw: str | None) -> list[int]:
    """The plugin's own reading: anything that is not an array counts as no record."""
    try:
        value = phpserial.loads(raw or "")
    except phpserial.PHPSerialError:
        return []
    if not isinstance(value, dict):
        return []
    ids: list[int] = []
    for item in value.values():
        try:
            number = int(item)
        except (TypeError, ValueError):
            continue
        if number > 0 and number not in ids:
            ids.append(number)
    return ids


def removed_pairs(cur: Any, network: Network, first_user: int, last_user: int) -> set[tuple[int, int]]:
    """(user_id, blog_id) pairs recorded as removed, for users in [first_user, last_user]."""
    cur.execute(
        f"SELECT user_id, meta_value FROM {network.tables.usermeta} "
        "WHERE meta_key = %s AND user_id BETWEEN %s AND %s",
        (REMOVED_META_KEY, first_user, last_user),
    )
    return {(int(uid), blog) for uid, raw in cur.fetchall() for blog in _blog_ids(raw)}


def removed_blogs(cur: Any, network: Network, user_id: int) -> list[int]:
    return sorted(b for _, b in removed_pairs(cur, network, user_id, user_id))


def _store(cur: Any, network: Network, user_id: int, blog_ids: list[int], change: Change | None) -> None:
    """``update_user_meta`` / ``delete_user_meta`` of the record, as the plugin does; journaled,
    so undoing an unsync also forgets that the user was removed."""
    if blog_ids:
        journal.update_meta(cur, network, change, user_id, 0, REMOVED_META_KEY, phpserial.dumps(blog_ids))
    else:
        journal.delete_meta(cur, network, change, user_id, {REMOVED_META_KEY: 0})


def change_in(cur: Any, network: Network, user_id: int, add: set[int] = frozenset(),
              remove: set[int] = frozenset(), by: Change | None = None) -> list[int]:
    """Add and/or drop blog ids in one user's record, inside a transaction that holds the user
    (``db.write_users``): the writer whose rows the record is about records it in the same
    transaction, so a crash never leaves rows without their record. Returns the record."""
    before = removed_blogs(cur, network, user_id)
    after = [b for b in before if b not in remove] + sorted(set(add) - set(before))
    if after != before:
        _store(cur, network, user_id, after, by)
    return after


def change(conn: Any, network: Network, user_id: int, add: set[int] = frozenset(),
           remove: set[int] = frozenset(), by: Change | None = None) -> list[int]:
    """``change_in`` in a transaction of its own, holding the user as every writer of its rows
    does (the mu-plugin takes the same named lock for its own changes of the record)."""
    return db.write_users(conn, network.config, user_id, user_id,
                          lambda cur: change_in(cur, network, user_id, add, remove, by))


def record(conn: Any, network: Network, user_id: int, blog_id: int, by: Change | None = None) -> list[int]:
    """The user was removed from the site on purpose: remember it."""
    return change(conn, network, user_id, add={blog_id}, by=by)


def forget(conn: Any, network: Network, user_id: int, blog_id: int, by: Change | None = None) -> list[int]:
    """The user was added back by hand (or by a forced manual sync): forget the removal."""
    return change(conn, network, user_id, remove={blog_id}, by=by)
