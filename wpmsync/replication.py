"""Role replication: user U now has role R on site S → R on U's other sites.

As the PHP plugin does: only sites where U is already a member, never for a super admin, nothing
when R is empty or already U's only role there. Better than core: a role that does not exist on
a target site is reported, not written; and a role at or above the ceiling (default: any role
with ``level_10``) is replicated only when the acting user is a super admin, so a subsite admin
cannot make someone administrator of the whole network.
"""
from __future__ import annotations

from functools import partial
from typing import Any

from . import db, journal, phpserial
from .errors import InputError
from .journal import Change
from .memberships import Outcome
from .options import Options
from .roles import SiteRoles, caps_value, load_site_roles
from .schema import Network, parse_role


def replicate_role(conn: Any, network: Network, user_id: Any, role: Any, from_blog: Any,
                   actor: Any = None, *, dry_run: bool = False, change: Change | None = None) -> Outcome:
    """Set ``role`` on every other live site where the user is a member, as ``set_role`` would;
    journaled under ``change``."""
    outcome = Outcome(dry_run=dry_run)
    user = network.require_user(conn, user_id)
    source = network.require_site(from_blog)
    if role in (None, ""):
        outcome.skip("empty role: nothing to replicate", user_id=user.user_id)
        return outcome
    role = parse_role(role)
    actor_user = network.require_user(conn, actor) if actor not in (None, "", 0) else None
    if user.super_admin:
        outcome.skip("super admins are never synced: they reach every site already",
                     user_id=user.user_id)
        return outcome

    tables = network.tables
    live = [s.blog_id for s in network.live_sites()]
    with conn.cursor() as cur:
        caps_rows = _caps_of(cur, network, user.user_id, set(live) | {source.blog_id})
    site_roles = load_site_roles(conn, tables, set(caps_rows) | {source.blog_id})
    source_roles = site_roles[source.blog_id]
    source_caps = caps_rows.get(source.blog_id)
    if source_caps is None or role not in source_roles.roles_in(source_caps):
        raise InputError(f"user {user.user_id} does not have role {role!r} on site {source.blog_id}")

    ceiling = network.config.role_ceiling_level
    privileged = actor_user is not None and actor_user.super_admin
    if source_roles.level(role) >= ceiling and not privileged:
        outcome.skip(f"role {role!r} is at or above the ceiling (level_{ceiling}); only a super admin "
                     "may replicate it", user_id=user.user_id, blog_id=source.blog_id)
        return outcome

    options = network.options or Options()
    if options.opted_out(source.blog_id):
        outcome.skip("this site opted out of syncing: its role changes are not sent",
                     user_id=user.user_id, blog_id=source.blog_id)
        return outcome
    refused = options.role_refused(role) or _scope_refuses_source(network, source.blog_id)
    if refused:
        outcome.skip(refused, user_id=user.user_id, blog_id=source.blog_id)
        return outcome

    targets = sorted(b for b in caps_rows if b != source.blog_id and b in live)
    plan = partial(_plan, network, site_roles, source.blog_id, role=role, privileged=privileged)
    if dry_run:
        for blog_id in plan(caps_rows, targets, outcome=outcome):
            _count(outcome, blog_id, user.user_id)
        return outcome

    change = change or Change.new("role_sync")

    def write(cur: Any) -> tuple[Outcome, dict[int, tuple[dict, int, str | None]]]:
        attempt = Outcome(skipped=list(outcome.skipped), sites={b: dict(e) for b, e in outcome.sites.items()})
        caps_now = _caps_of(cur, network, user.user_id, set(targets))  # re-read under the user's lock
        plans = plan(caps_now, sorted(caps_now), outcome=attempt)
        for blog_id, (new_caps, level, roles_value) in plans.items():
            if roles_value is not None:  # add_role(): the definition copied from the source site
                journal.update_option(cur, network, change, blog_id, tables.roles_option(blog_id), roles_value)
            journal.update_meta(cur, network, change, user.user_id, blog_id, tables.cap_key(blog_id),
                                caps_value(new_caps))
            journal.update_meta(cur, network, change, user.user_id, blog_id, tables.level_key(blog_id), str(level))
        return attempt, plans

    written, plans = db.write_users(conn, network.config, user.user_id, user.user_id, write)
    outcome.skipped, outcome.sites = written.skipped, written.sites
    for blog_id, (_, _, roles_value) in plans.items():
        if roles_value is not None:
            outcome.touched_roles.add(blog_id)
        outcome.job_id = change.job_id
        _count(outcome, blog_id, user.user_id)
        outcome.touched_users.add(user.user_id)
        outcome.touched_sites.add(blog_id)
    return outcome


def _scope_refuses_source(network: Network, blog_id: int) -> str | None:
    scope = (network.options or Options()).scope
    if scope == "main_to_subsites" and blog_id != network.main_site_id:
        return "scope main_to_subsites: only the main site's role changes are sent"
    if scope == "subsites_to_main" and blog_id == network.main_site_id:
        return "scope subsites_to_main: the main site's role changes are not sent"
    return None


def _count(outcome: Outcome, blog_id: int, user_id: int) -> None:
    outcome.site(blog_id)["roles_set"] += 1
    outcome.site(blog_id)["user_ids"] = [user_id]
    outcome.roles_set += 1


def _plan(network: Network, site_roles: dict[int, SiteRoles], source: int, caps_rows: dict[int, dict],
          targets: list[int], *, role: str, privileged: bool,
          outcome: Outcome) -> dict[int, tuple[dict, int, str | None]]:
    """New caps array, user_level and (when the role is copied there) roles option per target
    site; reasons for the sites left alone."""
    plans: dict[int, tuple[dict, int, str | None]] = {}
    ceiling = network.config.role_ceiling_level
    options = network.options or Options()
    for blog_id in targets:
        roles = site_roles[blog_id]
        roles_value = None
        if options.opted_out(blog_id):
            outcome.skip("site opted out of syncing", blog_id=blog_id)
            continue
        if (options.scope == "main_to_subsites" and blog_id == network.main_site_id) or (
                options.scope == "subsites_to_main" and blog_id != network.main_site_id):
            outcome.skip(f"scope {options.scope}: not a site role changes flow to", blog_id=blog_id)
            continue
        if not roles.exists(role) and options.missing_role == "copy":
            definition = site_roles[source].roles[role]
            roles = SiteRoles(blog_id, {**roles.roles, role: definition}, roles.default_role_option)
            roles_value = phpserial.dumps(roles.roles)
            outcome.site(blog_id)["role_copied_from"] = source
        if not roles.exists(role):
            outcome.skip(f"role {role!r} does not exist on this site", blog_id=blog_id)
            continue
        if roles.level(role) >= ceiling and not privileged:
            outcome.skip(f"role {role!r} is at or above the ceiling (level_{ceiling}) here; only a "
                         "super admin may replicate it", blog_id=blog_id)
            continue
        new_caps = roles.set_role(caps_rows[blog_id], role)
        if new_caps is None:  # set_role writes nothing then
            outcome.skip(f"role {role!r} is already the user's only role here", blog_id=blog_id)
            continue
        plans[blog_id] = (new_caps, roles.user_level(new_caps), roles_value)
    return plans


def _caps_of(cur: Any, network: Network, user_id: int, blog_ids: set[int]) -> dict[int, dict]:
    """The user's caps arrays on these sites (a row, even an empty array, means a member)."""
    if not blog_ids:
        return {}
    keys = {network.tables.cap_key(b): b for b in blog_ids}
    cur.execute(
        f"SELECT meta_key, meta_value FROM {network.tables.usermeta} WHERE user_id = %s "
        f"AND meta_key IN ({', '.join(['%s'] * len(keys))}) ORDER BY umeta_id",
        (user_id, *keys),
    )
    caps: dict[int, dict] = {}
    for key, value in cur.fetchall():
        blog_id = keys[key]
        if blog_id in caps:
            continue  # get_user_meta( ..., true ) reads the first row
        try:
            parsed = phpserial.loads(value) if value else {}
        except phpserial.PHPSerialError:
            parsed = {}
        caps[blog_id] = parsed if isinstance(parsed, dict) else {}
    return caps
