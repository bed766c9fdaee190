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
import re
from typing import Any

from . import inputs, phpserial
from .db import SITEMETA_LOCK, named_locks, transaction
from .errors import BrokenOption, InputError
from .roles import readable_site_roles
from .schema import Network, update_meta

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
    # What the stored row holds but cannot apply (a site deleted since: dropped by the next
    # save) or holds under an old rule (a role name: kept), reported on the health answer and
    # the options screen; never fatal.
    ignored: list[str] = field(default_factory=list)

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


FIELDS = ("sites", "excluded_roles", "allowed_roles", "missing_role", "scope", "unsync")


# What role names were before ``inputs.role`` (up to 100 characters, ``$`` letting a final
# newline through): a stored row may hold them. Read back, they are kept as they are (a person
# chose them: an excluded role must stay excluded) and reported; a save must give valid names.
_OLD_ROLE = re.compile(r"[A-Za-z0-9_-]{1,100}\n?")


def _role(value: Any, field: str, problems: list[str] | None) -> str:
    """``inputs.role``; reading the stored row (``problems`` given), an old rule's name is kept
    and reported instead of refused."""
    try:
        return inputs.role(value, field)
    except InputError:
        if problems is None or not isinstance(value, str) or not _OLD_ROLE.fullmatch(value):
            raise
        problems.append(f"{field} {value!r} is not a valid role name today: kept as stored; "
                        "give a valid name (1 to 64 letters, digits, _ and -) at the next save")
        return value


def _site_entry(value: Any, where: str, problems: list[str] | None = None) -> dict[str, Any]:
    """One site's ``{opt_out, role}``: ``opt_out`` true or false, ``role`` a role name or ``""``
    (none: the site's default_role)."""
    value = inputs.obj(value, where, ("opt_out", "role"))
    entry: dict[str, Any] = {}
    if inputs.optional(value, "opt_out", inputs.boolean, False, f"{where}.opt_out"):
        entry["opt_out"] = True
    role = value.get("role", "")
    if role != "":
        entry["role"] = _role(role, f"{where}.role", problems)
    return entry


def _roles(data: dict[str, Any], name: str, problems: list[str] | None) -> list[str]:
    field = f"options.{name}"
    values = inputs.array(data.get(name, []), field, 1000)
    return sorted({_role(v, f"{field}[{i}]", problems) for i, v in enumerate(values)})


def _validate(network: Network, data: Any, stored: bool = False) -> Options:
    """Turn a JSON-ish dict (HTTP, CLI, or the stored row when ``stored``) into checked Options.
    A site that does not exist is refused when asked for, and ignored (reported in
    ``Options.ignored``) when the stored row still names it."""
    data = inputs.obj(data, "options", FIELDS)
    sites: dict[int, dict[str, Any]] = {}
    ignored: list[str] = []
    for key, value in inputs.obj(data.get("sites", {}), "options.sites").items():
        blog_id = inputs.ident(key, "options.sites key (blog_id)", text=True)
        if stored and blog_id not in network.sites:  # reported once, whatever its entry holds
            ignored.append(f"site {blog_id} no longer exists in this network: its options are ignored")
            continue
        entry = _site_entry(value, f"options.sites.{blog_id}", ignored if stored else None)
        network.require_site(blog_id)
        if entry:
            sites[blog_id] = entry
    lists = {name: _roles(data, name, ignored if stored else None) for name in ("excluded_roles", "allowed_roles")}
    if lists["excluded_roles"] and lists["allowed_roles"]:
        raise InputError("give excluded_roles or allowed_roles, not both", "options.allowed_roles")
    missing = inputs.optional(data, "missing_role", inputs.choice, "skip", "options.missing_role", MISSING_ROLE)
    scope = inputs.optional(data, "scope", inputs.choice, "all", "options.scope", SCOPES)
    unsync = inputs.optional(data, "unsync", inputs.boolean, False, "options.unsync")
    return Options(sites, lists["excluded_roles"], lists["allowed_roles"], missing, scope, unsync, ignored)


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
    if isinstance(stored.get("sites"), dict):  # PHP's keys come back as ints
        stored["sites"] = {str(k): v for k, v in stored["sites"].items()}
    try:
        return _validate(network, stored, stored=True)
    except InputError as exc:  # a row no version of ours wrote: refuse to guess what it meant
        raise BrokenOption(f"sitemeta {META_KEY} holds what no options are: {exc}") from None


def problems(conn: Any, network: Network) -> list[str]:
    """What the stored options name but cannot apply: sites deleted since (``ignored``), and a
    site's role that no longer exists on that site (its users are then skipped and reported)."""
    options = network.options or Options()
    found = list(options.ignored)
    roled = {b: e["role"] for b, e in options.sites.items() if e.get("role")}
    if roled:
        site_roles, unreadable = readable_site_roles(conn, network.tables, sorted(roled))
        found += [f"site {b}: its roles cannot be read, so the role set for it cannot be checked"
                  for b in unreadable]
        found += [f"site {b}: the role set for it, {role!r}, does not exist there"
                  for b, role in sorted(roled.items()) if b in site_roles and not site_roles[b].exists(role)]
    return found


def write(conn: Any, network: Network, changes: Any) -> Options:
    """Replace the given top-level options (``sites`` entries are merged per site; a site given
    ``{}`` drops its entry). Validated before anything is written; entries the stored row held
    for sites deleted since are dropped."""
    changes = inputs.obj(changes, "options", FIELDS)
    with named_locks(conn, network.config, [SITEMETA_LOCK]):
        current = read(conn, network).to_dict()
        merged = {**current, **{k: v for k, v in changes.items() if k != "sites"}}
        sites = dict(current["sites"])
        for key, value in inputs.obj(changes.get("sites", {}), "options.sites").items():
            sites[str(inputs.ident(key, "options.sites key (blog_id)", text=True))] = value
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
