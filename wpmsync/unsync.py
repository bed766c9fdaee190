"""Unsync: take users off sites, leaving exactly what WordPress's ``remove_user_from_blog()``
leaves.

Per (user, site), core deletes the ``{prefix}{N}_capabilities`` and ``_user_level`` rows
(``WP_User::remove_all_caps``); when the site was the user's ``primary_blog`` it moves
``primary_blog`` / ``source_domain`` to the first other live site of ``get_blogs_of_user()``
(lowest blog id, any network); when no live site is left both become empty. Posts are never
touched and no user is deleted. Super admins are never removed from the main site. Each
removal is remembered (the PHP plugin's record), so no automatic sync adds the user back.
"""
from __future__ import annotations

from typing import Any, Iterable

from . import db, inputs, journal, removals
from .journal import Change
from .memberships import Outcome
from .schema import Network, Site


def remove_users(conn: Any, network: Network, user_ids: Iterable[Any], blog_ids: Iterable[Any], *,
                 dry_run: bool = False, change: Change | None = None) -> Outcome:
    """Remove each user from each site where it is a member. Every id is validated before any
    write; each user's removals are one transaction, journaled under ``change`` (so an unsync of
    the wrong site can be undone)."""
    found = {user.user_id: user for user in (network.require_user(conn, u)
                                             for u in inputs.ids(user_ids, "user_ids", text=True))}
    users = sorted(found)
    sites = sorted({network.require_site(b).blog_id for b in inputs.ids(blog_ids, "blog_ids", text=True)})
    outcome = Outcome(dry_run=dry_run)
    change = change or Change.new("unsync")
    tables = network.tables
    all_sites = {**network.sites, **network.other_sites}
    live_anywhere = sorted(b for b, s in all_sites.items() if s.live)
    for user_id in users:
        def remove(cur: Any, user_id: int = user_id) -> tuple[list[int], bool]:
            member_of = _member_of(cur, network, user_id, sorted(all_sites))
            doomed = []
            for blog_id in sites:
                if blog_id not in member_of:
                    continue
                if found[user_id].super_admin and blog_id == network.main_site_id:
                    continue  # reported below
                doomed.append(blog_id)
            if doomed and not dry_run:
                keys = {k: b for b in doomed for k in (tables.cap_key(b), tables.level_key(b))}
                journal.delete_meta(cur, network, change, user_id, keys)
                _move_primary_blog(cur, network, change, user_id, doomed,
                                   [all_sites[b] for b in live_anywhere if b in member_of and b not in doomed])
                # Remembered in the same transaction: a crash never forgets a removal it made.
                removals.change_in(cur, network, user_id, add=set(doomed), by=change)
            kept = found[user_id].super_admin and network.main_site_id in sites and network.main_site_id in member_of
            return doomed, kept

        doomed, kept_main = db.write_users(conn, network.config, user_id, user_id, remove)
        if kept_main:
            outcome.skip("a super admin is never removed from the main site", user_id=user_id,
                         blog_id=network.main_site_id)
        if not doomed:
            continue
        for blog_id in doomed:
            entry = outcome.site(blog_id)
            entry["removed"] = entry.get("removed", 0) + 1
            entry["user_ids"] = sorted(set(entry["user_ids"]) | {user_id})[:5]
        outcome.touched_users.add(user_id)
        outcome.touched_sites |= set(doomed)
        if not dry_run:
            outcome.job_id = change.job_id
    return outcome


def sites_in_scope_of(network: Network, blog_id: int) -> list[int]:
    """Where a removal from ``blog_id`` is carried when ``unsync`` is on: the other live sites
    that would receive its users under the scope, minus those that opted out."""
    options = network.options
    main = network.main_site_id
    if options.scope == "main_to_subsites":
        candidates = [s.blog_id for s in network.live_sites() if s.blog_id != main] if blog_id == main else []
    elif options.scope == "subsites_to_main":
        candidates = [main] if blog_id != main else []
    else:
        candidates = [s.blog_id for s in network.live_sites() if s.blog_id != blog_id]
    return [b for b in candidates if not options.opted_out(b) and b != blog_id]


def _member_of(cur: Any, network: Network, user_id: int, blog_ids: list[int]) -> set[int]:
    keys = {network.tables.cap_key(b): b for b in blog_ids}
    cur.execute(f"SELECT meta_key FROM {network.tables.usermeta} WHERE user_id = %s AND meta_key IN "
                f"({', '.join(['%s'] * len(keys))})", (user_id, *keys))
    return {keys[k] for (k,) in cur.fetchall()}


def _move_primary_blog(cur: Any, network: Network, change: Change, user_id: int, doomed: list[int],
                       remaining_live: list[Site]) -> None:
    """What the sequence of ``remove_user_from_blog`` calls leaves in primary_blog / source_domain."""
    um = network.tables.usermeta
    cur.execute(f"SELECT meta_value FROM {um} WHERE user_id = %s AND meta_key = 'primary_blog' "
                "ORDER BY umeta_id LIMIT 1", (user_id,))
    row = cur.fetchone()
    primary = str(row[0]) if row and row[0] is not None else ""
    moved = primary in {str(b) for b in doomed}
    if not moved and remaining_live:
        return
    new_id = str(remaining_live[0].blog_id) if remaining_live else ""
    new_domain = remaining_live[0].domain if remaining_live else ""
    journal.update_meta(cur, network, change, user_id, 0, "primary_blog", new_id)
    journal.update_meta(cur, network, change, user_id, 0, "source_domain", new_domain)
