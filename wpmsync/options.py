"""Network options beyond the three switches: what the other multisite user-sync plugins offer.

Kept in one ``{prefix}sitemeta`` row (``wpmsync_options``, a PHP-serialized array, so the
mu-plugin can read it with ``get_site_option``):

- ``sites``: per site, ``opt_out`` (receives no synced users, and its role changes are not
  sent to other sites) and ``role`` (the role synced users get there, instead of its
  ``default_role``);
- ``excluded_roles`` (never synced or replicated) or ``allowed_roles`` (only these are);
- ``missing_role``: when a replicated role does not exist on a target site, ``skip`` and report
  it (default) or ``copy`` its definition from the source site, exactly as ``add_role()``
  stores it;
- ``unsync``: when on, a user removed from one site is removed from the other sites in scope
  (off by default);
- ``scope``: where synced users land: ``all`` sites (default), ``main_to_subsites`` (members of
  the main site join the subsites; role changes flow from the main site to them) or
  ``subsites_to_main`` (members of any subsite join the main site; role changes flow from a
  subsite to the main site).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from . import phpserial
from .db import SITEMETA_LOCK, named_locks, transaction
from .errors import BrokenOption, InputError
from .schema import Network, parse_id, parse_role, update_meta

META_KEY = "wpmsync_options"
MISSING_ROLE = ("skip", "copy")
SCOPES = ("all", "main_to_subsites", "subsites_to_main")


@dataclass
class Options:
    sites: dict[int, dict[str, Any]] = field(default_factory=dict)
    excluded_roles: list[str] = field(default_factory=list)
    allowed_roles: list[str] = field(default_factory=list)
    missing_role: str = "skip"
    scope: str = "all"
    unsync: bool = False

    def opted_out(self, blog_id: int) -> bool:
        return bool(self.sites.get(blog_id, {}).get("opt_out"))

    def site_role(self, blog_id: int) -> str:
        return self.sites.get(blog_id, {}).get("role", "")

    def role_refused(self, role: str) -> str | None:
        """Why this role is never synced, or None when it may be."""
        if role in self.excluded_roles:
            return f"role {role!r} is excluded from syncing"
        if self.allowed_roles and role not in self.allowed_roles:
            return f"role {role!r} is not in the roles allowed to sync"
        return None

    def to_dict(self) -> dict[str, Any]:
        return {"sites": {str(b): dict(v) for b, v in sorted(self.sites.items())},
                "excluded_roles": list(self.excluded_roles), "allowed_roles": list(self.allowed_roles),
                "missing_role": self.missing_role, "scope": self.scope, "unsync": self.unsync}


def _validate(network: Network, data: dict[str, Any]) -> Options:
    """Turn a JSON-ish dict (HTTP, CLI, or the stored row) into checked Options."""
    if not isinstance(data, dict):
        raise InputError("options must be an object")
    unknown = sorted(set(data) - {"sites", "excluded_roles", "allowed_roles", "missing_role", "scope", "unsync"})
    if unknown:
        raise InputError(f"unknown option(s): {', '.join(unknown)}")
    sites: dict[int, dict[str, Any]] = {}
    raw_sites = data.get("sites") or {}
    if not isinstance(raw_sites, dict):
        raise InputError("options.sites must map blog ids to {opt_out, role}")
    for key, value in raw_sites.items():
        blog_id = network.require_site(parse_id(key, "blog_id")).blog_id
        if not isinstance(value, dict) or set(value) - {"opt_out", "role"}:
            raise InputError(f"options.sites[{blog_id}] takes only opt_out and role")
        entry: dict[str, Any] = {}
        if value.get("opt_out"):
            entry["opt_out"] = True
        if value.get("role"):
            entry["role"] = parse_role(value["role"])
        if entry:
            sites[blog_id] = entry
    lists = {}
    for name in ("excluded_roles", "allowed_roles"):
        values = data.get(name) or []
        if not isinstance(values, (list, tuple)):
            raise InputError(f"options.{name} must be a list of role names")
        lists[name] = sorted({parse_role(v) for v in values})
    if lists["excluded_roles"] and lists["allowed_roles"]:
        raise InputError("give excluded_roles or allowed_roles, not both")
    missing = data.get("missing_role") or "skip"
    if missing not in MISSING_ROLE:
        raise InputError(f"options.missing_role must be one of {', '.join(MISSING_ROLE)}")
    scope = data.get("scope") or "all"
    if scope not in SCOPES:
        raise InputError(f"options.scope must be one of {', '.join(SCOPES)}")
    unsync = data.get("unsync", False)
    if not isinstance(unsync, bool) and unsync not in (0, 1):
        raise InputError("options.unsync must be true or false")
    return Options(sites, lists["excluded_roles"], lists["allowed_roles"], missing, scope, bool(unsync))


def read(conn: Any, network: Network) -> Options:
    with conn.cursor() as cur:
        cur.execute(f"SELECT meta_value FROM {network.tables.sitemeta} WHERE site_id = %s AND meta_key = %s "
                    "ORDER BY meta_id LIMIT 1", (network.config.network_id, META_KEY))
        row = cur.fetchone()
    if row is None or not row[0]:
        return Options()
    try:
        stored = phpserial.loads(row[0])
    except phpserial.PHPSerialError as exc:
        raise BrokenOption(f"sitemeta {META_KEY} cannot be read: {exc}") from None
    if not isinstance(stored, dict):
        raise BrokenOption(f"sitemeta {META_KEY} is not an array")
    for name in ("excluded_roles", "allowed_roles"):  # PHP lists come back as {0: ..., 1: ...}
        if isinstance(stored.get(name), dict):
            stored[name] = list(stored[name].values())
    stored["sites"] = {str(k): v for k, v in (stored.get("sites") or {}).items()}
    return _validate(network, stored)


def write(conn: Any, network: Network, changes: dict[str, Any]) -> Options:
    """Replace the given top-level options (``sites`` entries are merged per site; a site given
    ``{}`` drops its entry). Validated before anything is written."""
    with named_locks(conn, network.config, [SITEMETA_LOCK]):
        current = read(conn, network).to_dict()
        if not isinstance(changes, dict):
            raise InputError("options must be an object")
        merged = {**current, **{k: v for k, v in changes.items() if k != "sites"}}
        sites = dict(current["sites"])
        for key, value in (changes.get("sites") or {}).items():
            sites[str(parse_id(key, "blog_id"))] = value
        merged["sites"] = sites
        options = _validate(network, merged)
        with transaction(conn) as cur:
            update_meta(cur, network.tables.sitemeta, "site_id", network.config.network_id, META_KEY,
                        phpserial.dumps(options.to_dict()))
    return options


def delete(cur: Any, network: Network) -> int:
    """Uninstall."""
    return cur.execute(f"DELETE FROM {network.tables.sitemeta} WHERE site_id = %s AND meta_key = %s",
                       (network.config.network_id, META_KEY))
