"""Benchmark (issue 10, "Measure"): the outbox's latency and drain rate, and how long WordPress's
own writes wait for a running batch.

What it measures, in one run on the local MariaDB (127.0.0.1:3306, root, empty password), with
real WordPress (Debian's ``wordpress`` package driven through ``wpfixture``) and the repository's
mu-plugin, the Functions app served by ``wpfixture.local_host.serve_functions`` (real HTTP on
127.0.0.1, its queue on Azurite) and the engine in this process:

0. **networks**: built with WordPress core (``wpfixture.build_network``, as ``bench/bench.py``
   does) in ``wpmsbench_src_<S>x<U>``: ``--small`` (default 20 subsites x 1,000 users, i.e. 21
   sites with the main site) and ``--large`` (default 100 x 10,000 = 101 sites x 10,000 users,
   about 2 minutes to build here, the small one 10 s). A source database that already exists
   and carries the sitemeta marker ``wpmsbench_built`` (written after a complete build) is
   reused instead of rebuilt. Every measurement runs on its own copy (``copy_database``).

1. **latency** (small network, synced, switches ``new_user`` and ``role_sync`` on, functions
   up): ``--events`` (30) WordPress requests per kind, each one PHP process (autocommit, as
   WordPress runs) doing one action with the mu-plugin loaded:

   - *role_changed*: ``(new WP_User($uid))->set_role('author')`` on a subsite for a distinct
     subscriber; the rows are the user's capabilities rows saying ``author`` on every live site;
   - *user_created*: ``wpmu_create_user(...)``; the rows are the new user's capabilities rows
     on every live site.

   The clock starts at a ``microtime(true)`` taken in PHP right before the action (so PHP /
   WordPress boot is not counted) and stops when a Python poller (its own autocommit
   connection, one ``SELECT COUNT(*)`` every ~2 ms from before the request starts) first sees
   all the rows; same machine, same wall clock. The path is the real one: outbox row at the
   action, the mu-plugin's shutdown send to ``/api/hooks``, ``delivery.deliver``, commit. Also
   printed: action -> end of the request's shutdown send (a timestamp a helper mu-plugin
   writes at ``shutdown`` priority ``PHP_INT_MAX``). Two warm-up requests are not counted.

2. **drain rate** (same copy, afterwards): one WordPress request with the mu-plugin pointed at
   a closed port (the functions "down") makes ``--drain-events`` (2,000) events, a quarter each:
   ``user_removed`` (``remove_user_from_blog``), ``role_changed`` (``set_role('editor')``,
   role sync on), ``user_added`` (``add_user_to_blog`` to a site the user had been removed
   from beforehand by plain WordPress without the plugin) for distinct users, and
   ``user_created`` (``wpmu_create_user``) for new users. So the outbox rows are exactly what
   the mu-plugin writes (columns, JSON data, event ids). Their ``next_try`` is then moved into
   the past and the **timer's own user code** (``reconcile_drift``, as the host calls it) runs
   once; ``delivery.drain`` inside it is wrapped to time it. Printed: events applied / drain
   seconds, and the whole timer pass (drain + repair + drift probe).

3. **WordPress's wait** (small and large, each on a fresh unsynced copy): one PHP process of
   plain WordPress (no plugin, autocommit) loops ``update_user_meta($uid, 'nickname', ...)``
   (a new value each time, so core really issues its UPDATE), timing each call with
   ``microtime(true)``, ``--probe-pause-ms`` (2) apart. ``$uid`` is a random user inside the
   user range of the batch running at that moment: this process wraps ``engine.run_batch`` and
   publishes the running batch's range in a small file the PHP loop reads before each call
   (calls while no batch runs are not counted). Meanwhile ``Engine(...).sync_sites(None)``
   (sync-all, default batch size unless ``--batch-size``) runs here. Before the sync the same
   loop runs ~1 s with no sync (``idle``: the cost of the call itself). The small network's
   sync is one ~0.5 s batch, so it runs ``--small-rounds`` (5) times, each on a fresh copy, and
   the samples are pooled. Printed: p50 / p95 / max of the wait in a batch (every call, and the
   calls that succeeded) and idle; the calls for which ``update_user_meta`` returned false,
   with ``$wpdb->last_error`` (a deadlock victim or a lock wait timeout: WordPress does not
   retry, so that write is lost); the batch transactions the engine retried (counted from its
   ``wpmsync.db`` warnings); and the batches' durations (a call's wait is bounded by the batch
   holding its user).

Every database it creates starts with ``wpmsbench_`` and is dropped at the end (also on error),
the source networks too unless ``--keep-source``. Speed goals are not asserted: it prints one
run's numbers side by side; exit status 0 unless something failed.

Run it from anywhere (needs ``scripts/setup.sh`` done once: PHP, WordPress, Azurite)::

    .venv/bin/python bench/outbox_bench.py
    .venv/bin/python bench/outbox_bench.py --small 20x1000 --large 100x10000 --events 30 --drain-events 2000
    .venv/bin/python bench/outbox_bench.py --no-large --keep-source     # quick run; keep the network
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import random
import shutil
import socket
import statistics
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from wpfixture import WordPress, build_network, copy_database, drop_database  # noqa: E402
from wpfixture import connect as fx_connect  # noqa: E402
from wpfixture.db import database_exists  # noqa: E402
from wpmsync import Config, Engine  # noqa: E402

DB_PREFIX = "wpmsbench_"
PREFIX = "wp_"
PLUGIN_DIR = ROOT / "wordpress" / "mu-plugins"
MARKER = "wpmsbench_built"
SECRET = "wpmsbench-hook-secret-" + uuid.uuid4().hex
KEY = "wpmsbench-function-key-" + uuid.uuid4().hex
CAPS_LIKE = PREFIX.replace("_", "\\_") + "%capabilities"

# A helper mu-plugin (loaded before the wpmsync one: "0-" sorts first): the constants, HTTP to
# this machine let through (wpfixture refuses every request at priority 10), and the time the
# request's shutdown work ended (the mu-plugin sends at shutdown priority 1000).
HELPER_MU = r"""<?php
$wpmsbench = json_decode( file_get_contents( dirname( __DIR__ ) . '/wpmsbench.json' ), true );
foreach ( $wpmsbench['constants'] as $name => $value ) {
	define( $name, $value );
}
add_filter( 'pre_http_request', function ( $pre, $args, $url ) {
	return in_array( wp_parse_url( $url, PHP_URL_HOST ), array( '127.0.0.1', 'localhost' ), true ) ? false : $pre;
}, 100, 3 );
add_action( 'shutdown', function () use ( $wpmsbench ) {
	file_put_contents( $wpmsbench['times'], json_encode( array( 'shutdown_done' => microtime( true ) ) ) );
}, PHP_INT_MAX );
"""


# ---------------------------------------------------------------- helpers

def log(message: str) -> None:
    print(f"  .. {message}", file=sys.stderr, flush=True)


def timed(label: str, fn: Callable[[], Any]) -> Any:
    start = time.perf_counter()
    result = fn()
    log(f"{label}: {time.perf_counter() - start:.1f} s")
    return result


def pct(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-p * len(ordered) // 100))))
    return ordered[rank - 1]


def summary_ms(values: list[float]) -> str:
    if not values:
        return "no samples"
    return (f"p50 {pct(values, 50):8.2f}  p95 {pct(values, 95):8.2f}  max {max(values):8.2f} ms"
            f"  (n={len(values)})")


def config_for(db_name: str, batch_size: int | None = None) -> Config:
    return Config.from_env({}, db_name=db_name, table_prefix=PREFIX, batch_size=batch_size)


def parse_size(text: str) -> tuple[int, int]:
    try:
        sites, users = (int(x) for x in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: want SUBSITESxUSERS, e.g. 20x1000") from None
    if sites < 3 or users < 10:
        raise argparse.ArgumentTypeError("need at least 3 subsites and 10 users")
    return sites, users


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Databases:
    """Names handed out under ``wpmsbench_``; every one is dropped by :meth:`drop_all`."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def add(self, name: str) -> str:
        assert name.startswith(DB_PREFIX), name
        if name not in self.names:
            self.names.append(name)
        return name

    def drop_all(self, keep: set[str] = frozenset()) -> None:  # type: ignore[assignment]
        for name in self.names:
            if name in keep:
                continue
            try:
                drop_database(name)
            except Exception as exc:  # noqa: BLE001 - keep dropping the others
                print(f"warning: could not drop {name}: {exc}", file=sys.stderr)


@dataclass
class Source:
    db: str
    sites: int
    users: int
    site_ids: list[int]        # subsites
    user_ids: list[int]        # non-admin users
    reused: bool
    build_seconds: float = 0.0


def source_network(dbs: Databases, sites: int, users: int) -> Source:
    """``wpmsbench_src_<sites>x<users>``: reused when a complete build is there, else built."""
    name = dbs.add(f"{DB_PREFIX}src_{sites}x{users}")
    wp = WordPress(name, PREFIX)
    reused = False
    seconds = 0.0
    if database_exists(name) and wp.is_installed() and wp.query(
            "SELECT 1 FROM {p}sitemeta WHERE meta_key = %s", (MARKER,)):
        reused = True
        log(f"reusing {name} (complete build found)")
    else:
        start = time.perf_counter()
        timed(f"build_network {name} ({sites} subsites x {users} users)",
              lambda: build_network(name, PREFIX, sites=sites, users=users))
        wp.query("INSERT INTO {p}sitemeta (site_id, meta_key, meta_value) VALUES (1, %s, %s)",
                 (MARKER, time.strftime("%Y-%m-%d %H:%M:%S")))
        seconds = time.perf_counter() - start
    site_ids = [int(r[0]) for r in wp.query("SELECT blog_id FROM {p}blogs WHERE blog_id > 1 ORDER BY blog_id")]
    user_ids = [int(r[0]) for r in wp.query("SELECT ID FROM {p}users WHERE ID > 1 ORDER BY ID")]
    if len(site_ids) != sites or len(user_ids) != users:
        raise RuntimeError(f"{name}: {len(site_ids)} subsites / {len(user_ids)} users, want {sites} / {users}")
    return Source(name, sites, users, site_ids, user_ids, reused, seconds)


def copy_of(dbs: Databases, src: Source, suffix: str) -> str:
    dst = dbs.add(f"{DB_PREFIX}{suffix}")
    timed(f"copy {src.db} -> {dst}", lambda: copy_database(src.db, dst))
    return dst


class PluggedWordPress:
    """WordPress booted with the repository's mu-plugin and the helper above."""

    def __init__(self, db: str, tmp: Path) -> None:
        content = tmp / "wp-content"
        shutil.copytree(PLUGIN_DIR, content / "mu-plugins", dirs_exist_ok=True)
        (content / "mu-plugins" / "0-wpmsbench.php").write_text(HELPER_MU)
        self.config_path = content / "wpmsbench.json"
        self.times_path = tmp / "times.json"
        # Autocommit, as WordPress runs: each statement commits when it runs.
        self.wp = WordPress(db, PREFIX, content_dir=str(content), transaction=False)

    def point(self, endpoint: str) -> None:
        self.config_path.write_text(json.dumps({"constants": {
            "WPMSYNC_ENDPOINT": endpoint, "WPMSYNC_FUNCTION_KEY": KEY, "WPMSYNC_HOOK_SECRET": SECRET},
            "times": str(self.times_path)}))

    def run(self, code: str, args: Any = None) -> Any:
        return self.wp.run([{"op": "eval", "code": code, "args": args or {}}])[0]


# ---------------------------------------------------------------- (1) latency

class Poller:
    """Polls one ``SELECT COUNT(*)`` until it reaches ``expected``; ``seen`` is the wall time of
    the first poll that saw it."""

    def __init__(self, db: str, sql: str, args: tuple, expected: int, interval: float = 0.002,
                 timeout: float = 60.0) -> None:
        self.db, self.sql, self.args, self.expected = db, sql.replace("{p}", PREFIX), args, expected
        self.interval, self.timeout = interval, timeout
        self.seen: float | None = None
        self.polls = 0
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> "Poller":
        self._thread.start()
        return self

    def _run(self) -> None:
        conn = fx_connect(self.db)  # autocommit: every SELECT reads the latest commit
        try:
            deadline = time.monotonic() + self.timeout
            with conn.cursor() as cur:
                while time.monotonic() < deadline:
                    cur.execute(self.sql, self.args)
                    now = time.time()
                    self.polls += 1
                    if int(cur.fetchone()[0]) >= self.expected:
                        self.seen = now
                        return
                    time.sleep(self.interval)
        finally:
            conn.close()

    def join(self) -> float | None:
        self._thread.join()
        return self.seen


@dataclass
class Latency:
    kind: str
    to_rows: list[float] = field(default_factory=list)       # ms, action -> rows visible
    to_shutdown: list[float] = field(default_factory=list)   # ms, action -> shutdown send done
    missing: int = 0


ROLE_CODE = """
wp_set_current_user( 1 );
switch_to_blog( $args['blog'] );
$u = new WP_User( $args['uid'] );
$t0 = microtime( true );
$u->set_role( $args['role'] );
restore_current_blog();
return $t0;"""

CREATE_CODE = """
wp_set_current_user( 1 );
$t0 = microtime( true );
$uid = wpmu_create_user( $args['login'], 'pw-' . $args['login'], $args['login'] . '@example.test' );
if ( ! $uid ) { throw new Exception( 'wpmu_create_user failed' ); }
return $t0;"""


def measure_latency(site: PluggedWordPress, db: str, live_sites: int, users: list[int], blogs: list[int],
                    n: int) -> list[Latency]:
    role = Latency("role_changed")
    created = Latency("user_created")
    caps_sql = ("SELECT COUNT(*) FROM {p}usermeta WHERE user_id = %s AND meta_key LIKE %s "
                "AND meta_value LIKE %s")
    new_sql = ("SELECT COUNT(*) FROM {p}users u JOIN {p}usermeta m ON m.user_id = u.ID "
               "WHERE u.user_login = %s AND m.meta_key LIKE %s")

    def one(result: Latency | None, code: str, args: dict[str, Any], poller: Poller) -> None:
        site.times_path.unlink(missing_ok=True)
        poller.start()
        t0 = float(site.run(code, args))
        seen = poller.join()
        if result is None:
            return
        if seen is None:
            result.missing += 1
        else:
            result.to_rows.append((seen - t0) * 1000)
        if site.times_path.exists():
            result.to_shutdown.append((json.loads(site.times_path.read_text())["shutdown_done"] - t0) * 1000)

    tag = uuid.uuid4().hex[:6]
    for i in range(n + 2):  # the first two of each kind warm up (table creation, first imports)
        target = None if i < 2 else role
        uid, blog = users[i], blogs[i % len(blogs)]
        one(target, ROLE_CODE, {"uid": uid, "blog": blog, "role": "author"},
            Poller(db, caps_sql, (uid, CAPS_LIKE, '%"author"%'), live_sites))
        login = f"wpmsb{tag}{i}"
        one(None if i < 2 else created, CREATE_CODE, {"login": login},
            Poller(db, new_sql, (login, CAPS_LIKE), live_sites))
    return [role, created]


# ---------------------------------------------------------------- (2) drain rate

MAKE_EVENTS_CODE = """
wp_set_current_user( 1 );
foreach ( $args['removed'] as $p ) { remove_user_from_blog( $p[0], $p[1] ); }
foreach ( $args['roles'] as $p ) {
	switch_to_blog( $p[1] );
	$u = new WP_User( $p[0] );
	$u->set_role( 'editor' );
	restore_current_blog();
}
foreach ( $args['added'] as $p ) { add_user_to_blog( $p[1], $p[0], 'subscriber' ); }
foreach ( $args['created'] as $login ) {
	if ( ! wpmu_create_user( $login, 'pw-' . $login, $login . '@example.test' ) ) { throw new Exception( 'create ' . $login ); }
}
return true;"""


@dataclass
class Drain:
    rows: int
    by_event: dict[str, int]
    counts: dict[str, int]
    drain_seconds: float
    timer_seconds: float
    left: int
    make_seconds: float


def measure_drain(site: PluggedWordPress, db: str, users: list[int], blogs: list[int], k: int) -> Drain:
    import function_app  # noqa: F401  registers the blueprints, as the host does
    from azure.functions.timer import TimerRequest

    from blueprints import reconcile as reconcile_bp
    from wpmsync import delivery

    per = max(1, k // 4)
    group = users[:per]
    if len(group) < per:
        raise RuntimeError(f"--drain-events {k} needs {per} users not used yet, have {len(users)}")
    a, b, c = blogs[0], blogs[1], blogs[2]
    removed = [[u, a] for u in group]
    roles = [[u, b] for u in group]
    added = [[u, c] for u in group]
    tag = uuid.uuid4().hex[:6]
    created = [f"wpmsd{tag}{i}" for i in range(k - 3 * per)]
    # Beforehand, plain WordPress (no plugin: no event) takes the "added" users off site c.
    plain = WordPress(db, PREFIX)
    plain.run([{"op": "remove_user_from_blog", "user_id": u, "blog_id": c} for u, _ in added])
    # The functions are down: every event stays in the outbox (the first send is refused).
    site.point(f"http://localhost:{closed_port()}/api")
    site.wp.transaction = True  # one COMMIT for the lot (fast); the rows are the same
    start = time.perf_counter()
    site.run(MAKE_EVENTS_CODE, {"removed": removed, "roles": roles, "added": added, "created": created})
    make_seconds = time.perf_counter() - start
    site.wp.transaction = False
    q = plain.query
    by_event = {e: int(n) for e, n in q("SELECT event, COUNT(*) FROM {p}wpmsync_outbox GROUP BY event")}
    rows = sum(by_event.values())
    q("UPDATE {p}wpmsync_outbox SET next_try = UTC_TIMESTAMP() - INTERVAL 1 SECOND")

    timing: dict[str, Any] = {}
    real_drain = delivery.drain

    def timed_drain(*args: Any, **kwargs: Any) -> Any:
        t = time.perf_counter()
        try:
            timing["counts"] = real_drain(*args, **kwargs)
            return timing["counts"]
        finally:
            timing["seconds"] = time.perf_counter() - t

    delivery.drain = timed_drain  # reconcile.py calls delivery.drain(...)
    try:
        start = time.perf_counter()
        reconcile_bp.reconcile_drift.build().get_user_function()(TimerRequest(past_due=False))
        timer_seconds = time.perf_counter() - start
    finally:
        delivery.drain = real_drain
    left = int(q("SELECT COUNT(*) FROM {p}wpmsync_outbox")[0][0])
    return Drain(rows, by_event, dict(timing.get("counts") or {}), float(timing.get("seconds", 0.0)),
                 timer_seconds, left, make_seconds)


# ---------------------------------------------------------------- (3) WordPress's wait

class RetryCounter(logging.Handler):
    """Counts the engine's retried transactions (``db.write_users`` logs each deadlock or lock
    wait timeout it meets before trying again)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        if "(try " in record.getMessage():
            self.count += 1


PROBE_CODE = r"""
$ctl = $args['ctl'];
$pause = (int) $args['pause_us'];
$min_uid = (int) $args['min_uid'];
$max_uid = (int) $args['max_uid'];
mt_srand( 12345 );
file_put_contents( $args['ready'], '1' );
$out = array();
$fail = 0;
$errors = array();
$i = 0;
$deadline = microtime( true ) + (float) $args['max_seconds'];
while ( microtime( true ) < $deadline ) {
	clearstatcache( true, $ctl );
	$line = trim( (string) @file_get_contents( $ctl ) );
	if ( 'stop' === $line ) {
		break;
	}
	$parts = explode( ' ', $line );
	if ( count( $parts ) !== 3 ) { // between batches, or not started: nothing to count
		usleep( 500 );
		continue;
	}
	$lo  = max( $min_uid, (int) $parts[1] );
	$hi  = min( $max_uid, (int) $parts[2] );
	if ( $lo > $hi ) {
		usleep( 500 );
		continue;
	}
	$uid = mt_rand( $lo, $hi );
	++$i;
	$t = microtime( true );
	$ok = update_user_meta( $uid, 'nickname', 'wpmsbench-' . $i );
	$dt = microtime( true ) - $t;
	if ( false === $ok ) {
		++$fail;
		$errors[ $wpdb->last_error ] = ( isset( $errors[ $wpdb->last_error ] ) ? $errors[ $wpdb->last_error ] : 0 ) + 1;
	}
	$out[] = array( $parts[0], round( $dt * 1000, 3 ), false !== $ok );
	usleep( $pause );
}
return array( 'samples' => $out, 'failed' => $fail, 'errors' => $errors );
"""


@dataclass
class Wait:
    label: str
    sites: int
    users: int
    batch_size: int
    sync_seconds: float
    added: int
    batch_ms: list[float]
    in_batch: list[float]
    idle: list[float]
    in_batch_ok: list[float]
    failed: int
    engine_retries: int
    errors: dict[str, int]
    rounds: int = 1

    def merge(self, other: "Wait") -> None:
        self.sync_seconds += other.sync_seconds
        self.added += other.added
        self.batch_ms += other.batch_ms
        self.in_batch += other.in_batch
        self.in_batch_ok += other.in_batch_ok
        self.engine_retries += other.engine_retries
        self.idle += other.idle
        self.failed += other.failed
        for k, v in other.errors.items():
            self.errors[k] = self.errors.get(k, 0) + v
        self.rounds += other.rounds


def measure_wait(db: str, src: Source, batch_size: int | None, pause_ms: float, tmp: Path,
                 label: str, idle_seconds: float = 1.0) -> Wait:
    ctl = tmp / f"batch-{label}.txt"
    ready = tmp / f"ready-{label}.txt"
    ctl.write_text("")
    ready.unlink(missing_ok=True)
    plain = WordPress(db, PREFIX, transaction=False)  # autocommit, as WordPress runs
    plain.timeout = 3600
    lo, hi = min(src.user_ids), max(src.user_ids)
    answer: dict[str, Any] = {}

    def probe() -> None:
        try:
            answer["doc"] = plain.run([{"op": "eval", "code": PROBE_CODE, "args": {
                "ctl": str(ctl), "ready": str(ready), "pause_us": int(pause_ms * 1000),
                "min_uid": lo, "max_uid": hi, "max_seconds": 3000}}])[0]
        except Exception as exc:  # noqa: BLE001 - reported below
            answer["error"] = exc

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not ready.exists():
        if not thread.is_alive() or time.monotonic() > deadline:
            ctl.write_text("stop")
            thread.join()
            raise RuntimeError(f"the PHP probe did not start: {answer.get('error')}")
        time.sleep(0.02)

    def publish(text: str) -> None:
        part = ctl.with_suffix(".part")
        part.write_text(text)
        os.replace(part, ctl)

    publish(f"idle {lo} {hi}")
    time.sleep(idle_seconds)
    publish("")
    engine = Engine(config_for(db, batch_size))
    batch_ms: list[float] = []
    retries = RetryCounter()
    logging.getLogger("wpmsync.db").addHandler(retries)
    try:
        run_batch = engine.run_batch

        def timed_batch(batch: Any, *args: Any, **kwargs: Any) -> Any:
            publish(f"batch {batch.first_user} {batch.last_user}")
            t = time.perf_counter()
            try:
                return run_batch(batch, *args, **kwargs)
            finally:
                batch_ms.append((time.perf_counter() - t) * 1000)
                publish("")

        engine.run_batch = timed_batch  # type: ignore[method-assign]
        start = time.perf_counter()
        outcome = engine.sync_sites(None)
        sync_seconds = time.perf_counter() - start
        used_batch_size = engine.config.batch_size
    finally:
        publish("stop")
        logging.getLogger("wpmsync.db").removeHandler(retries)
        engine.close()
        thread.join()
    if "error" in answer:
        raise RuntimeError(f"the PHP probe failed: {answer['error']}")
    doc = answer["doc"]
    samples = doc["samples"]
    return Wait(label, src.sites + 1, src.users, used_batch_size, sync_seconds, outcome.added, batch_ms,
                [float(ms) for phase, ms, _ in samples if phase == "batch"],
                [float(ms) for phase, ms, _ in samples if phase == "idle"],
                [float(ms) for phase, ms, ok in samples if phase == "batch" and ok],
                int(doc["failed"]), retries.count, {str(k): int(v) for k, v in (doc.get("errors") or {}).items()})


# ---------------------------------------------------------------- orchestration

def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--small", type=parse_size, default=(20, 1000),
                    help="SUBSITESxUSERS of the small network (20x1000: 21 sites with the main site)")
    ap.add_argument("--large", type=parse_size, default=(100, 10000),
                    help="SUBSITESxUSERS of the large network, for (3) only (100x10000: 101 sites)")
    ap.add_argument("--no-large", action="store_true", help="skip the large network")
    ap.add_argument("--events", type=int, default=30, help="(1) requests per kind (30)")
    ap.add_argument("--drain-events", type=int, default=2000, help="(2) outbox events to drain (2000)")
    ap.add_argument("--batch-size", type=int, default=None,
                    help="(3) engine batch size (default: the engine's, WPMSYNC_BATCH_SIZE default 50000)")
    ap.add_argument("--probe-pause-ms", type=float, default=2.0,
                    help="(3) pause between two update_user_meta calls of the PHP loop (2 ms)")
    ap.add_argument("--small-rounds", type=int, default=5,
                    help="(3) syncs of the small network, each on a fresh copy, samples pooled (5: one "
                         "sync of it is ~1 s, a handful of calls)")
    ap.add_argument("--keep-source", action="store_true",
                    help="keep the source networks wpmsbench_src_* (a later run reuses them)")
    args = ap.parse_args(argv)
    if args.events < 1 or args.drain_events < 4:
        ap.error("need --events >= 1 and --drain-events >= 4")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from blueprints import common
    from wpfixture.azurite import start_azurite, stop
    from wpfixture.local_host import serve_functions

    dbs = Databases()
    tmp = Path(tempfile.mkdtemp(prefix="wpmsbench-"))
    azurite = None
    sources: list[Source] = []
    try:
        small = source_network(dbs, *args.small)
        sources.append(small)
        large = None
        if not args.no_large:
            large = source_network(dbs, *args.large)
            sources.append(large)

        # ---- (1) latency and (2) drain, on a synced copy of the small network, functions up
        lat_db = copy_of(dbs, small, "outbox")
        with Engine(config_for(lat_db)) as engine:
            timed("sync_sites(None) of the latency copy", lambda: engine.sync_sites(None))
            engine.change_settings(new_user=True, role_sync=True)
            live = len(engine.network.live_sites())
        azurite, conn_string = timed("start Azurite", lambda: start_azurite(tmp / "azurite"))
        common.QUEUE_NAME = f"wpmsbench-{uuid.uuid4().hex[:12]}"
        env = {"WPMSYNC_DB_NAME": lat_db, "WPMSYNC_TABLE_PREFIX": PREFIX, "AzureWebJobsStorage": conn_string}
        server: list = []
        with serve_functions(hook_secret=SECRET, function_key=KEY, env=env, server=server) as api:
            site = PluggedWordPress(lat_db, tmp)
            # "localhost": WordPress's WP_HTTP_BLOCK_EXTERNAL (wpfixture sets it) lets that name through.
            site.point(api.replace("//127.0.0.1:", "//localhost:"))
            n = min(args.events, len(small.user_ids) - 2)
            latencies = timed(f"(1) latency, {n} requests per kind",
                              lambda: measure_latency(site, lat_db, live, small.user_ids, small.site_ids, n + 0))
            unused = small.user_ids[n + 2:]
            drain = timed(f"(2) drain of {args.drain_events} outbox events by the timer",
                          lambda: measure_drain(site, lat_db, unused, small.site_ids, args.drain_events))
            http_errors = [r for r in server[0].requests if r[2] >= 500]
            faults = list(server[0].errors)

        # ---- (3) WordPress's wait beside a running sync
        waits = []
        for label, src, rounds in (("small", small, args.small_rounds), ("large", large, 1)):
            if src is None:
                continue
            total = None
            for r in range(1, rounds + 1):
                wdb = copy_of(dbs, src, f"wait_{label}{r}")  # new name: the engine remembers tables per name
                one = timed(f"(3) update_user_meta during sync_sites(None), {label} #{r}",
                            lambda: measure_wait(wdb, src, args.batch_size, args.probe_pause_ms, tmp, label))
                drop_database(wdb)
                if total is None:
                    total = one
                else:
                    total.merge(one)
            waits.append(total)

        # ---- report
        print(f"wpmsync outbox benchmark (issue 10): small network {small.sites + 1} sites x {small.users} users"
              + (f", large {large.sites + 1} sites x {large.users} users" if large else ", large skipped"))
        print("sources: " + "; ".join(
            f"{s.db} {'reused' if s.reused else f'built in {s.build_seconds:.0f} s'}" for s in sources))
        print()
        print(f"(1) WordPress action -> rows in the database, functions up ({live} live sites; clock starts "
              "at PHP microtime() right before the action, stops at the first poll that sees every row):")
        for lat in latencies:
            what = ("set_role on a subsite -> 'author' on every site" if lat.kind == "role_changed"
                    else "wpmu_create_user -> member of every site")
            print(f"    {lat.kind:13s} {summary_ms(lat.to_rows)}   [{what}]"
                  + (f"  MISSING {lat.missing}" if lat.missing else ""))
            print(f"    {'':13s} action -> end of the request's shutdown send: p50 {pct(lat.to_shutdown, 50):.2f}"
                  f"  p95 {pct(lat.to_shutdown, 95):.2f} ms")
        print(f"    functions: {len(server[0].requests)} requests, {len(http_errors)} answered 5xx, "
              f"{len(faults)} faults")
        print()
        rate = drain.counts.get("applied", 0) / drain.drain_seconds if drain.drain_seconds else float("nan")
        print(f"(2) outbox drained by the timer: {drain.rows} rows "
              f"({', '.join(f'{e} {c}' for e, c in sorted(drain.by_event.items()))}; made by one WordPress "
              f"request in {drain.make_seconds:.1f} s with the functions down)")
        print(f"    delivery.drain: {drain.counts} in {drain.drain_seconds:.3f} s = {rate:.0f} events/s; "
              f"whole timer pass {drain.timer_seconds:.3f} s = "
              f"{drain.counts.get('applied', 0) / drain.timer_seconds:.0f} events/s; rows left {drain.left}")
        print()
        print("(3) WordPress's own update_user_meta (existing 'nickname' row, autocommit) for a random user "
              "of the running batch, during Engine.sync_sites(None):")
        for w in waits:
            bm = w.batch_ms
            print(f"    {w.sites:3d} sites x {w.users:5d} users: in batch {summary_ms(w.in_batch)}")
            print(f"    {'':22s}idle     {summary_ms(w.idle)}")
            print(f"    {'':22s}sync {w.added // w.rounds} memberships in {w.sync_seconds / w.rounds:.2f} s"
                  + (f" (mean of {w.rounds} rounds, each on a fresh copy; samples pooled)" if w.rounds > 1 else "")
                  + f", batch_size {w.batch_size}, {len(bm) // w.rounds} batches: median "
                  f"{statistics.median(bm):.0f} / max {max(bm):.0f} ms")
            print(f"    {'':22s}calls that succeeded: {summary_ms(w.in_batch_ok)}")
            print(f"    {'':22s}update_user_meta returned false: {w.failed} of {len(w.in_batch) + len(w.idle)} calls"
                  + (" (" + "; ".join(f"{n}x {e or 'no database error'}" for e, n in w.errors.items()) + ")"
                     if w.errors else "")
                  + f"; the engine retried {w.engine_retries} batch transactions")
        return 0 if not http_errors and not faults and all(lat.missing == 0 for lat in latencies) \
            and drain.left == 0 else 1
    finally:
        if azurite is not None:
            stop(azurite)
        keep = {s.db for s in sources} if args.keep_source else set()
        timed("drop benchmark databases", lambda: dbs.drop_all(keep))
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
