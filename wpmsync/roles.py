"""Roles and capabilities, computed the way ``WP_User`` computes them.

Each site keeps its own roles list (option ``{prefix}{N}_user_roles``) and its ``default_role``.
From those we derive what ``add_user_to_blog()`` / ``WP_User::set_role()`` would store: the
capabilities array and the ``user_level`` (highest ``level_N`` key among the user's role caps
merged with its own caps, see ``WP_User::update_user_level_from_caps``).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Iterable

from . import phpserial
from .errors import BrokenOption
from .schema import Tables

LEVEL_RE = re.compile(r"^level_(10|[0-9])$", re.IGNORECASE)
FALLBACK_ROLE = "subscriber"
SITES_PER_QUERY = 100


def level_of_caps(keys: Iterable[Any]) -> int:
    """``WP_User::level_reduction`` over capability names; keys count whatever their value."""
    level = 0
    for key in keys:
        match = LEVEL_RE.match(str(key))
        if match:
            level = max(level, int(match.group(1)))
    return level


def caps_value(caps: dict[str, Any]) -> str:
    """The stored form of a capabilities array."""
    return phpserial.dumps(caps)


@dataclass(frozen=True)
class SiteRoles:
    """One site's roles list and default role."""

    blog_id: int
    roles: dict[str, dict[str, Any]]
    default_role_option: str

    def exists(self, role: str) -> bool:
        return role in self.roles

    def capabilities(self, role: str) -> dict[str, Any]:
        return self.roles[role]["capabilities"]

    def level(self, role: str) -> int:
        return level_of_caps(self.capabilities(role))

    def default_role(self) -> str | None:
        """The role a synced user gets here: ``default_role`` when that role exists on the site,
        else ``subscriber`` (the PHP plugin's rule), else None: nothing we could write safely."""
        if self.default_role_option and self.exists(self.default_role_option):
            return self.default_role_option
        return FALLBACK_ROLE if self.exists(FALLBACK_ROLE) else None

    def roles_in(self, caps: dict[str, Any]) -> list[str]:
        """``WP_User::$roles``: the keys of the caps array that are roles on this site."""
        return [str(k) for k in caps if str(k) in self.roles]

    def user_level(self, caps: dict[str, Any]) -> int:
        """``update_user_level_from_caps``: role caps merged with the user's own caps."""
        keys: list[Any] = []
        for role in self.roles_in(caps):
            keys.extend(self.capabilities(role))
        keys.extend(caps)
        return level_of_caps(keys)

    def set_role(self, caps: dict[str, Any], role: str) -> dict[str, Any] | None:
        """``WP_User::set_role``: None when the user already has exactly this one role (core
        writes nothing then); else old role keys out, other caps kept, ``role => true`` last."""
        current = self.roles_in(caps)
        if len(current) == 1 and current[0] == role:
            return None
        new_caps = {k: v for k, v in caps.items() if str(k) not in current}
        new_caps[role] = True
        return new_caps


def load_site_roles(conn: Any, tables: Tables, blog_ids: Iterable[int]) -> dict[int, SiteRoles]:
    """Read ``default_role`` and the roles list of many sites in a few UNION queries.

    A missing options table or a roles option we cannot parse is a ``BrokenOption`` naming the
    site: we refuse to guess at capabilities.
    """
    blog_ids = sorted(set(blog_ids))
    raw: dict[int, dict[str, str]] = {b: {} for b in blog_ids}
    for start in range(0, len(blog_ids), SITES_PER_QUERY):
        chunk = blog_ids[start:start + SITES_PER_QUERY]
        parts, params = [], []
        for blog_id in chunk:
            parts.append(
                f"SELECT %s AS blog_id, option_name, option_value FROM {tables.options(blog_id)} "
                "WHERE option_name IN ('default_role', %s)"
            )
            params += [blog_id, tables.roles_option(blog_id)]
        with conn.cursor() as cur:
            try:
                cur.execute(" UNION ALL ".join(parts), params)
            except Exception as exc:  # pymysql.err.ProgrammingError: a table is missing
                if getattr(exc, "args", (None,))[0] == 1146:
                    _raise_missing_options(conn, tables, chunk)
                raise
            for blog_id, name, value in cur.fetchall():
                raw[int(blog_id)][name] = value
    return {b: _parse_site_roles(tables, b, raw[b]) for b in blog_ids}


def _raise_missing_options(conn: Any, tables: Tables, chunk: list[int]) -> None:
    with conn.cursor() as cur:
        for blog_id in chunk:
            cur.execute("SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = DATABASE() "
                        "AND table_name = %s", (tables.options(blog_id).strip("`"),))
            if cur.fetchone()[0] == 0:
                raise BrokenOption(f"site {blog_id} has no options table {tables.options(blog_id)}")


def _parse_site_roles(tables: Tables, blog_id: int, options: dict[str, str]) -> SiteRoles:
    name = tables.roles_option(blog_id)
    text = options.get(name)
    if text is None:
        raise BrokenOption(f"site {blog_id} has no roles option {name!r}")
    try:
        roles = phpserial.loads(text)
    except phpserial.PHPSerialError as exc:
        raise BrokenOption(f"site {blog_id}: roles option {name!r} cannot be read ({exc})") from None
    if not isinstance(roles, dict):
        raise BrokenOption(f"site {blog_id}: roles option {name!r} is not an array of roles")
    clean: dict[str, dict[str, Any]] = {}
    for role, definition in roles.items():
        caps = definition.get("capabilities") if isinstance(definition, dict) else None
        if not isinstance(caps, dict):
            raise BrokenOption(
                f"site {blog_id}: role {role!r} in {name!r} has no capabilities array"
            )
        clean[str(role)] = {"name": definition.get("name", role), "capabilities": caps}
    default = options.get("default_role") or ""
    return SiteRoles(blog_id, clean, default.strip())


def readable_site_roles(conn: Any, tables: Tables, blog_ids: list[int]) -> tuple[dict[int, SiteRoles], list[int]]:
    """The roles of these sites; a site whose roles option cannot be read is left out and named
    (one broken site must not stop a report: the role report, the timer pass that makes it, the
    options' problems)."""
    try:
        return load_site_roles(conn, tables, blog_ids), []
    except BrokenOption:
        pass
    found, broken = {}, []
    for blog_id in blog_ids:
        try:
            found.update(load_site_roles(conn, tables, [blog_id]))
        except BrokenOption:
            broken.append(blog_id)
    return found, broken
