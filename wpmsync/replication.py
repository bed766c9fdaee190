"""Role replication: user U now has role R on site S → R on U's other sites.

As the PHP plugin does: only sites where U is already a member, never for a super admin, nothing
when R is empty or already U's only role there. Better than core: a role that does not exist on
a target site is reported, not written; and a role at or above the ceiling (default: any role
with ``level_10``) is replicated only when the acting user is a super admin, so a subsite admin
cannot make someone administrator of the whole network.

The same rules (``source_refusal``, ``target_refusal``) drive the reconcile's drift report,
``role_differences``: the users whose role on one site replication would have set on another
of their sites, had it seen the change (a role change made while the functions were down).
"""
from __future__ import annotations

from functools import partial
from typing import Any

from . import db, journal, phpserial
from .errors import InputError
from .journal import Change
from .memberships import Outcome, strict_membership, wp_db_version
from .options import Options
from .roles import SiteRoles, caps_value, load_site_roles, readable_site_roles
from .schema import Network, parse_role

AUTOLOAD_ON_DB_VERSION = 57155  # WordPress 6.6 (and 6.5): add_role() writes autoload 'on'


def _digest(value_sql: str) -> str:
    """A caps value's 16-byte digest in SQL: SHA-256's first half (MySQL 9.7 has no MD5())."""
    return f"UNHEX(LEFT(SHA2({value_sql}, 256), 32))"


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
        raise InputError(f"user {user.user_id} does not have role {role!r} on site {source.blog_id}", "role")

    privileged = actor_user is not None and actor_user.super_admin
    refused = source_refusal(network, source_roles, role, privileged)
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
        # add_role() stores the roles option with autoload 'on' since WordPress 6.6 (db_version
        # 57155, shared with 6.5, which the plugin we replace does not support); before, it
        # left the row's autoload ('yes') as it was.
        version = wp_db_version(cur, network) if any(p[2] is not None for p in plans.values()) else None
        autoload = "on" if version is None or version >= AUTOLOAD_ON_DB_VERSION else None
        for blog_id, (new_caps, level, roles_value) in plans.items():
            if roles_value is not None:  # add_role(): the definition copied from the source site
                journal.update_option(cur, network, change, blog_id, tables.roles_option(blog_id), roles_value,
                                      autoload=autoload)
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


def source_refusal(network: Network, source_roles: SiteRoles, role: str, privileged: bool) -> str | None:
    """Why a role set on this source site is not replicated from it (None: it is). The rule
    ``replicate_role`` and the drift report (``role_differences``) share."""
    ceiling = network.config.role_ceiling_level
    if source_roles.level(role) >= ceiling and not privileged:
        return (f"role {role!r} is at or above the ceiling (level_{ceiling}); only a super admin "
                "may replicate it")
    options = network.options or Options()
    if options.opted_out(source_roles.blog_id):
        return "this site opted out of syncing: its role changes are not sent"
    return options.role_refused(role) or _scope_refuses_source(network, source_roles.blog_id)


def target_refusal(network: Network, roles: SiteRoles, source_roles: SiteRoles, role: str,
                   privileged: bool) -> tuple[str | None, SiteRoles]:
    """Why replication leaves this target site alone (None: it sets the role there, unless it is
    the user's only role already), and the site's roles as replication sees them (with the role
    copied from the source site when ``missing_role`` is ``copy``). Shared with the drift report."""
    blog_id = roles.blog_id
    ceiling = network.config.role_ceiling_level
    options = network.options or Options()
    if options.opted_out(blog_id):
        return "site opted out of syncing", roles
    if (options.scope == "main_to_subsites" and blog_id == network.main_site_id) or (
            options.scope == "subsites_to_main" and blog_id != network.main_site_id):
        return f"scope {options.scope}: not a site role changes flow to", roles
    if not roles.exists(role) and options.missing_role == "copy" and source_roles.exists(role):
        roles = SiteRoles(blog_id, {**roles.roles, role: source_roles.roles[role]}, roles.default_role_option)
    if not roles.exists(role):
        return f"role {role!r} does not exist on this site", roles
    if roles.level(role) >= ceiling and not privileged:
        return (f"role {role!r} is at or above the ceiling (level_{ceiling}) here; only a "
                "super admin may replicate it"), roles
    return None, roles


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
    for blog_id in targets:
        refused, roles = target_refusal(network, site_roles[blog_id], site_roles[source], role, privileged)
        copied = roles is not site_roles[blog_id]
        roles_value = phpserial.dumps(roles.roles) if copied else None
        if copied:
            outcome.site(blog_id)["role_copied_from"] = source
        if refused:
            outcome.skip(refused, blog_id=blog_id)
            continue
        new_caps = roles.set_role(caps_rows[blog_id], role)
        if new_caps is None:  # set_role writes nothing then
            outcome.skip(f"role {role!r} is already the user's only role here", blog_id=blog_id)
            continue
        plans[blog_id] = (new_caps, roles.user_level(new_caps), roles_value)
    return plans


def _caps_of(cur: Any, network: Network, user_id: int, blog_ids: set[int]) -> dict[int, dict]:
    """The user's caps arrays on the sites where ``is_user_member_of_blog`` counts the user a
    member: a caps row, even an empty array; from WordPress 7.1 on, a row whose value is an
    array (``memberships.strict_membership``)."""
    if not blog_ids:
        return {}
    strict = strict_membership(cur, network)
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
            parsed = phpserial.loads(value) if value else None
        except phpserial.PHPSerialError:
            parsed = None
        if strict and not isinstance(parsed, dict):
            caps[blog_id] = None  # the first row is no array: no member here
            continue
        caps[blog_id] = parsed if isinstance(parsed, dict) else {}
    return {b: c for b, c in caps.items() if c is not None}


# ---------------------------------------------------------------- the drift report

# This connection's temporary tables: the caps values (by site) that carry a role someone chose,
# and the caps values on which replicating a role would change something.
CHOSEN, WOULD_SET = "wpmsync_drift_chosen", "wpmsync_drift_would_set"
DRIFT_SAMPLE = 20


def role_differences(conn: Any, network: Network, sample: int = DRIFT_SAMPLE) -> dict[str, Any]:
    """Users whose role differs across the sites where role replication would have acted: a
    user whose only role on a site S is a role someone chose there (not the role a sync gives S:
    its ``default_role`` or the role the options set for it), which replication would send from
    S (``source_refusal``), and who has another site where setting that role would change their
    roles (``target_refusal``, and ``set_role`` not a no-op). Super admins are left out, as
    replication leaves them out; a user who only got each site's own default role is no
    difference at all. The actor is unknown here, so roles at the ceiling count as not sent.

    Set-based, whatever the number of users: one grouped read of the distinct caps values per
    site (a few per site), judged here by the rules above, then one join of the users' rows
    against the verdicts. Returns the count and the first ``sample`` user ids; reported only,
    never written (which role is right is a person's call)."""
    live = [s.blog_id for s in network.live_sites()]
    site_roles, unreadable = readable_site_roles(conn, network.tables, live)
    keys = {network.tables.cap_key(b).lower(): b for b in site_roles}
    report: dict[str, Any] = {"users": 0, "user_ids": []}
    if unreadable:
        report["sites_unreadable"] = unreadable
    if len(keys) < 2:
        return report
    values = _caps_values(conn, network, list(keys))
    chosen = _chosen(network, site_roles, keys, values)
    if not chosen:
        return report
    would_set = _would_set(network, site_roles, keys, values, chosen)
    if not would_set:
        return report
    ids = _users_with_differences(conn, network, chosen, would_set)
    return {**report, "users": len(ids), "user_ids": ids[:sample]}


def _caps_values(conn: Any, network: Network, keys: list[str]) -> list[tuple[str, bytes, dict]]:
    """(meta key, digest of the value, parsed caps array) of every distinct caps value on these
    sites. Grouped by the value's digest: a LONGTEXT groups by its first max_sort_length bytes
    only, and by the column's case-insensitive collation."""
    with conn.cursor() as cur:
        cur.execute(f"SELECT meta_key, {_digest('meta_value')}, MIN(meta_value) FROM {network.tables.usermeta} "
                    f"WHERE meta_key IN ({', '.join(['%s'] * len(keys))}) GROUP BY meta_key, {_digest('meta_value')}",
                    keys)
        rows = cur.fetchall()
    out = []
    for key, digest, value in rows:
        try:
            caps = phpserial.loads(value) if value else {}
        except phpserial.PHPSerialError:
            caps = {}
        out.append((key, digest, caps if isinstance(caps, dict) else {}))
    return out


def _given_by_sync(network: Network, roles: SiteRoles) -> set[str]:
    """The roles a user gets on this site without anyone choosing: its ``default_role`` (or
    subscriber), and the role the network options set for it."""
    options = network.options or Options()
    given = {roles.default_role() or ""}
    if options.site_role(roles.blog_id):
        given.add(options.site_role(roles.blog_id))
    return given


def _chosen(network: Network, site_roles: dict[int, SiteRoles], keys: dict[str, int],
            values: list[tuple[str, bytes, dict]]) -> dict[tuple[str, bytes], str]:
    """(meta key, value digest) -> role, for the caps values whose only role is one someone chose
    on that site and that replication would send from it (an unprivileged actor)."""
    chosen = {}
    for key, digest, caps in values:
        blog_id = keys.get(key.lower())
        if blog_id is None:
            continue
        roles = site_roles[blog_id]
        held = roles.roles_in(caps)
        if len(held) != 1 or held[0] in _given_by_sync(network, roles):
            continue
        try:
            role = parse_role(held[0])  # replication refuses any other name
        except InputError:
            continue
        if source_refusal(network, roles, role, privileged=False) is None:
            chosen[(key, digest)] = role
    return chosen


def _would_set(network: Network, site_roles: dict[int, SiteRoles], keys: dict[str, int],
               values: list[tuple[str, bytes, dict]], chosen: dict[tuple[str, bytes], str]) -> set[tuple[str, bytes, str]]:
    """(meta key, value digest, role) for each caps value on which replicating one of the chosen
    roles would change something (the definition of a role copied from the lowest source site
    that has it chosen, when ``missing_role`` is ``copy``)."""
    sources: dict[str, SiteRoles] = {}
    for (key, _), role in sorted(chosen.items(), key=lambda item: keys[item[0][0].lower()]):
        sources.setdefault(role, site_roles[keys[key.lower()]])
    out = set()
    for key, digest, caps in values:
        blog_id = keys.get(key.lower())
        if blog_id is None:
            continue
        for role, source_roles in sources.items():
            refused, roles = target_refusal(network, site_roles[blog_id], source_roles, role, privileged=False)
            if refused is None and roles.set_role(caps, role) is not None:
                out.add((key, digest, role))
    return out


def _users_with_differences(conn: Any, network: Network, chosen: dict[tuple[str, bytes], str],
                            would_set: set[tuple[str, bytes, str]]) -> list[int]:
    """Users with a chosen role on one site and, on another of their sites, a caps value that
    replicating that role would change: one join over the users' rows, driven by the sites
    that have chosen roles."""
    collation = network.meta_key_collation
    um = network.tables.usermeta
    src_keys = sorted({key for key, _ in chosen})
    with conn.cursor() as cur:
        for name in (CHOSEN, WOULD_SET):
            cur.execute(f"DROP TEMPORARY TABLE IF EXISTS {name}")
        cur.execute(f"CREATE TEMPORARY TABLE {CHOSEN} (meta_key VARCHAR(191) COLLATE {collation} NOT NULL, "
                    "digest BINARY(16) NOT NULL, role VARCHAR(64) CHARACTER SET ascii "
                    "COLLATE ascii_bin NOT NULL, PRIMARY KEY (meta_key, digest))")
        cur.execute(f"CREATE TEMPORARY TABLE {WOULD_SET} (meta_key VARCHAR(191) COLLATE {collation} NOT NULL, "
                    "digest BINARY(16) NOT NULL, role VARCHAR(64) CHARACTER SET ascii "
                    "COLLATE ascii_bin NOT NULL, PRIMARY KEY (meta_key, digest, role))")
        for table, rows in ((CHOSEN, [(k, d, r) for (k, d), r in chosen.items()]), (WOULD_SET, sorted(would_set))):
            for start in range(0, len(rows), 1000):
                chunk = rows[start:start + 1000]
                cur.execute(f"INSERT IGNORE INTO {table} (meta_key, digest, role) VALUES "
                            + ", ".join(["(%s, %s, %s)"] * len(chunk)), [x for row in chunk for x in row])
        sql = (f"SELECT DISTINCT s.user_id FROM {um} s STRAIGHT_JOIN {CHOSEN} c ON c.meta_key = s.meta_key "
               f"AND c.digest = {_digest('s.meta_value')} STRAIGHT_JOIN {network.tables.usermeta_by_user('t')} "
               f"ON t.user_id = s.user_id STRAIGHT_JOIN {WOULD_SET} w ON w.meta_key = t.meta_key "
               f"AND w.digest = {_digest('t.meta_value')} AND w.role = c.role "
               f"WHERE s.meta_key IN ({', '.join(['%s'] * len(src_keys))})")
        params: list[Any] = list(src_keys)
        if network.super_admins:  # replication never touches them
            sql += (f" AND s.user_id NOT IN (SELECT ID FROM {network.tables.users} WHERE user_login IN "
                    f"({', '.join(['%s'] * len(network.super_admins))}))")
            params += network.super_admins
        cur.execute(sql + " ORDER BY s.user_id", params)
        ids = [int(r[0]) for r in cur.fetchall()]
        for name in (CHOSEN, WOULD_SET):
            cur.execute(f"DROP TEMPORARY TABLE IF EXISTS {name}")
    return ids
