"""Memberships: who joins which site with which rows, planned and written set-based.

A membership is two usermeta rows, ``{prefix}{N}_capabilities`` (a serialized caps array) and
``{prefix}{N}_user_level``, plus ``primary_blog`` / ``source_domain`` for a user who has no
``primary_blog`` yet: what ``add_user_to_blog()`` writes.

Work is cut into batches: all the job's sites × one user-id range. A batch reads the rows its
users already have once (through the ``user_id`` index: WordPress has no index on
(user_id, meta_key), so per-(user, site) probes would cost the user's whole meta each time),
works out the missing memberships in temporary tables, and writes them in a handful of
set-based statements, in one transaction, under the lock of its users' id buckets. It inserts
only rows that do not exist: rerunning it writes nothing. Joins name their order
(``STRAIGHT_JOIN``): driven from the batch's users or temporary tables, never from a key of
``usermeta`` (a plan the optimizer picked on stale statistics read every row of a key, for each
batch). Because a batch sees every site of
the job for its users, it also knows the lowest site each user joins, which is what WordPress's
loop makes the ``primary_blog``, whatever order the batches run in.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterable

import pymysql.cursors

from . import db, inputs, journal, outbox, removals, watermarks
from .db import transaction
from .journal import USERMETA, Change
from .roles import SiteRoles, caps_value, load_site_roles
from .schema import Network

MAX_USER_ID = 2**64 - 1
SAMPLE = 5
MAX_SPAN_BUCKETS = 128  # a batch's id range covers at most this many lock buckets
# TEMPORARY tables: per connection, gone when it closes.
KEYS, HAVE, PENDING, PRIMARY = "wpmsync_keys", "wpmsync_have", "wpmsync_pending", "wpmsync_primary"
NEW = "wpmsync_new"  # the rows a batch inserts, gathered first (MySQL reads a temporary table once per query)
SOURCES = "wpmsync_sources"
CAPS, LEVEL, PRIMARY_BLOG, SOURCE_DOMAIN, SOURCE_SITE = 1, 2, 3, 4, 5  # kinds of rows in KEYS
# WordPress 7.1 (``$wp_db_version`` 61833) made ``is_user_member_of_blog()`` require the caps
# value to be an array; before, any caps row (``''``, ``garbage``) made a member.
STRICT_MEMBERSHIP_DB_VERSION = 61833
# ``is_array(get_user_meta(..., true))`` in SQL: what unserializes to a PHP array starts with
# ``a:<n>:{`` and ends with ``}`` (a value that looks so yet does not unserialize counts too).
# (Case-sensitive whatever the table's character set: converted, then a binary collation.)
_IS_ARRAY = ("(CONVERT(LEFT(TRIM({v}), 24) USING utf8mb4) COLLATE utf8mb4_bin REGEXP '^a:[0-9]+:[{{]' "
             "AND RIGHT(TRIM({v}), 1) = '}}')")


def is_array_sql(value: str) -> str:
    return _IS_ARRAY.format(v=value)


def wp_db_version(cur: Any, network: Network) -> int | None:
    """The main site's ``db_version`` option: the ``$wp_db_version`` of the WordPress code that
    installed or last upgraded it (None when missing or not a number)."""
    cur.execute(f"SELECT option_value FROM {network.tables.options(1)} WHERE option_name = 'db_version'")
    row = cur.fetchone()
    try:
        return int(row[0]) if row is not None else None
    except (TypeError, ValueError):
        return None


def strict_membership(cur: Any, network: Network) -> bool:
    """Whether the running WordPress counts only an array caps value as a membership (7.1 on;
    unknown: the newest rule)."""
    version = wp_db_version(cur, network)
    return version is None or version >= STRICT_MEMBERSHIP_DB_VERSION


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
    """One unit of work: these sites × users ``first_user..last_user``."""

    blog_ids: tuple[int, ...]
    first_user: int = 1
    last_user: int = MAX_USER_ID
    force: bool = False


@dataclass
class Outcome:
    """What an operation did (or, for a plan, would do)."""

    dry_run: bool = False
    job_id: str | None = None  # the change's id in the undo journal (None: nothing was written)
    added: int = 0
    roles_set: int = 0
    primary_blogs: int = 0
    removals_cleared: int = 0
    sites: dict[int, dict[str, Any]] = field(default_factory=dict)
    skipped: list[dict[str, Any]] = field(default_factory=list)
    # Who was written, for WordPress's cache cleaning: one batch's worth, never merged (a sync of
    # many batches must not hold every user id in memory); not part of the report.
    touched_users: set[int] = field(default_factory=set, repr=False)
    touched_sites: set[int] = field(default_factory=set, repr=False)
    touched_roles: set[int] = field(default_factory=set, repr=False)  # sites whose roles option changed

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
        self.job_id = self.job_id or other.job_id
        self.roles_set += other.roles_set
        self.primary_blogs += other.primary_blogs
        self.removals_cleared += other.removals_cleared
        self.skipped.extend(s for s in other.skipped if s not in self.skipped)
        return self

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Outcome":
        """Back from ``to_dict`` (a queued plan keeps its running total as JSON)."""
        return cls(dry_run=data["dry_run"], job_id=data["job_id"], added=data["added"],
                   roles_set=data["roles_set"], primary_blogs=data["primary_blogs"],
                   removals_cleared=data["removals_cleared"],
                   sites={int(k): v for k, v in data["sites"].items()}, skipped=list(data["skipped"]))

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        del data["touched_users"], data["touched_sites"], data["touched_roles"]
        data["sites"] = {str(k): v for k, v in sorted(self.sites.items())}
        return data


# ---------------------------------------------------------------- targets and batches

def resolve_targets(network: Network, site_roles: dict[int, SiteRoles],
                    outcome: Outcome) -> list[Target]:
    """The role each site gives: the role the network options set for it, else its
    ``default_role`` (subscriber when unset or not a role there). A site that opted out, or whose
    role does not exist or may not be synced, is skipped and reported."""
    tables = network.tables
    options = network.options
    targets = []
    for blog_id, roles in sorted(site_roles.items()):
        site = network.sites.get(blog_id)
        if site is None or not site.live:
            outcome.skip("site is not a live site of this network", blog_id=blog_id)
            continue
        if options is not None and options.opted_out(blog_id):
            outcome.skip("site opted out of syncing", blog_id=blog_id)
            continue
        scope_refused = _scope_refuses_target(network, blog_id)
        if scope_refused:
            outcome.skip(scope_refused, blog_id=blog_id)
            continue
        role = options.site_role(blog_id) if options is not None else ""
        if role and not roles.exists(role):
            outcome.skip(f"the role set for this site, {role!r}, does not exist on it", blog_id=blog_id)
            continue
        role = role or roles.default_role()
        if role is None:
            outcome.skip(f"neither default_role {roles.default_role_option!r} nor subscriber "
                         "exists on this site", blog_id=blog_id)
            continue
        refused = options.role_refused(role) if options is not None else None
        if refused:
            outcome.skip(refused, blog_id=blog_id)
            continue
        caps = {role: True}
        targets.append(Target(blog_id, role, tables.cap_key(blog_id), caps_value(caps),
                              tables.level_key(blog_id), str(roles.user_level(caps))))
    return targets


def _scope_refuses_target(network: Network, blog_id: int) -> str | None:
    scope = network.options.scope if network.options is not None else "all"
    is_main = blog_id == network.main_site_id
    if scope == "main_to_subsites" and is_main:
        return "scope main_to_subsites: the main site receives no synced users"
    if scope == "subsites_to_main" and not is_main:
        return "scope subsites_to_main: only the main site receives synced users"
    return None


def source_sites(network: Network) -> list[int] | None:
    """Whose members are synced: None for everyone (scope ``all``), else the main site or the
    live subsites that did not opt out."""
    scope = network.options.scope if network.options is not None else "all"
    if scope == "main_to_subsites":
        return [network.main_site_id]
    if scope == "subsites_to_main":
        return [s.blog_id for s in network.live_sites() if s.blog_id != network.main_site_id
                and not network.options.opted_out(s.blog_id)]
    return None


def users_per_batch(batch_size: int, sites: int) -> int:
    """``batch_size`` counts memberships (user × site pairs) per batch."""
    return max(1, batch_size // max(1, sites))


def user_ranges(conn: Any, network: Network, per_batch: int) -> list[tuple[int, int]]:
    """Cut the user ids into ranges of about ``per_batch`` users, on lock-bucket boundaries (so
    batches of a job never share a lock), each spanning at most ``MAX_SPAN_BUCKETS`` buckets.
    Python holds one number per batch, never the user list."""
    width = db.LOCK_BUCKET
    ranges: list[tuple[int, int]] = []
    start = count = None
    with conn.cursor(pymysql.cursors.SSCursor) as cur:
        cur.execute(f"SELECT FLOOR(ID / %s) AS bucket, COUNT(*) FROM {network.tables.users} "
                    "GROUP BY bucket ORDER BY bucket", (width,))
        last = None
        for bucket, users in cur:
            bucket, users = int(bucket), int(users)
            if start is not None and (count >= per_batch or bucket - start >= MAX_SPAN_BUCKETS):
                ranges.append((start * width, (last + 1) * width - 1))
                start = None
            if start is None:
                start, count = bucket, 0
            count += users
            last = bucket
        if start is not None:
            ranges.append((start * width, (last + 1) * width - 1))
    return ranges


def step_end(conn: Any, network: Network, first_user: int, last_user: int, users: int) -> tuple[int, int]:
    """Where a step of ``users`` users starting at ``first_user`` ends, within the batch's
    ``last_user``: (last user id of the step, users in it). One read of the ``users`` primary
    key, ``users`` entries long (none for a range narrower than a step: a hook's one user)."""
    if last_user - first_user < users:
        return last_user, last_user - first_user + 1
    with conn.cursor() as cur:
        cur.execute(f"SELECT ID FROM {network.tables.users} WHERE ID BETWEEN %s AND %s ORDER BY ID "
                    "LIMIT 1 OFFSET %s", (first_user, last_user, users))
        row = cur.fetchone()
        if row is not None:
            return int(row[0]) - 1, users
        cur.execute(f"SELECT COUNT(*) FROM {network.tables.users} WHERE ID BETWEEN %s AND %s",
                    (first_user, last_user))
        return last_user, int(cur.fetchone()[0])


def make_batches(blog_ids: Iterable[int], ranges: list[tuple[int, int]], force: bool) -> list[Batch]:
    sites = tuple(sorted(set(blog_ids)))
    return [Batch(sites, lo, hi, force) for lo, hi in ranges]


# ---------------------------------------------------------------- the pending memberships

def _temporary_tables(network: Network) -> dict[str, str]:
    """The batch's temporary tables (this connection's own; DDL on them does not commit)."""
    collation = network.meta_key_collation
    return {
        KEYS: f"(meta_key VARCHAR(191) COLLATE {collation} NOT NULL PRIMARY KEY, blog_id BIGINT NOT NULL, "
              "kind TINYINT NOT NULL, value LONGTEXT NOT NULL, domain VARCHAR(255) NOT NULL DEFAULT '', "
              "KEY kind_blog (kind, blog_id))",
        # has_caps: a membership (as the running WordPress counts it); caps_rows: any caps row
        HAVE: "(user_id BIGINT UNSIGNED NOT NULL, blog_id BIGINT NOT NULL, has_caps TINYINT NOT NULL, "
              "has_level TINYINT NOT NULL, has_primary TINYINT NOT NULL, primary_rows TINYINT NOT NULL, "
              "source_rows TINYINT NOT NULL, in_source TINYINT NOT NULL, caps_rows TINYINT NOT NULL, "
              "PRIMARY KEY (user_id, blog_id))",
        SOURCES: "(user_id BIGINT UNSIGNED NOT NULL PRIMARY KEY)",
        # has_caps: a caps row that is no membership (not an array, WordPress 7.1): updated in place
        PENDING: "(user_id BIGINT UNSIGNED NOT NULL, blog_id BIGINT NOT NULL, has_level TINYINT NOT NULL, "
                 "has_caps TINYINT NOT NULL DEFAULT 0, "
                 "PRIMARY KEY (blog_id, user_id), KEY user_id (user_id))",
        # in the order the batch's one INSERT writes (no sort there, whose rows carry the values)
        NEW: "(user_id BIGINT UNSIGNED NOT NULL, blog_id BIGINT NOT NULL, part TINYINT NOT NULL, "
             "kind TINYINT NOT NULL, PRIMARY KEY (user_id, blog_id, part))",
        PRIMARY: "(user_id BIGINT UNSIGNED NOT NULL PRIMARY KEY, blog_id BIGINT NOT NULL, "
                 "primary_rows TINYINT NOT NULL, source_rows TINYINT NOT NULL, domain VARCHAR(255) NOT NULL DEFAULT '')",
    }


def _fresh(cur: Any, network: Network, name: str) -> None:
    """An empty temporary table: dropped and made again, far faster than deleting its rows
    (TRUNCATE would commit the batch's transaction)."""
    cur.execute(f"DROP TEMPORARY TABLE IF EXISTS {name}")
    cur.execute(f"CREATE TEMPORARY TABLE {name} {_temporary_tables(network)[name]}")


def _load_keys(cur: Any, network: Network, targets: list[Target], sources: list[int] | None) -> None:
    """The meta keys the batch reads and writes, with the value each site gives (and its domain,
    for ``source_domain``: read here, so the batch's transaction never locks a ``blogs`` row);
    and, with a directional scope, the caps keys of the source sites (disjoint from the targets')."""
    rows: list[Any] = [("primary_blog", 0, PRIMARY_BLOG, "", ""), ("source_domain", 0, SOURCE_DOMAIN, "", "")]
    for t in targets:
        domain = network.sites[t.blog_id].domain
        rows += [(t.cap_key, t.blog_id, CAPS, t.cap_value, domain), (t.level_key, t.blog_id, LEVEL, t.level_value, "")]
    rows += [(network.tables.cap_key(b), 0, SOURCE_SITE, "", "") for b in sources or ()]
    _fresh(cur, network, KEYS)
    cur.execute(f"INSERT INTO {KEYS} (meta_key, blog_id, kind, value, domain) VALUES "
                + ", ".join(["(%s, %s, %s, %s, %s)"] * len(rows)), [x for row in rows for x in row])


def _collect(cur: Any, network: Network, targets: list[Target], first_user: int, last_user: int,
             excluded: set[tuple[int, int]], waiting: set[int] = frozenset()) -> int:
    """Fill PENDING with every (user, site) that should get a membership: a user the sync may
    write, not yet a member there (as ``is_user_member_of_blog`` counts it: a caps row, even an
    empty array; from WordPress 7.1 on only a row whose value is an array, see
    ``strict_membership``), not recorded as removed from it, with no WordPress
    event still waiting in the outbox (``waiting``). Two statements over the users' own rows,
    whatever the number of sites."""
    sources = source_sites(network)
    _load_keys(cur, network, targets, sources)
    _fresh(cur, network, HAVE)
    member = f"k.kind = {CAPS} AND {is_array_sql('m.meta_value')}" if strict_membership(cur, network) \
        else f"k.kind = {CAPS}"
    cur.execute(
        f"INSERT INTO {HAVE} SELECT m.user_id, k.blog_id, MAX({member}), MAX(k.kind = {LEVEL}), "
        f"MAX(k.kind = {PRIMARY_BLOG} AND m.meta_value NOT IN ('', '0')), MAX(k.kind = {PRIMARY_BLOG}), "
        f"MAX(k.kind = {SOURCE_DOMAIN}), MAX(k.kind = {SOURCE_SITE}), MAX(k.kind = {CAPS}) "
        f"FROM {network.tables.usermeta_by_user('m')} "
        f"STRAIGHT_JOIN {KEYS} k ON k.meta_key = m.meta_key WHERE m.user_id BETWEEN %s AND %s "
        "GROUP BY m.user_id, k.blog_id",
        (first_user, last_user),
    )
    source_join = ""
    if sources is not None:  # a directional scope: only members of the source sites are synced
        _fresh(cur, network, SOURCES)
        cur.execute(f"INSERT INTO {SOURCES} SELECT user_id FROM {HAVE} WHERE blog_id = 0 AND in_source = 1")
        source_join = f"JOIN {SOURCES} src ON src.user_id = u.ID "
    usql, uparams = network.user_filter_sql("u")
    sql = (f"INSERT INTO {PENDING} (user_id, blog_id, has_level, has_caps) SELECT u.ID, k.blog_id, "
           "COALESCE(h.has_level, 0), COALESCE(h.caps_rows, 0) "
           f"FROM {network.tables.users} u {source_join}JOIN {KEYS} k ON k.kind = {CAPS} "
           f"LEFT JOIN {HAVE} h ON h.user_id = u.ID AND h.blog_id = k.blog_id "
           f"WHERE u.ID BETWEEN %s AND %s AND COALESCE(h.has_caps, 0) = 0 AND {usql}")
    params: list[Any] = [first_user, last_user, *uparams]
    if waiting:
        sql += f" AND u.ID NOT IN ({', '.join(['%s'] * len(waiting))})"
        params += sorted(waiting)
    pairs = sorted(excluded)
    if pairs:
        sql += f" AND (u.ID, k.blog_id) NOT IN ({', '.join(['(%s, %s)'] * len(pairs))})"
        params += [x for pair in pairs for x in pair]
    _fresh(cur, network, PENDING)
    return cur.execute(sql, params)


def _count_pending(cur: Any, outcome: Outcome) -> None:
    cur.execute(f"SELECT blog_id, COUNT(*), SUBSTRING_INDEX(GROUP_CONCAT(user_id ORDER BY user_id), ',', "
                f"{SAMPLE}) FROM {PENDING} GROUP BY blog_id")
    for blog_id, count, sample in cur.fetchall():
        outcome.count_added(int(blog_id), int(count), [int(x) for x in sample.split(",")])


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


def _note_waiting(outcome: Outcome, waiting: set[int]) -> None:
    for user_id in sorted(waiting):
        outcome.skip("WordPress events of this user are still in the outbox: synced once they are applied",
                     user_id=user_id)


def _note_removed(outcome: Outcome, excluded: set[tuple[int, int]], blog_ids: set[int]) -> None:
    for user_id, blog_id in sorted(excluded):
        if blog_id in blog_ids:
            outcome.skip("removed from this site on purpose (use force to add back)",
                         blog_id=blog_id, user_id=user_id)


# ---------------------------------------------------------------- plan (dry run)

def preview(conn: Any, network: Network, blog_ids: Iterable[int], ranges: list[tuple[int, int]], *,
            force: bool = False, progress: Callable[[int, int], None] | None = None) -> Outcome:
    """What a sync of these sites × these user ranges would add, per site; writes nothing
    (only this connection's temporary tables)."""
    outcome = Outcome(dry_run=True)
    targets = _load_targets(conn, network, blog_ids, outcome)
    if not targets:
        return outcome
    with conn.cursor() as cur:
        for done, (lo, hi) in enumerate(ranges, 1):
            excluded = set() if force else removals.removed_pairs(cur, network, lo, hi)
            waiting = set() if force else outbox.users_waiting(cur, network, lo, hi)
            if _collect(cur, network, targets, lo, hi, excluded, waiting):
                _count_pending(cur, outcome)
            if not force:
                _note_removed(outcome, excluded, {t.blog_id for t in targets})
                _note_waiting(outcome, waiting)
            if progress:
                progress(done, len(ranges))
    return outcome


def sites_missing_members(conn: Any, network: Network, blog_ids: Iterable[int],
                          ranges: list[tuple[int, int]],
                          each_range: Callable[[], None] = lambda: None) -> list[int]:
    """Sites where at least one user should be a member and is not (respecting removals).
    A few statements per user range, however many sites; it reads the rows of the ranges' users
    once: every membership row for the full pass's ranges, only the changed users' (and their
    near neighbours') for the incremental pass's tight ones (``reconcile.tight_ranges``).
    ``each_range`` runs after each range (the timer renews its lease there)."""
    outcome = Outcome(dry_run=True)
    targets = _load_targets(conn, network, blog_ids, outcome)
    drifted: set[int] = set()
    with conn.cursor() as cur:
        for lo, hi in ranges:
            if _collect(cur, network, targets, lo, hi, removals.removed_pairs(cur, network, lo, hi),
                        outbox.users_waiting(cur, network, lo, hi)):
                cur.execute(f"SELECT DISTINCT blog_id FROM {PENDING}")
                drifted |= {int(r[0]) for r in cur.fetchall()}
            each_range()
    return sorted(drifted)


# ---------------------------------------------------------------- one batch

def apply_batch(conn: Any, network: Network, batch: Batch,
                site_roles: dict[int, SiteRoles] | None = None,
                record: Callable[[Any, Outcome], None] | None = None,
                change: Change | None = None, applying: frozenset[int] = frozenset()) -> Outcome:
    """Write the memberships of one batch in one transaction; idempotent. ``applying``: users
    whose outbox events this very call is applying (``delivery.deliver``): their own rows there
    do not hold them back.

    The transaction holds the batch's users (``db.write_users``: their named locks). After
    collecting the pending pairs (see ``_collect``), ``_write_pending`` inserts every new row
    (caps, user_level, and ``primary_blog`` / ``source_domain`` for users who had none: the
    lowest site they join here) in one statement, gives way where WordPress got there first,
    then updates the few rows changed in place. The number of statements does not depend
    on the number of users or sites. ``record`` runs inside the same transaction (a job notes the
    batch done there, so a redelivered batch counts once). Every row written is journaled under
    ``change`` in the same transaction (two more set-based statements), and so are the removal
    records a forced sync clears.
    """
    change = change or Change.new("sync")
    base = Outcome()
    targets = _load_targets(conn, network, batch.blog_ids, base, site_roles)
    if not targets:
        if record is not None:
            with transaction(conn) as cur:
                record(cur, base)
        return base

    def write(cur: Any) -> Outcome:
        outcome = Outcome(skipped=list(base.skipped))
        # Read inside the transaction that holds the users: no writer of ours changes them now.
        removed = removals.removed_pairs(cur, network, batch.first_user, batch.last_user)
        waiting = set() if batch.force else \
            outbox.users_waiting(cur, network, batch.first_user, batch.last_user) - applying
        excluded = set() if batch.force else removed
        cur.execute(f"SELECT COALESCE(MAX(umeta_id), 0) FROM {network.tables.usermeta}")
        before = int(cur.fetchone()[0])  # what _collect sees; rows after it are news (_give_way)
        if _collect(cur, network, targets, batch.first_user, batch.last_user, excluded, waiting):
            _write_pending(cur, network, batch, change, outcome, before)
            if batch.force and removed:  # a forced manual sync clears the record of what it re-added
                cur.execute(f"SELECT user_id, blog_id FROM {PENDING}")
                readded = sorted({(int(u), int(b)) for u, b in cur.fetchall()} & removed)
                for user_id in sorted({u for u, _ in readded}):
                    removals.change_in(cur, network, user_id, remove={b for u, b in readded if u == user_id},
                                       by=change)
                outcome.removals_cleared = len(readded)
        if not batch.force:
            _note_removed(outcome, removed, {t.blog_id for t in targets})
            _note_waiting(outcome, waiting)
        if record is not None:
            record(cur, outcome)
        return outcome

    return db.write_users(conn, network.config, batch.first_user, batch.last_user, write)


def _write_pending(cur: Any, network: Network, batch: Batch, change: Change, outcome: Outcome,
                   before: int) -> None:
    """Write what ``_collect`` left in PENDING, journaled; count it in ``outcome``.

    Beside WordPress's own writers (autocommitted statements at REPEATABLE READ, no locks of
    their own) the order matters. Every new row (caps, user_level, ``primary_blog``,
    ``source_domain``) goes in ONE ``INSERT ... SELECT`` ordered by user: a WordPress statement
    that meets one of our new rows waits for our commit, and nothing we write afterwards lands
    in an index gap it holds (several inserts, one after another, did: WordPress's waiting
    UPDATE became the deadlock victim, its write lost). Rows WordPress committed meanwhile for
    the same (user, site) win: ours are taken out again before the commit. Only the rare
    updates in place (a user_level row left without its caps, an empty ``primary_blog``) come
    after the insert."""
    um = network.tables.usermeta
    primary = _plan_primary_blogs(cur, network)
    _fresh(cur, network, NEW)
    # part: 0 caps, 1 user_level, 2 primary_blog, 3 source_domain; kind: the KEYS row (found by its
    # index) that gives the key and value in the one INSERT below, which reads each temporary
    # table once, as MySQL requires.
    cur.execute(f"INSERT INTO {NEW} SELECT user_id, blog_id, 0, {CAPS} FROM {PENDING} WHERE has_caps = 0 "
                "ORDER BY user_id, blog_id")
    cur.execute(f"INSERT INTO {NEW} SELECT user_id, blog_id, 1, {LEVEL} FROM {PENDING} WHERE has_level = 0 "
                "ORDER BY user_id, blog_id")
    if primary:
        cur.execute(f"INSERT INTO {NEW} SELECT user_id, blog_id, 2, {CAPS} FROM {PRIMARY} WHERE primary_rows = 0")
        cur.execute(f"INSERT INTO {NEW} SELECT user_id, blog_id, 3, {CAPS} FROM {PRIMARY} WHERE source_rows = 0")
    inserted = cur.execute(
        f"INSERT INTO {um} (user_id, meta_key, meta_value) SELECT n.user_id, "
        "CASE n.part WHEN 2 THEN 'primary_blog' WHEN 3 THEN 'source_domain' ELSE k.meta_key END, "
        "CASE n.part WHEN 2 THEN CAST(n.blog_id AS CHAR) WHEN 3 THEN k.domain ELSE k.value END "
        f"FROM {NEW} n STRAIGHT_JOIN {KEYS} k ON k.kind = n.kind AND k.blog_id = n.blog_id "
        "ORDER BY n.user_id, n.blog_id, n.part")
    cur.execute("SELECT LAST_INSERT_ID()")
    first = int(cur.fetchone()[0]) if inserted else 0
    ours = _our_rows(cur, batch, first, inserted)
    if inserted:
        _give_way(cur, network, batch, before, first, ours)
    # update_user_meta: a user_level row left without its caps row, or (WordPress 7.1) a caps row
    # whose value is no array, is updated in place (rare: looked for first, so the usual batch
    # does not read its users' rows again).
    cur.execute(f"SELECT COALESCE(MAX(has_level), 0), COALESCE(MAX(has_caps), 0) FROM {PENDING}")
    stray_levels, stray_caps = (int(x) for x in cur.fetchone())
    if stray_levels:
        _update_stray_rows(cur, network, change, LEVEL, "has_level")
    if stray_caps:
        _update_stray_rows(cur, network, change, CAPS, "has_caps")
    outcome.primary_blogs = _update_primary_blogs(cur, network, change) if primary else 0
    if inserted:  # the rows inserted above that are still ours, exactly
        cur.execute(f"SELECT MAX(m.umeta_id) FROM {um} m WHERE {ours}")
        last = cur.fetchone()[0]
        if last is not None:  # the incremental reconcile looks around our own rows
            watermarks.note_own_rows(cur, network, first, int(last))
        journal.record_select(
            cur, network, change,
            f"%s, m.umeta_id, m.user_id, k.blog_id, m.meta_key, NULL, m.meta_value FROM {um} m STRAIGHT_JOIN "
            f"{KEYS} k ON k.meta_key = m.meta_key AND k.kind IN ({CAPS}, {LEVEL}, {PRIMARY_BLOG}, {SOURCE_DOMAIN}) "
            f"WHERE {ours}", (USERMETA,))
    outcome.job_id = change.job_id
    _count_pending(cur, outcome)
    cur.execute(f"SELECT DISTINCT user_id FROM {PENDING}")
    outcome.touched_users = {int(r[0]) for r in cur.fetchall()}
    outcome.touched_sites = set(outcome.sites)


def _update_stray_rows(cur: Any, network: Network, change: Change, kind: int, flag: str) -> None:
    """Pending pairs whose user_level row (``kind`` LEVEL, ``flag`` has_level) or caps row that
    is no membership (CAPS, has_caps) is already there get it set, every row of the key, as
    ``update_user_meta`` does."""
    stray = (f"{PENDING} t STRAIGHT_JOIN {KEYS} k ON k.blog_id = t.blog_id AND k.kind = {int(kind)} "
             f"STRAIGHT_JOIN {network.tables.usermeta_by_user('m')} ON m.user_id = t.user_id "
             "AND m.meta_key = k.meta_key")
    journal.record_select(
        cur, network, change,
        f"%s, m.umeta_id, m.user_id, t.blog_id, m.meta_key, m.meta_value, k.value FROM {stray} "
        f"WHERE t.{flag} = 1 AND NOT (CAST(m.meta_value AS BINARY) <=> CAST(k.value AS BINARY))", (USERMETA,))
    cur.execute(f"UPDATE {stray} SET m.meta_value = k.value WHERE t.{flag} = 1")


def _our_rows(cur: Any, batch: Batch, first: int, count: int) -> str:
    """A condition on ``m.umeta_id`` naming the rows of our INSERT (callers also require a key
    we write). With ``innodb_autoinc_lock_mode`` 0 or 1 (MariaDB's default) an ``INSERT ...
    SELECT`` holds the table's AUTO-INC lock to its end, so its ids are exactly the ``count``
    from ``LAST_INSERT_ID()``. With 2 (MySQL 8's default) another insert may take ids in between:
    then ours are the new rows of our keys for the batch's users (one that WordPress inserted for
    the same user and key at that very moment cannot be told apart; the reconcile's repair keeps
    the lowest of two)."""
    if not count:
        return "FALSE"
    cur.execute("SELECT @@innodb_autoinc_lock_mode")
    if int(cur.fetchone()[0]) <= 1:
        return f"m.umeta_id BETWEEN {int(first)} AND {int(first) + int(count) - 1}"
    return f"m.umeta_id >= {int(first)} AND m.user_id BETWEEN {int(batch.first_user)} AND {int(batch.last_user)}"


def _give_way(cur: Any, network: Network, batch: Batch, before: int, first: int, ours: str) -> None:
    """WordPress added a membership (or a ``primary_blog``) for one of our users after we
    looked (the highest id then was ``before``) and before we inserted (from ``first`` on): keep
    WordPress's rows, take ours out (both rows of the membership; ``primary_blog`` with
    ``source_domain``), so we never make a duplicate nor pair our user_level with its caps. Only
    the rows inserted in that window are read (a primary-key range: usually none). Deleting our
    own new rows takes no lock anyone else holds."""
    cur.execute(f"SELECT DISTINCT m.user_id, k.blog_id, k.kind FROM {network.tables.usermeta} m "
                f"STRAIGHT_JOIN {KEYS} k ON k.meta_key = m.meta_key WHERE m.umeta_id > %s AND m.umeta_id < %s "
                f"AND m.user_id BETWEEN %s AND %s AND k.kind IN ({CAPS}, {PRIMARY_BLOG})",
                (before, first, batch.first_user, batch.last_user))
    raced = cur.fetchall()
    pairs = [(int(u), int(b)) for u, b, kind in raced if kind == CAPS]
    users = sorted({int(u) for u, _, kind in raced if kind == PRIMARY_BLOG})
    lost = 0
    if pairs:
        lost += cur.execute(f"DELETE FROM {PENDING} WHERE (user_id, blog_id) IN ("
                            + ", ".join(["(%s, %s)"] * len(pairs)) + ")", [x for pair in pairs for x in pair])
    if users:
        lost += cur.execute(f"DELETE FROM {PRIMARY} WHERE primary_rows = 0 AND user_id IN ("
                            + ", ".join(["%s"] * len(users)) + ")", users)
    if not lost:
        return
    # Ours, of a pair no longer pending (or a primary_blog no longer planned): deleted by id.
    cur.execute(
        f"DELETE m FROM {network.tables.usermeta} m STRAIGHT_JOIN {KEYS} k ON k.meta_key = m.meta_key WHERE {ours} "
        f"AND ((k.kind IN ({CAPS}, {LEVEL}) AND NOT EXISTS (SELECT 1 FROM {PENDING} t WHERE t.user_id = m.user_id "
        f"AND t.blog_id = k.blog_id)) OR (k.kind IN ({PRIMARY_BLOG}, {SOURCE_DOMAIN}) AND NOT EXISTS "
        f"(SELECT 1 FROM {PRIMARY} p WHERE p.user_id = m.user_id)))")


def _plan_primary_blogs(cur: Any, network: Network) -> int:
    """``add_user_to_blog``: a user whose ``primary_blog`` is empty gets the site it joins, and
    its ``source_domain``; in WordPress's loop that is the lowest blog id it joins. PRIMARY
    holds them (the domain read with the keys: no ``blogs`` row is locked)."""
    _fresh(cur, network, PRIMARY)
    count = cur.execute(
        f"INSERT INTO {PRIMARY} (user_id, blog_id, primary_rows, source_rows) SELECT t.user_id, MIN(t.blog_id), "
        f"COALESCE(MAX(h.primary_rows), 0), COALESCE(MAX(h.source_rows), 0) FROM {PENDING} t "
        f"LEFT JOIN {HAVE} h ON h.user_id = t.user_id AND h.blog_id = 0 "
        "WHERE COALESCE(h.has_primary, 0) = 0 GROUP BY t.user_id")
    if count:
        cur.execute(f"UPDATE {PRIMARY} p JOIN {KEYS} k ON k.blog_id = p.blog_id AND k.kind = {CAPS} "
                    "SET p.domain = k.domain")
    return count


def _update_primary_blogs(cur: Any, network: Network, change: Change) -> int:
    """The empty ``primary_blog`` / ``source_domain`` rows a planned user already has are
    updated in place (journaled); the missing ones were inserted with the memberships."""
    new_value = "IF(m.meta_key = 'primary_blog', CAST(p.blog_id AS CHAR), p.domain)"
    leftover = f"{PRIMARY} p STRAIGHT_JOIN {network.tables.usermeta_by_user('m')} ON m.user_id = p.user_id"
    theirs = "m.meta_key IN ('primary_blog', 'source_domain') AND (p.primary_rows = 1 OR p.source_rows = 1)"
    journal.record_select(
        cur, network, change,
        f"%s, m.umeta_id, m.user_id, 0, m.meta_key, m.meta_value, {new_value} FROM {leftover} "
        f"WHERE {theirs} AND NOT (CAST(m.meta_value AS BINARY) <=> CAST({new_value} AS BINARY))", (USERMETA,))
    cur.execute(f"UPDATE {leftover} SET m.meta_value = {new_value} WHERE {theirs}")
    cur.execute(f"SELECT COUNT(*) FROM {PRIMARY}")
    return int(cur.fetchone()[0])


def require_blog_ids(network: Network, blog_ids: Iterable[Any]) -> list[int]:
    """Validate a selection of sites: a non-empty list, each a live site of this network."""
    return sorted({network.require_live_site(b, "blog_ids").blog_id for b in inputs.ids(blog_ids, "blog_ids", text=True)})
