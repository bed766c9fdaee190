"""The WordPress Multisite schema as the sync sees it: table names, meta keys, the network.

Blog 1 uses the bare prefix (``wp_capabilities``, ``wp_options``); every other blog puts its id
in (``wp_2_capabilities``, ``wp_2_options``), exactly as ``wpdb::get_blog_prefix()`` does.
The prefix has been validated (``config.validate_prefix``) before it reaches any SQL here.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Iterable

from . import inputs, phpserial
from .config import Config, validate_prefix
from .errors import BrokenOption, ConfigError, InputError, NotFound

REMOVED_META_KEY = "wpmus_removed_from_blogs"  # the PHP plugin's own key, kept for migration


def parse_id(value: Any, what: str) -> int:
    """A user or blog id given to the engine: an int, or ASCII digits (the CLI's arguments, a
    route parameter); the rule is ``inputs.ident``'s."""
    return inputs.ident(value, what, text=True)


def parse_role(value: Any) -> str:
    """Role names are used as array keys and in SQL parameters: ``inputs.role``'s rule."""
    return inputs.role(value)


@dataclass(frozen=True)
class Tables:
    """Table and key names for one prefix."""

    prefix: str

    def __post_init__(self) -> None:
        validate_prefix(self.prefix)

    def usermeta_by_user(self, alias: str) -> str:
        """``usermeta`` read through its ``user_id`` index: inside a transaction that holds some
        users (``db.write_users``) a statement then locks only their rows, whatever plan the
        optimizer would pick (by ``meta_key`` it would lock every user's rows of that key)."""
        return f"{self.usermeta} {alias} FORCE INDEX (user_id)"

    @property
    def users(self) -> str:
        return f"`{self.prefix}users`"

    @property
    def usermeta(self) -> str:
        return f"`{self.prefix}usermeta`"

    @property
    def blogs(self) -> str:
        return f"`{self.prefix}blogs`"

    @property
    def site(self) -> str:
        return f"`{self.prefix}site`"

    @property
    def sitemeta(self) -> str:
        return f"`{self.prefix}sitemeta`"

    def blog_prefix(self, blog_id: int) -> str:
        """``wpdb::get_blog_prefix()``: blog 1 has no number."""
        return self.prefix if blog_id == 1 else f"{self.prefix}{int(blog_id)}_"

    def options(self, blog_id: int) -> str:
        return f"`{self.blog_prefix(blog_id)}options`"

    def cap_key(self, blog_id: int) -> str:
        return f"{self.blog_prefix(blog_id)}capabilities"

    def level_key(self, blog_id: int) -> str:
        return f"{self.blog_prefix(blog_id)}user_level"

    def roles_option(self, blog_id: int) -> str:
        return f"{self.blog_prefix(blog_id)}user_roles"

    def own_table(self, name: str) -> str:
        """Tables of our own (jobs, events) carry this marker so uninstall can find them."""
        return f"`{self.prefix}wpmsync_{name}`"


@dataclass(frozen=True)
class Site:
    """A row of ``{prefix}blogs``."""

    blog_id: int
    network_id: int
    domain: str
    path: str
    archived: bool
    deleted: bool
    spam: bool

    @property
    def live(self) -> bool:
        """What ``is_user_member_of_blog()`` accepts, and what the PHP plugin writes to."""
        return not (self.archived or self.deleted or self.spam)


@dataclass
class Network:
    """One network of the database: its sites, its super admins, and who belongs to it."""

    config: Config
    tables: Tables
    sites: dict[int, Site]
    other_sites: dict[int, Site]
    super_admins: list[str] = field(default_factory=list)
    foreign_admins: list[str] = field(default_factory=list)
    meta_key_collation: str = "utf8mb4_unicode_ci"
    options: Any = None  # wpmsync.options.Options, read by the Engine
    main_site_id: int = 1

    @classmethod
    def load(cls, conn: Any, config: Config) -> "Network":
        """Read sites and ``site_admins``: a few small queries, whatever the number of users."""
        tables = Tables(config.table_prefix)
        with conn.cursor() as cur:
            _require_multisite(cur, config, tables)
            cur.execute(f"SELECT COUNT(*) FROM {tables.site} WHERE id = %s", (config.network_id,))
            if cur.fetchone()[0] == 0:
                raise ConfigError(f"WPMSYNC_NETWORK_ID: network {config.network_id} does not exist in {tables.site}")
            cur.execute(
                f"SELECT blog_id, site_id, domain, path, archived, deleted, spam "
                f"FROM {tables.blogs} ORDER BY blog_id"
            )
            sites: dict[int, Site] = {}
            others: dict[int, Site] = {}
            for blog_id, site_id, domain, path, archived, deleted, spam in cur.fetchall():
                site = Site(int(blog_id), int(site_id), domain, path,
                            _flag(archived), _flag(deleted), _flag(spam))
                (sites if site.network_id == config.network_id else others)[site.blog_id] = site
            cur.execute(
                f"SELECT site_id, meta_value FROM {tables.sitemeta} WHERE meta_key = 'site_admins' "
                "ORDER BY meta_id"
            )
            admins: dict[int, list[str]] = {}
            for site_id, value in cur.fetchall():
                admins.setdefault(int(site_id), _super_admins(value))  # get_site_option: first row
            # Our temporary tables join on meta_key: give them the column's own collation.
            cur.execute(
                "SELECT collation_name FROM information_schema.columns WHERE table_schema = DATABASE() "
                "AND table_name = %s AND column_name = 'meta_key'", (f"{config.table_prefix}usermeta",))
            collation = (cur.fetchone() or ["utf8mb4_unicode_ci"])[0] or "utf8mb4_unicode_ci"
            # get_main_site_id(): the site at the network's own domain and path.
            cur.execute(f"SELECT b.blog_id FROM {tables.blogs} b JOIN {tables.site} s ON s.id = b.site_id "
                        "AND s.domain = b.domain AND s.path = b.path WHERE s.id = %s ORDER BY b.blog_id LIMIT 1",
                        (config.network_id,))
            main = cur.fetchone()
        if not re.fullmatch(r"[A-Za-z0-9_]+", collation):
            raise ConfigError(f"unexpected collation {collation!r} of {tables.usermeta}.meta_key")
        ours = admins.pop(config.network_id, [])
        foreign = sorted({login for logins in admins.values() for login in logins} - set(ours))
        return cls(config, tables, sites, others, ours, foreign, collation,
                   main_site_id=int(main[0]) if main else min(sites, default=1))

    def live_sites(self) -> list[Site]:
        return [s for s in self.sites.values() if s.live]

    def require_site(self, blog_id: Any) -> Site:
        """A site of this network, or a clear error (unknown, another network)."""
        blog_id = parse_id(blog_id, "blog_id")
        if blog_id in self.other_sites:
            raise NotFound(
                f"site {blog_id} belongs to network {self.other_sites[blog_id].network_id}, "
                f"not to network {self.config.network_id}"
            )
        if blog_id not in self.sites:
            raise NotFound(f"site {blog_id} does not exist")
        return self.sites[blog_id]

    def require_live_site(self, blog_id: Any, field: str = "blog_id") -> Site:
        """A live site of this network; ``field`` names the input in the refusal."""
        site = self.require_site(blog_id)
        if not site.live:
            flags = [n for n in ("archived", "deleted", "spam") if getattr(site, n)]
            raise InputError(f"site {site.blog_id} is {' and '.join(flags)}: no memberships are written there",
                             field)
        return site

    def require_user(self, conn: Any, user_id: Any) -> "User":
        """A user of this network, or a clear error."""
        user_id = parse_id(user_id, "user_id")
        with conn.cursor() as cur:
            cur.execute(
                f"SELECT ID, user_login, spam, deleted FROM {self.tables.users} WHERE ID = %s",
                (user_id,),
            )
            row = cur.fetchone()
            if row is None:
                raise NotFound(f"user {user_id} does not exist")
            user = User(int(row[0]), row[1], _flag(row[2]), _flag(row[3]),
                        row[1] in self.super_admins)
            if self.other_sites:
                keys = self.cap_keys(self.sites) + self.cap_keys(self.other_sites)
                cur.execute(
                    f"SELECT meta_key FROM {self.tables.usermeta} WHERE user_id = %s AND meta_key IN "
                    f"({', '.join(['%s'] * len(keys))})",
                    (user_id, *keys),
                )
                member_of = {r[0] for r in cur.fetchall()}
                foreign = bool(member_of) or user.login in self.foreign_admins
                if foreign and not member_of & set(self.cap_keys(self.sites)):
                    raise NotFound(f"user {user_id} belongs to another network, not to network "
                                   f"{self.config.network_id}")
        return user

    def cap_keys(self, blog_ids: Iterable[int]) -> list[str]:
        return [self.tables.cap_key(b) for b in blog_ids]

    def user_filter_sql(self, alias: str = "u") -> tuple[str, list[Any]]:
        """SQL (and parameters) for 'a user the sync may write': not spam or deleted, not a super
        admin, not a user who belongs only to other networks of this database (a member of their
        sites or one of their super admins, and a member of none of ours). A user who is a member
        of no site at all, like a user ``wpmu_create_user`` just made, belongs to every network."""
        sql = f"{alias}.spam = 0 AND {alias}.deleted = 0"
        params: list[Any] = []
        if self.super_admins:
            sql += f" AND {alias}.user_login NOT IN ({', '.join(['%s'] * len(self.super_admins))})"
            params += self.super_admins
        if self.other_sites:
            theirs = self.cap_keys(self.other_sites)
            ours = self.cap_keys(self.sites)
            foreign_admin = ""
            if self.foreign_admins:
                foreign_admin = f" OR {alias}.user_login IN ({', '.join(['%s'] * len(self.foreign_admins))})"
            sql += (
                f" AND (NOT (EXISTS (SELECT 1 FROM {self.tables.usermeta_by_user('o')} WHERE o.user_id = {alias}.ID"
                f" AND o.meta_key IN ({', '.join(['%s'] * len(theirs))})){foreign_admin})"
                f" OR EXISTS (SELECT 1 FROM {self.tables.usermeta_by_user('o')} WHERE o.user_id = {alias}.ID"
                f" AND o.meta_key IN ({', '.join(['%s'] * len(ours))})))"
            )
            params += theirs + self.foreign_admins + ours
        return sql, params


@dataclass(frozen=True)
class User:
    user_id: int
    login: str
    spam: bool
    deleted: bool
    super_admin: bool


def update_meta(cur: Any, table: str, owner: str, owner_id: int, key: str, value: str) -> None:
    """``update_user_meta`` / ``update_site_option`` on ``{prefix}usermeta`` (owner ``user_id``)
    or ``{prefix}sitemeta`` (owner ``site_id``): every row of the key is updated, and one is added
    when there is none. Callers hold the lock that keeps other writers of the key out."""
    if owner not in ("user_id", "site_id"):
        raise ValueError(f"not a meta owner column: {owner!r}")
    if cur.execute(f"SELECT 1 FROM {table} WHERE {owner} = %s AND meta_key = %s LIMIT 1", (owner_id, key)):
        cur.execute(f"UPDATE {table} SET meta_value = %s WHERE {owner} = %s AND meta_key = %s",
                    (value, owner_id, key))
    else:
        cur.execute(f"INSERT INTO {table} ({owner}, meta_key, meta_value) VALUES (%s, %s, %s)",
                    (owner_id, key, value))


def _flag(value: Any) -> bool:
    return bool(int(value or 0))


def _super_admins(raw: str | None) -> list[str]:
    """``site_admins`` is a serialized list of logins."""
    if not raw:
        return []
    try:
        value = phpserial.loads(raw)
    except phpserial.PHPSerialError as exc:
        raise BrokenOption(f"sitemeta site_admins cannot be read: {exc}") from None
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise BrokenOption("sitemeta site_admins is not a list of logins")
    return sorted(set(value.values()))


def _require_multisite(cur: Any, config: Config, tables: Tables) -> None:
    """Fail with one clear line when the database is not a WordPress Multisite with this prefix."""
    cur.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE() "
        "AND table_name IN (%s, %s, %s, %s, %s)",
        tuple(f"{config.table_prefix}{t}" for t in ("users", "usermeta", "blogs", "site", "sitemeta")),
    )
    found = {r[0] for r in cur.fetchall()}
    missing = [t for t in ("users", "usermeta", "blogs", "site", "sitemeta")
               if f"{config.table_prefix}{t}" not in found]
    if missing:
        raise ConfigError(
            f"database {config.db_name!r} has no WordPress Multisite tables with prefix "
            f"{config.table_prefix!r} (missing: {', '.join(config.table_prefix + t for t in missing)})"
        )
