"""Benchmark: wpmsync's sync-all against WordPress's own loop and against plain set-based SQL.

What it measures, in one run on the local MariaDB (127.0.0.1:3306, root, empty password), with
real WordPress (Debian's ``wordpress`` package driven through ``wpfixture``):

1. builds a network with WordPress core: ``--sites`` subsites x ``--users`` users (default
   20 x 1,000, ~20 s), in a database ``wpmsbench_src``;
2. copies it (``wpfixture.copy_database``) and, on separate copies:

   a. **engine**: ``Engine(Config.from_env({}, db_name=..., batch_size=N)).sync_sites(None)``
      (sync-all: every live site incl. the main site; every non-super-admin user joins each one).
      Memberships = ``outcome.added``. Also: the number of SQL statements the engine sent
      (``SHOW SESSION STATUS LIKE 'Questions'`` on ``engine.conn`` before/after, minus the
      cost of the SHOW itself) and the time of each batch (``engine.run_batch`` wrapped);
   b. **WordPress's loop**: ``wp.sync_like_plugin(blog_ids=<first --wp-sites subsites>)``, i.e.
      ``add_user_to_blog()`` per (user, site), in one PHP process. Its wall time minus the PHP /
      WordPress boot, measured as the median time of three empty ``wp.flush_cache()`` calls.
      Memberships = its return value. By default the loop runs as WordPress runs it, with
      autocommit (every ``update_user_meta`` its own commit); ``--wp-one-transaction`` wraps
      the whole loop in one transaction (closer to the PHP plugin's ~1 s write groups, ~1.6x
      faster than plain WordPress);
   c. **plain SQL**: per site, one ``INSERT ... SELECT`` for the caps rows and one for the
      ``user_level`` rows, plus one each for ``source_domain`` / ``primary_blog`` of users
      lacking a primary blog, with pymysql, one transaction per site. Only these writes are
      timed (reading site options and ``site_admins`` beforehand is not). Memberships =
      inserted caps rows.

   (a) and (c) run ``--repeat`` times (default 3), each on a fresh copy, alternating; the
   median run is reported (timings of ~0.5 s are noisy on a shared machine);

3. checks correctness: the membership rows (caps / user_level / primary_blog / source_domain)
   of the engine copy equal those of the plain-SQL copy, and, for the sites WordPress's loop
   synced, the caps / user_level rows of WordPress equal the engine's;
4. prints the three rates (memberships per second) and two ratios with their targets:
   engine / WordPress loop >= 100x and engine / plain SQL >= 0.5 (PASS/FAIL each);
5. measures the engine's Python peak memory (``tracemalloc``, peak during ``sync_sites``) on
   its own copy (so the timed run is not slowed by tracing); ``--memory-check`` also builds a
   network with half the users and prints both peaks (they should be about the same: the
   engine never holds the user list). ``--profile`` runs the engine once more on its own copy
   with every statement timed and prints the slowest statement templates;
6. **undo**: on one more copy, syncs, then times ``engine.undo`` of that sync and checks that
   the whole of ``usermeta`` (ids included) is back as it was.

Every database it creates starts with ``wpmsbench_`` and is dropped at the end (also on error).
The exit status is 0 whatever the targets say, unless ``--strict`` (then 1 on a FAIL or a
correctness mismatch).

Run it from anywhere (it puts the repository root on sys.path; needs ``scripts/setup.sh`` done once)::

    .venv/bin/python bench/bench.py                 # or: python3 bench/bench.py
    .venv/bin/python bench/bench.py --sites 20 --users 1000 --wp-sites 3 --batch-size 50000
    .venv/bin/python bench/bench.py --memory-check --profile --strict
"""
from __future__ import annotations

import argparse
import re
import statistics
import sys
import time
import tracemalloc
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import pymysql  # noqa: E402
import pymysql.cursors  # noqa: E402

from wpfixture import WordPress, build_network, copy_database, drop_database  # noqa: E402
from wpfixture import connect as fx_connect  # noqa: E402
from wpmsync import Config, Engine  # noqa: E402

DB_PREFIX = "wpmsbench_"
PREFIX = "wp_"
TARGET_VS_WP = 100.0
TARGET_VS_SQL = 0.5
MEMBERSHIP_SQL = (
    "SELECT user_id, meta_key, meta_value FROM {p}usermeta WHERE meta_key LIKE %s "
    "OR meta_key LIKE %s OR meta_key IN ('primary_blog', 'source_domain')"
)


# ---------------------------------------------------------------- helpers

def log(message: str) -> None:
    print(f"  .. {message}", file=sys.stderr, flush=True)


def rate(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else float("inf")


def fmt_bytes(n: int) -> str:
    return f"{n / 1024 / 1024:.2f} MiB"


def config_for(db_name: str, batch_size: int | None) -> Config:
    return Config.from_env({}, db_name=db_name, table_prefix=PREFIX, batch_size=batch_size)


def questions(conn: Any) -> int:
    with conn.cursor() as cur:
        cur.execute("SHOW SESSION STATUS LIKE 'Questions'")
        return int(cur.fetchone()[1])


def membership_rows(db_name: str) -> Counter[tuple[int, str, str]]:
    """Every membership row as a multiset (a duplicate row counts twice)."""
    conn = fx_connect(db_name)
    try:
        with conn.cursor() as cur:
            cur.execute(MEMBERSHIP_SQL.replace("{p}", PREFIX),
                        (PREFIX.replace("_", "\\_") + "%capabilities", "%user\\_level"))
            return Counter((int(u), k, v) for u, k, v in cur.fetchall())
    finally:
        conn.close()


def cap_key(blog_id: int) -> str:
    return f"{PREFIX}capabilities" if blog_id == 1 else f"{PREFIX}{blog_id}_capabilities"


def level_key(blog_id: int) -> str:
    return f"{PREFIX}user_level" if blog_id == 1 else f"{PREFIX}{blog_id}_user_level"


def options_table(blog_id: int) -> str:
    return f"`{PREFIX}options`" if blog_id == 1 else f"`{PREFIX}{blog_id}_options`"


def diff_count(a: Counter[Any], b: Counter[Any]) -> int:
    return sum(((a - b) + (b - a)).values())


# ---------------------------------------------------------------- (a) the engine

@dataclass
class EngineRun:
    seconds: float
    added: int
    primary_blogs: int
    statements: int
    batches: int
    batch_seconds: list[float] = field(default_factory=list)
    peak_bytes: int | None = None
    base_bytes: int | None = None
    job_id: str | None = None


def run_engine(db_name: str, batch_size: int | None, *, trace_memory: bool = False) -> EngineRun:
    engine = Engine(config_for(db_name, batch_size))
    try:
        batch_times: list[float] = []
        run_batch = engine.run_batch

        def timed_batch(batch: Any, *args: Any, **kwargs: Any) -> Any:  # time each batch of _sync
            t = time.perf_counter()
            try:
                return run_batch(batch, *args, **kwargs)
            finally:
                batch_times.append(time.perf_counter() - t)

        engine.run_batch = timed_batch  # type: ignore[method-assign]

        # Calibrate: how much one SHOW STATUS itself adds to Questions.
        q0 = questions(engine.conn)
        q1 = questions(engine.conn)
        show_cost = q1 - q0
        base = peak = None
        if trace_memory:
            tracemalloc.start()
            tracemalloc.reset_peak()
            base = tracemalloc.get_traced_memory()[0]
        start = time.perf_counter()
        outcome = engine.sync_sites(None)
        seconds = time.perf_counter() - start
        if trace_memory:
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
        q2 = questions(engine.conn)
        return EngineRun(seconds, outcome.added, outcome.primary_blogs, q2 - q1 - show_cost,
                         len(batch_times), batch_times, peak, base, outcome.job_id)
    finally:
        engine.close()


def usermeta_fingerprint(db_name: str) -> tuple[int, int]:
    """(rows, checksum) of the whole usermeta table, umeta_id included."""
    conn = fx_connect(db_name)
    try:
        with conn.cursor() as cur:
            cur.execute(f"SELECT COUNT(*), COALESCE(SUM(CRC32(CONCAT_WS('|', umeta_id, user_id, meta_key, "
                        f"meta_value))), 0) FROM {PREFIX}usermeta")
            rows, crc = cur.fetchone()
            return int(rows), int(crc)
    finally:
        conn.close()


def run_undo(db_name: str, batch_size: int | None) -> tuple[float, int, bool]:
    """Sync, then undo the sync: (undo seconds, rows restored, usermeta back exactly as before)."""
    before = usermeta_fingerprint(db_name)
    synced = run_engine(db_name, batch_size)
    engine = Engine(config_for(db_name, batch_size))
    try:
        start = time.perf_counter()
        result = engine.undo(synced.job_id)
        seconds = time.perf_counter() - start
    finally:
        engine.close()
    return seconds, result.restored, usermeta_fingerprint(db_name) == before


def plan_in_sync(db_name: str, batch_size: int | None) -> tuple[float, int, int]:
    """The cost of checking a network that is already in sync: (seconds, statements, missing)."""
    engine = Engine(config_for(db_name, batch_size))
    try:
        q0 = questions(engine.conn)
        q1 = questions(engine.conn)
        start = time.perf_counter()
        outcome = engine.sync_sites(None, dry_run=True)
        seconds = time.perf_counter() - start
        return seconds, questions(engine.conn) - q1 - (q1 - q0), outcome.added
    finally:
        engine.close()


class TimingCursor(pymysql.cursors.Cursor):
    """A cursor that records (statement template, seconds) of every execute."""

    log: list[tuple[str, float]] = []

    def execute(self, query: str, args: Any = None) -> int:
        start = time.perf_counter()
        try:
            return super().execute(query, args)
        finally:
            TimingCursor.log.append((query, time.perf_counter() - start))


def profile_engine(db_name: str, batch_size: int | None, top: int = 8) -> list[str]:
    """Run the engine with every statement timed; return report lines, slowest templates first."""
    engine = Engine(config_for(db_name, batch_size))
    try:
        TimingCursor.log = []
        engine.conn.cursorclass = TimingCursor
        start = time.perf_counter()
        engine.sync_sites(None)
        total = time.perf_counter() - start
        engine.conn.cursorclass = pymysql.cursors.Cursor
    finally:
        engine.close()
    per: dict[str, list[float]] = {}
    for query, secs in TimingCursor.log:
        key = re.sub(r"\s+", " ", query)
        key = re.sub(r"(SELECT %s AS blog_id.*?level_value)( UNION ALL \1)*", r"<targets>", key)
        per.setdefault(key[:150], []).append(secs)
    in_sql = sum(s for _, s in TimingCursor.log)
    lines = [f"profile: {len(TimingCursor.log)} statements, {in_sql:.3f} s in execute() of "
             f"{total:.3f} s total ({total - in_sql:.3f} s Python outside execute)"]
    for key, secs in sorted(per.items(), key=lambda kv: -sum(kv[1]))[:top]:
        lines.append(f"  {sum(secs):7.3f} s  n={len(secs):4d}  max={max(secs) * 1000:7.1f} ms  {key}")
    return lines


# ---------------------------------------------------------------- (c) plain SQL

@dataclass
class SqlRun:
    seconds: float
    caps_rows: int
    level_rows: int
    primary_rows: int
    source_rows: int
    statements: int


def _serialized_caps(role: str) -> str:
    return f'a:1:{{s:{len(role.encode())}:"{role}";b:1;}}'


def _role_level(roles_option: str, role: str) -> int:
    """The highest ``level_N`` in the role's capabilities (read straight off the serialized
    roles option; enough for core's roles)."""
    head = f's:{len(role.encode())}:"{role}";a:'
    at = roles_option.find(head)
    if at < 0:
        raise RuntimeError(f"role {role!r} not found in the roles option")
    caps_at = roles_option.find('s:12:"capabilities";a:', at)
    block = roles_option[caps_at:roles_option.find("}", caps_at)]
    levels = [int(n) for n in re.findall(r's:\d+:"level_(\d+)";b:1;', block)]
    return max(levels, default=0)


def run_plain_sql(db_name: str) -> SqlRun:
    conn = fx_connect(db_name, autocommit=False)
    try:
        with conn.cursor() as cur:
            cur.execute(f"SELECT blog_id, domain FROM {PREFIX}blogs WHERE site_id = 1 AND archived = 0 "
                        "AND deleted = 0 AND spam = 0 ORDER BY blog_id")
            sites = [(int(b), d) for b, d in cur.fetchall()]
            cur.execute(f"SELECT meta_value FROM {PREFIX}sitemeta WHERE site_id = 1 "
                        "AND meta_key = 'site_admins' ORDER BY meta_id LIMIT 1")
            row = cur.fetchone()
            supers = re.findall(r's:\d+:"([^"]*)";', row[0] if row else "")
            targets = []
            for blog_id, _ in sites:
                roles_name = f"{PREFIX}user_roles" if blog_id == 1 else f"{PREFIX}{blog_id}_user_roles"
                cur.execute(f"SELECT option_name, option_value FROM {options_table(blog_id)} "
                            "WHERE option_name IN ('default_role', %s)", (roles_name,))
                opts = dict(cur.fetchall())
                role = opts.get("default_role") or "subscriber"
                if f'"{role}"' not in opts[roles_name]:
                    role = "subscriber"
                targets.append((blog_id, _serialized_caps(role), str(_role_level(opts[roles_name], role))))
        conn.commit()

        who = "u.spam = 0 AND u.deleted = 0"
        who_params: list[Any] = []
        if supers:
            who += f" AND u.user_login NOT IN ({', '.join(['%s'] * len(supers))})"
            who_params = list(supers)
        lacks_primary = (f" AND NOT EXISTS (SELECT 1 FROM {PREFIX}usermeta p WHERE p.user_id = u.ID "
                         "AND p.meta_key = 'primary_blog')")
        first_blog, first_domain = sites[0]
        counts = Counter()
        statements = 0
        start = time.perf_counter()
        with conn.cursor() as cur:
            # primary_blog / source_domain: the first (lowest) site, for users lacking one.
            counts["source"] += cur.execute(
                f"INSERT INTO {PREFIX}usermeta (user_id, meta_key, meta_value) "
                f"SELECT u.ID, 'source_domain', %s FROM {PREFIX}users u WHERE {who}{lacks_primary} "
                f"AND NOT EXISTS (SELECT 1 FROM {PREFIX}usermeta s WHERE s.user_id = u.ID "
                "AND s.meta_key = 'source_domain') ORDER BY u.ID",
                [first_domain, *who_params])
            counts["primary"] += cur.execute(
                f"INSERT INTO {PREFIX}usermeta (user_id, meta_key, meta_value) "
                f"SELECT u.ID, 'primary_blog', %s FROM {PREFIX}users u WHERE {who}{lacks_primary} "
                "ORDER BY u.ID",
                [str(first_blog), *who_params])
            conn.commit()
            statements += 3
            for blog_id, caps, level in targets:
                not_member = (f" AND NOT EXISTS (SELECT 1 FROM {PREFIX}usermeta c WHERE c.user_id = u.ID "
                              "AND c.meta_key = %s)")
                # user_level first: afterwards the caps row would make everyone a member.
                counts["level"] += cur.execute(
                    f"INSERT INTO {PREFIX}usermeta (user_id, meta_key, meta_value) "
                    f"SELECT u.ID, %s, %s FROM {PREFIX}users u WHERE {who}{not_member} "
                    f"AND NOT EXISTS (SELECT 1 FROM {PREFIX}usermeta l WHERE l.user_id = u.ID "
                    "AND l.meta_key = %s) ORDER BY u.ID",
                    [level_key(blog_id), level, *who_params, cap_key(blog_id), level_key(blog_id)])
                counts["caps"] += cur.execute(
                    f"INSERT INTO {PREFIX}usermeta (user_id, meta_key, meta_value) "
                    f"SELECT u.ID, %s, %s FROM {PREFIX}users u WHERE {who}{not_member} ORDER BY u.ID",
                    [cap_key(blog_id), caps, *who_params, cap_key(blog_id)])
                conn.commit()
                statements += 3
        seconds = time.perf_counter() - start
        return SqlRun(seconds, counts["caps"], counts["level"], counts["primary"], counts["source"],
                      statements)
    finally:
        conn.close()


# ---------------------------------------------------------------- (b) WordPress's loop

@dataclass
class WpRun:
    wall: float
    boot: float
    added: int
    blog_ids: list[int]

    @property
    def seconds(self) -> float:
        return max(self.wall - self.boot, 1e-9)


def run_wordpress(wp: WordPress, blog_ids: list[int]) -> WpRun:
    boots = []
    for _ in range(3):
        t = time.perf_counter()
        wp.flush_cache()
        boots.append(time.perf_counter() - t)
    start = time.perf_counter()
    added = int(wp.sync_like_plugin(blog_ids=blog_ids, network_id=1))
    wall = time.perf_counter() - start
    return WpRun(wall, statistics.median(boots), added, blog_ids)


# ---------------------------------------------------------------- orchestration

class Databases:
    """Names handed out under ``wpmsbench_``; every one is dropped by :meth:`drop_all`."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def name(self, suffix: str) -> str:
        name = DB_PREFIX + suffix
        self.names.append(name)
        return name

    def drop_all(self) -> None:
        for name in self.names:
            try:
                drop_database(name)
            except Exception as exc:  # noqa: BLE001 - keep dropping the others
                print(f"warning: could not drop {name}: {exc}", file=sys.stderr)


def timed(label: str, fn: Callable[[], Any]) -> Any:
    start = time.perf_counter()
    result = fn()
    log(f"{label}: {time.perf_counter() - start:.1f} s")
    return result


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sites", type=int, default=20, help="subsites besides the main site (20)")
    ap.add_argument("--users", type=int, default=1000, help="users besides the network admin (1000)")
    ap.add_argument("--wp-sites", type=int, default=3,
                    help="how many subsites WordPress's own loop syncs (3; it is slow)")
    ap.add_argument("--batch-size", type=int, default=None,
                    help="engine batch size (default: the engine's, WPMSYNC_BATCH_SIZE default 50000)")
    ap.add_argument("--repeat", type=int, default=3,
                    help="runs of (a) and (c), each on a fresh copy; the median is reported (3)")
    ap.add_argument("--wp-one-transaction", action="store_true",
                    help="run WordPress's loop in one transaction, like the PHP plugin's write groups "
                         "(default: autocommit, as WordPress core runs add_user_to_blog)")
    ap.add_argument("--memory-check", action="store_true",
                    help="also build a network with users/2 and compare the engine's peak memory")
    ap.add_argument("--profile", action="store_true",
                    help="also run the engine with every statement timed and print the slowest")
    ap.add_argument("--strict", action="store_true", help="exit 1 when a target or a check fails")
    args = ap.parse_args(argv)
    if args.sites < 1 or args.users < 2 or args.repeat < 1 or not 0 <= args.wp_sites <= args.sites:
        ap.error("need --sites >= 1, --users >= 2, --repeat >= 1 and 0 <= --wp-sites <= --sites")
    return args


def build(dbs: Databases, suffix: str, sites: int, users: int) -> Any:
    name = dbs.name(suffix)
    return timed(f"build_network {name} ({sites} sites x {users} users)",
                 lambda: build_network(name, PREFIX, sites=sites, users=users))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    batch_size = args.batch_size if args.batch_size is not None else config_for("x", None).batch_size
    dbs = Databases()
    try:
        net = build(dbs, "src", args.sites, args.users)
        src = net.wp.db_name
        copies = {k: dbs.name(k) for k in ("engine", "engine_mem", "wp", "sql", "undo")}
        for i in range(2, args.repeat + 1):
            copies[f"engine{i}"] = dbs.name(f"engine{i}")
            copies[f"sql{i}"] = dbs.name(f"sql{i}")
        if args.profile:
            copies["profile"] = dbs.name("profile")
        for dst in copies.values():
            timed(f"copy {src} -> {dst}", lambda dst=dst: copy_database(src, dst))

        # (a) and (c) alternate, each on a fresh copy; the median run is reported.
        eng_runs: list[EngineRun] = []
        sql_runs: list[SqlRun] = []
        for i in range(1, args.repeat + 1):
            suffix = "" if i == 1 else str(i)
            eng_runs.append(timed(f"(a) engine sync_sites(None) #{i}",
                                  lambda: run_engine(copies["engine" + suffix], batch_size)))
            sql_runs.append(timed(f"(c) plain SQL #{i}", lambda: run_plain_sql(copies["sql" + suffix])))
        eng = sorted(eng_runs, key=lambda r: r.seconds)[(len(eng_runs) - 1) // 2]
        sql = sorted(sql_runs, key=lambda r: r.seconds)[(len(sql_runs) - 1) // 2]
        in_sync = timed("(d) plan on the synced network",
                        lambda: plan_in_sync(copies["engine"], batch_size))
        undo = timed("(e) undo of a sync", lambda: run_undo(copies["undo"], batch_size))
        mem = timed("(a') engine with tracemalloc",
                    lambda: run_engine(copies["engine_mem"], batch_size, trace_memory=True))
        wp_blogs = net.site_ids[:args.wp_sites]
        wp_handle = net.wp.with_db(copies["wp"])
        wp_handle.transaction = args.wp_one_transaction
        wp = timed(f"(b) WordPress loop on {wp_blogs}",
                   lambda: run_wordpress(wp_handle, wp_blogs)) if wp_blogs else None
        profile = timed("profile", lambda: profile_engine(copies["profile"], batch_size)) if args.profile else []

        half = None
        if args.memory_check:
            hnet = build(dbs, "half_src", args.sites, args.users // 2)
            hcopy = dbs.name("half_engine_mem")
            copy_database(hnet.wp.db_name, hcopy)
            half = timed("(a'') engine with tracemalloc at users/2",
                         lambda: run_engine(hcopy, batch_size, trace_memory=True))

        # ---- correctness
        eng_rows = membership_rows(copies["engine"])
        sql_rows = membership_rows(copies["sql"])
        mem_rows = membership_rows(copies["engine_mem"])
        sql_diff = diff_count(eng_rows, sql_rows)
        mem_diff = diff_count(eng_rows, mem_rows)
        wp_diff = None
        wp_compared = 0
        if wp is not None:
            keys = {cap_key(b) for b in wp_blogs} | {level_key(b) for b in wp_blogs}
            wp_rows = Counter({r: n for r, n in membership_rows(copies["wp"]).items() if r[1] in keys})
            eng_sub = Counter({r: n for r, n in eng_rows.items() if r[1] in keys})
            wp_diff = diff_count(eng_sub, wp_rows)
            wp_compared = sum(wp_rows.values())
        conn = fx_connect(copies["engine"])
        try:
            with conn.cursor() as cur:
                cur.execute(f"SELECT COUNT(*) FROM (SELECT 1 FROM {PREFIX}usermeta "
                            "GROUP BY user_id, meta_key HAVING COUNT(*) > 1) d")
                duplicates = int(cur.fetchone()[0])
        finally:
            conn.close()
        expected = (args.sites + 1) * args.users  # every non-super-admin user x every live site

        # ---- report
        eng_rate = rate(eng.added, eng.seconds)
        sql_rate = rate(sql.caps_rows, sql.seconds)
        wp_rate = rate(wp.added, wp.seconds) if wp else None
        vs_wp = eng_rate / wp_rate if wp_rate else None
        vs_sql = eng_rate / sql_rate
        ok = lambda b: "PASS" if b else "FAIL"  # noqa: E731
        bt = eng.batch_seconds
        print(f"wpmsync benchmark: {args.sites} sites + main site, {args.users} users, "
              f"engine batch_size={batch_size}, WordPress loop on {len(wp_blogs)} sites")
        print(f"runs: (a) {', '.join(f'{r.seconds:.3f}' for r in eng_runs)} s; "
              f"(c) {', '.join(f'{r.seconds:.3f}' for r in sql_runs)} s; median reported")
        print(f"build: install {net.timings['install']:.1f} s + populate {net.timings['populate']:.1f} s")
        print()
        print(f"(a) engine      : {eng.added:6d} memberships in {eng.seconds:8.3f} s = {eng_rate:10.0f} /s"
              f"  ({eng.primary_blogs} primary_blog, {eng.statements} SQL statements, "
              f"{eng.batches} batches: min {min(bt) * 1000:.0f} / median {statistics.median(bt) * 1000:.0f}"
              f" / max {max(bt) * 1000:.0f} ms; outside batches (sites, roles, primary_blog) "
              f"{(eng.seconds - sum(bt)) * 1000:.0f} ms)")
        if wp:
            print(f"(b) WP loop     : {wp.added:6d} memberships in {wp.seconds:8.3f} s = {wp_rate:10.0f} /s"
                  f"  (wall {wp.wall:.3f} s minus PHP/WordPress boot {wp.boot:.3f} s = median of 3 "
                  f"empty flush_cache() calls; blogs {wp_blogs}; "
                  f"{'one transaction' if args.wp_one_transaction else 'autocommit, as WordPress runs it'})")
        else:
            print("(b) WP loop     : skipped (--wp-sites 0)")
        print(f"(c) plain SQL   : {sql.caps_rows:6d} memberships in {sql.seconds:8.3f} s = {sql_rate:10.0f} /s"
              f"  ({sql.statements} statements incl. COMMITs; rows: caps {sql.caps_rows}, user_level "
              f"{sql.level_rows}, primary_blog {sql.primary_rows}, source_domain {sql.source_rows})")
        print(f"(d) in sync     : plan of the synced network (what the timer checks) in {in_sync[0]:.3f} s, "
              f"{in_sync[1]} SQL statements, {in_sync[2]} memberships missing")
        print(f"(e) undo        : {undo[1]:6d} journal rows restored in {undo[0]:8.3f} s = {rate(undo[1], undo[0]):10.0f} /s"
              f"  (undo of a sync-all on its own copy; usermeta back exactly, ids included: "
              f"{'OK' if undo[2] else 'MISMATCH'})")
        print()
        if vs_wp is not None:
            print(f"engine / WP loop  : {vs_wp:8.1f}x  (target >= {TARGET_VS_WP:.0f}x)  {ok(vs_wp >= TARGET_VS_WP)}")
        print(f"engine / plain SQL: {vs_sql:8.2f}x  (target >= {TARGET_VS_SQL})  {ok(vs_sql >= TARGET_VS_SQL)}")
        print()
        print(f"rows: expected memberships {expected}; engine added {eng.added}, plain SQL {sql.caps_rows}; "
              f"membership rows engine {sum(eng_rows.values())}, plain SQL {sum(sql_rows.values())}")
        print(f"check engine == plain SQL (caps, user_level, primary_blog, source_domain): "
              + ("OK" if sql_diff == 0 else f"MISMATCH, {sql_diff} rows differ"))
        if wp is not None:
            print(f"check engine == WordPress on blogs {wp_blogs} (caps, user_level; {wp_compared} rows): "
                  + ("OK" if wp_diff == 0 else f"MISMATCH, {wp_diff} rows differ"))
        print(f"check engine run == traced engine run: " + ("OK" if mem_diff == 0 else f"MISMATCH, {mem_diff}"))
        print(f"check duplicate (user_id, meta_key) rows in the engine copy: "
              + ("OK (none)" if duplicates == 0 else f"{duplicates} FOUND"))
        print()
        print(f"memory (tracemalloc peak during sync_sites): {args.users} users: "
              f"{fmt_bytes(mem.peak_bytes or 0)} (+{fmt_bytes((mem.peak_bytes or 0) - (mem.base_bytes or 0))} "
              f"over the start; traced run took {mem.seconds:.3f} s)")
        if half is not None:
            print(f"memory at {args.users // 2} users: {fmt_bytes(half.peak_bytes or 0)} "
                  f"(+{fmt_bytes((half.peak_bytes or 0) - (half.base_bytes or 0))}); "
                  f"ratio full/half = {(mem.peak_bytes or 0) / max(half.peak_bytes or 1, 1):.2f}")
        for line in profile:
            print(line)

        failed = (not undo[2] or sql_diff != 0 or (wp_diff or 0) != 0 or mem_diff != 0 or duplicates != 0
                  or vs_sql < TARGET_VS_SQL or (vs_wp is not None and vs_wp < TARGET_VS_WP))
        return 1 if (args.strict and failed) else 0
    finally:
        timed("drop benchmark databases", dbs.drop_all)


if __name__ == "__main__":
    sys.exit(main())
