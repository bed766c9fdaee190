"""Memberships: who joins which site with which rows, planned and written set-based.

A membership is two usermeta rows, ``{prefix}{N}_capabilities`` (a serialized caps array) and
``{prefix}{N}_user_level``, plus ``primary_blog`` / ``source_domain`` for a user who has no
``primary_blog`` yet: what ``add_user_to_blog()`` writes. Work is cut into batches (sites ×
user-id range); a batch is a handful of statements in one transaction, under the named lock of
each of its sites, and inserts only rows that do not exist: rerunning it writes nothing.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterable

from . import removals
from .db import PRIMARY_BLOG_LOCK, named_locks, site_lock, transaction
from .errors import InputError
from .roles import SiteRoles, caps_value, load_site_roles
from .schema import Network

MAX_USER_ID = 2**64 - 1
SAMPLE = 5
PENDING = "wpmsync_pending"  # a TEMPORARY table: per connection, gone when it closes


@dataclass(frozen=True)
class Target:
    """What one site gives a synced user: its role and the two rows that make the membership."""

    blog_id: int
    role: str
    cap_key: str
    cap_value: str
    level_key: str
    level_value: str


@dataclass(frozen=True)
class Batch:
    """One unit of work: these sites × users ``first_user..last_user``. JSON-able for a queue."""

    blog_ids: tuple[int, ...]
    first_user: int = 1
    last_user: int = MAX_USER_ID
    force: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"blog_ids": list(self.blog_ids), "first_user": self.first_user,
                "last_user": self.last_user, "force": self.force}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Batch":
        return cls(tuple(int(b) for b in data["blog_ids"]), int(data["first_user"]),
                   int(data["last_user"]), bool(data.get("force", False)))


@dataclass
class Outcome:
    """What an operation did (or, for a plan, would do)."""

    dry_run: bool = False
    added: int = 0
    roles_set: int = 0
    primary_blogs: int = 0
    removals_cleared: int = 0
    sites: dict[int, dict[str, Any]] = field(default_factory=dict)
    skipped: list[dict[str, Any]] = field(default_factory=list)

    def site(self, blog_id: int) -> dict[str, Any]:
        return self.sites.setdefault(blog_id, {"added": 0, "roles_set": 0, "user_ids": []})

    def count_added(self, blog_id: int, count: int, sample: Iterable[int]) -> None:
        entry = self.site(blog_id)
        entry["added"] += count
        entry["user_ids"] = sorted(set(entry["user_ids"]) | set(sample))[:SAMPLE]
        self.added += count

    def skip(self, reason: str, **where: Any) -> None:
        self.skipped.append({**where, "reason": reason})

    def merge(self, other: "Outcome") -> "Outcome":
        for blog_id, entry in other.sites.items():
            self.count_added(blog_id, entry["added"], entry["user_ids"])
            self.site(blog_id)["roles_set"] += entry["roles_set"]
        self.roles_set += other.roles_set
        self.primary_blogs += other.primary_blogs
        self.removals_cleared += other.removals_cleared
        self.skipped.extend(s for s in other.skipped if s not in self.skipped)
        return self

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["sites"] = {str(k): v for k, v in sorted(self.sites.items())}
        return data


# ---------------------------------------------------------------- targets and batches

def resolve_targets(network: Network, site_roles: dict[int, SiteRoles],
                    outcome: Outcome) -> list[Target]:
    """The role each site gives: its ``default_role`` (subscriber when unset or not a role there).
    A site with neither role cannot take a membership we could vouch for: skipped, reported."""
    tables = network.tables
    targets = []
    for blog_id, roles in sorted(site_roles.items()):
        site = network.sites.get(blog_id)
        if site is None or not site.live:
            outcome.skip("site is not a live site of this network", blog_id=blog_id)
            continue
        role = roles.default_role()
        if role is None:
            outcome.skip(f"neither default_role {roles.default_role_option!r} nor subscriber "
                         "exists on this site", blog_id=blog_id)
            continue
        caps = {role: True}
        targets.append(Target(blog_id, role, tables.cap_key(blog_id), caps_value(caps),
                              tables.level_key(blog_id), str(roles.user_level(caps))))
    return targets


def user_ranges(conn: Any, network: Network, batch_size: int) -> list[tuple[int, int]]:
    """Cut the users table into id ranges of ``batch_size`` users each (computed in SQL: Python
    holds one number per batch, never the user list)."""
    with conn.cursor() as cur:
        cur.execute(
            f"SELECT ID FROM (SELECT ID, ROW_NUMBER() OVER (ORDER BY ID) AS rn "
            f"FROM {network.tables.users}) numbered WHERE MOD(rn - 1, %s) = 0 ORDER BY ID",
            (batch_size,),
        )
        starts = [int(r[0]) for r in cur.fetchall()]
    if not starts:
        return []
    ends = [s - 1 for s in starts[1:]] + [MAX_USER_ID]
    return [(1 if i == 0 else s, e) for i, (s, e) in enumerate(zip(starts, ends))]


def make_batches(blog_ids: Iterable[int], ranges: list[tuple[int, int]], force: bool) -> list[Batch]:
    """Site-major order: each site fills range by range."""
    return [Batch((b,), lo, hi, force) for b in sorted(set(blog_ids)) for lo, hi in ranges]


# ---------------------------------------------------------------- SQL pieces

def _targets_sql(targets: list[Target]) -> tuple[str, list[Any]]:
    """The targets as a derived table ``(blog_id, cap_key, cap_value, level_key, level_value)``."""
    rows, params = [], []
    for t in targets:
        rows.append("SELECT %s AS blog_id, %s AS cap_key, %s AS cap_value, %s AS level_key, "
                    "%s AS level_value")
        params += [t.blog_id, t.cap_key, t.cap_value, t.level_key, t.level_value]
    return "(" + " UNION ALL ".join(rows) + ")", params


def _candidates_sql(network: Network, targets: list[Target], first_user: int, last_user: int,
                    excluded: set[tuple[int, int]], extra: str = "",
                    with_level: bool = False) -> tuple[str, list[Any]]:
    """``SELECT user_id, blog_id`` of every (user, target site) that should get a membership:
    a user the sync may write, not yet a member there (a caps row, even an empty array, is a
    membership, as ``is_user_member_of_blog`` counts it), not recorded as removed from it.
    ``with_level`` adds ``has_level``: whether a stray user_level row exists already."""
    tsql, params = _targets_sql(targets)
    usql, uparams = network.user_filter_sql("u")
    um = network.tables.usermeta
    level = (f", EXISTS (SELECT 1 FROM {um} l WHERE l.user_id = u.ID AND l.meta_key = s.level_key) "
             "AS has_level") if with_level else ""
    sql = (
        f"SELECT u.ID AS user_id, s.blog_id AS blog_id{level} FROM {network.tables.users} u JOIN {tsql} s "
        f"WHERE u.ID BETWEEN %s AND %s AND {usql} "
        f"AND NOT EXISTS (SELECT 1 FROM {um} c WHERE c.user_id = u.ID AND c.meta_key = s.cap_key)"
    )
    params += [first_user, last_user, *uparams]
    pairs = sorted(excluded)
    if pairs:
        sql += f" AND (u.ID, s.blog_id) NOT IN ({', '.join(['(%s, %s)'] * len(pairs))})"
        params += [x for pair in pairs for x in pair]
    return sql + extra, params


def _lacks_primary_blog_sql(network: Network) -> str:
    """``! get_user_meta( $id, 'primary_blog', true )``: no row, or an empty / 0 value."""
    return (f" AND NOT EXISTS (SELECT 1 FROM {network.tables.usermeta} p WHERE p.user_id = u.ID "
            "AND p.meta_key = 'primary_blog' AND p.meta_value NOT IN ('', '0'))")


def _ensure_pending(cur: Any) -> None:
    cur.execute(f"CREATE TEMPORARY TABLE IF NOT EXISTS {PENDING} (user_id BIGINT UNSIGNED NOT NULL, "
                "blog_id BIGINT NOT NULL, has_level TINYINT NOT NULL DEFAULT 0, "
                "PRIMARY KEY (blog_id, user_id))")


def _load_targets(conn: Any, network: Network, blog_ids: Iterable[int], outcome: Outcome,
                  site_roles: dict[int, SiteRoles] | None = None) -> list[Target]:
    """Targets of these sites; ``site_roles`` read once per job can be handed in."""
    live = [b for b in sorted(set(blog_ids)) if b in network.sites and network.sites[b].live]
    for b in sorted(set(blog_ids) - set(live)):
        outcome.skip("site is not a live site of this network", blog_id=b)
    known = site_roles or {}
    missing = [b for b in live if b not in known]
    roles = {**{b: known[b] for b in live if b in known},
             **(load_site_roles(conn, network.tables, missing) if missing else {})}
    return resolve_targets(network, roles, outcome)


# ---------------------------------------------------------------- plan (dry run)

def preview(conn: Any, network: Network, blog_ids: Iterable[int], *, force: bool = False,
            first_user: int = 1, last_user: int = MAX_USER_ID,
            progress: Callable[[int, int], None] | None = None) -> Outcome:
    """What a sync of these sites (× these users) would add, per site; writes nothing."""
    outcome = Outcome(dry_run=True)
    targets = _load_targets(conn, network, blog_ids, outcome)
    with conn.cursor() as cur:
        excluded = set() if force else removals.removed_pairs(cur, network, first_user, last_user)
        for done, target in enumerate(targets, 1):
            sql, params = _candidates_sql(network, [target], first_user, last_user, excluded)
            cur.execute(f"SELECT COUNT(*), SUBSTRING_INDEX(GROUP_CONCAT(user_id ORDER BY user_id), ',', "
                        f"{SAMPLE}) FROM ({sql}) pending", params)
            count, sample = cur.fetchone()
            if count:
                outcome.count_added(target.blog_id, int(count), [int(x) for x in sample.split(",")])
            if progress:
                progress(done, len(targets))
        _note_removed(outcome, excluded, {t.blog_id for t in targets})
    return outcome


def _note_removed(outcome: Outcome, excluded: set[tuple[int, int]], blog_ids: set[int]) -> None:
    for user_id, blog_id in sorted(excluded):
        if blog_id in blog_ids:
            outcome.skip("removed from this site on purpose (use force to add back)",
                         blog_id=blog_id, user_id=user_id)


# ---------------------------------------------------------------- primary_blog, decided once

def assign_primary_blogs(conn: Any, network: Network, blog_ids: Iterable[int], *,
                         force: bool = False, first_user: int = 1, last_user: int = MAX_USER_ID,
                         site_roles: dict[int, SiteRoles] | None = None) -> Outcome:
    """Give ``primary_blog`` + ``source_domain`` to users who lack one and are about to join.

    WordPress's loop gives them the first site it adds them to: the lowest blog id among the
    job's sites where they are not yet a member. Deciding it here, once, before the batches
    fan out, makes it the same whatever order the batches run in. Sites are visited in blog-id
    order and the loop stops as soon as no user in the range lacks a ``primary_blog``.
    """
    outcome = Outcome()
    targets = _load_targets(conn, network, blog_ids, outcome, site_roles)
    um = network.tables.usermeta
    usql, uparams = network.user_filter_sql("u")
    with named_locks(conn, network.config, [PRIMARY_BLOG_LOCK]):
        with conn.cursor() as cur:
            _ensure_pending(cur)
        for target in targets:
            with transaction(conn) as cur:
                cur.execute(
                    f"SELECT 1 FROM {network.tables.users} u WHERE u.ID BETWEEN %s AND %s AND {usql}"
                    + _lacks_primary_blog_sql(network) + " LIMIT 1",
                    [first_user, last_user, *uparams],
                )
                if cur.fetchone() is None:
                    break
                excluded = set() if force else removals.removed_pairs(cur, network, first_user, last_user)
                sql, params = _candidates_sql(network, [target], first_user, last_user, excluded,
                                              _lacks_primary_blog_sql(network))
                cur.execute(f"DELETE FROM {PENDING}")
                if not cur.execute(f"INSERT INTO {PENDING} (user_id, blog_id) {sql}", params):
                    continue
                domain = network.sites[target.blog_id].domain
                # update_user_meta: existing rows are updated, missing ones added.
                cur.execute(
                    f"UPDATE {um} m JOIN {PENDING} t ON t.user_id = m.user_id "
                    "SET m.meta_value = IF(m.meta_key = 'primary_blog', %s, %s) "
                    "WHERE m.meta_key IN ('primary_blog', 'source_domain')",
                    (str(target.blog_id), domain),
                )
                for key, value in (("primary_blog", str(target.blog_id)), ("source_domain", domain)):
                    count = cur.execute(
                        f"INSERT INTO {um} (user_id, meta_key, meta_value) SELECT t.user_id, %s, %s "
                        f"FROM {PENDING} t WHERE NOT EXISTS (SELECT 1 FROM {um} p "
                        "WHERE p.user_id = t.user_id AND p.meta_key = %s) ORDER BY t.user_id",
                        (key, value, key),
                    )
                cur.execute(f"SELECT COUNT(*) FROM {PENDING}")
                outcome.primary_blogs += int(cur.fetchone()[0])
    return outcome


# ---------------------------------------------------------------- one batch

def apply_batch(conn: Any, network: Network, batch: Batch,
                site_roles: dict[int, SiteRoles] | None = None,
                record: Callable[[Any, Outcome], None] | None = None) -> Outcome:
    """Write the memberships of one batch in one transaction; idempotent.

    Statements: read the removal records of the range, collect the pending (user, site) pairs
    in a temporary table (noting which already have a stray user_level row), then three
    set-based writes (those user_level rows updated, caps rows inserted, the other user_level
    rows inserted). Their number does not depend on the number of users. ``record`` runs inside
    the same transaction (a job notes the batch done there, so a redelivered batch counts once).
    """
    outcome = Outcome()
    targets = _load_targets(conn, network, batch.blog_ids, outcome, site_roles)
    if not targets:
        if record is not None:
            with transaction(conn) as cur:
                record(cur, outcome)
        return outcome
    um = network.tables.usermeta
    tsql, tparams = _targets_sql(targets)
    with conn.cursor() as cur:
        _ensure_pending(cur)
    with named_locks(conn, network.config, [site_lock(t.blog_id) for t in targets]):
        with transaction(conn) as cur:
            removed = removals.removed_pairs(cur, network, batch.first_user, batch.last_user)
            excluded = set() if batch.force else removed
            sql, params = _candidates_sql(network, targets, batch.first_user, batch.last_user, excluded,
                                          with_level=True)
            cur.execute(f"DELETE FROM {PENDING}")
            if cur.execute(f"INSERT INTO {PENDING} (user_id, blog_id, has_level) {sql}", params):
                # A user_level row left without a caps row is updated, as update_user_meta would.
                cur.execute(
                    f"UPDATE {um} m JOIN {PENDING} t ON t.user_id = m.user_id AND t.has_level = 1 JOIN {tsql} s "
                    "ON s.blog_id = t.blog_id AND m.meta_key = s.level_key SET m.meta_value = s.level_value",
                    tparams,
                )
                added = cur.execute(
                    f"INSERT INTO {um} (user_id, meta_key, meta_value) SELECT t.user_id, s.cap_key, s.cap_value "
                    f"FROM {PENDING} t JOIN {tsql} s ON s.blog_id = t.blog_id ORDER BY t.blog_id, t.user_id",
                    tparams,
                )
                cur.execute(
                    f"INSERT INTO {um} (user_id, meta_key, meta_value) SELECT t.user_id, s.level_key, s.level_value "
                    f"FROM {PENDING} t JOIN {tsql} s ON s.blog_id = t.blog_id WHERE t.has_level = 0 "
                    "ORDER BY t.blog_id, t.user_id",
                    tparams,
                )
                if len(targets) == 1:
                    cur.execute(f"SELECT user_id FROM {PENDING} ORDER BY user_id LIMIT {SAMPLE}")
                    outcome.count_added(targets[0].blog_id, added, [int(r[0]) for r in cur.fetchall()])
                else:
                    cur.execute(
                        f"SELECT blog_id, COUNT(*), SUBSTRING_INDEX(GROUP_CONCAT(user_id ORDER BY user_id), "
                        f"',', {SAMPLE}) FROM {PENDING} GROUP BY blog_id"
                    )
                    for blog_id, count, sample in cur.fetchall():
                        outcome.count_added(int(blog_id), int(count), [int(x) for x in sample.split(",")])
            readded: list[tuple[int, int]] = []
            if batch.force and removed:
                cur.execute(f"SELECT user_id, blog_id FROM {PENDING}")
                readded = sorted({(int(u), int(b)) for u, b in cur.fetchall()} & removed)
            if not batch.force:
                _note_removed(outcome, removed, {t.blog_id for t in targets})
            if record is not None:
                record(cur, outcome)
    for user_id, blog_id in readded:  # a forced manual sync clears the record of what it re-added
        removals.forget(conn, network, user_id, blog_id)
        outcome.removals_cleared += 1
    return outcome


def require_blog_ids(network: Network, blog_ids: Iterable[Any]) -> list[int]:
    """Validate a selection of sites: non-empty, each a live site of this network."""
    blog_ids = list(blog_ids)
    if not blog_ids:
        raise InputError("no sites selected: give at least one blog_id")
    return sorted({network.require_live_site(b).blog_id for b in blog_ids})


def sites_missing_members(conn: Any, network: Network, blog_ids: Iterable[int],
                          site_roles: dict[int, SiteRoles] | None = None) -> list[int]:
    """Sites where at least one user should be a member and is not (respecting removals):
    one ``LIMIT 1`` probe per site, so a network in sync costs a query per site, not per user."""
    outcome = Outcome(dry_run=True)
    targets = _load_targets(conn, network, blog_ids, outcome, site_roles)
    drifted = []
    with conn.cursor() as cur:
        excluded = removals.removed_pairs(cur, network, 1, MAX_USER_ID)
        for target in targets:
            sql, params = _candidates_sql(network, [target], 1, MAX_USER_ID, excluded)
            cur.execute(sql + " LIMIT 1", params)
            if cur.fetchone() is not None:
                drifted.append(target.blog_id)
    return drifted


def role_differences(conn: Any, network: Network, sample: int = 20) -> dict[str, Any]:
    """Users whose capabilities differ between the live sites they belong to (one query).
    Reported only: which role is right is a person's call, not ours."""
    keys = network.cap_keys(s.blog_id for s in network.live_sites())
    if not keys:
        return {"users": 0, "user_ids": []}
    with conn.cursor() as cur:
        cur.execute(
            f"SELECT user_id FROM {network.tables.usermeta} WHERE meta_key IN ({', '.join(['%s'] * len(keys))}) "
            "GROUP BY user_id HAVING COUNT(DISTINCT meta_value) > 1 ORDER BY user_id",
            keys,
        )
        ids = [int(r[0]) for r in cur.fetchall()]
    return {"users": len(ids), "user_ids": ids[:sample]}
