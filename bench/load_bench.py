"""Benchmark (issue 12, "Measure"): WordPress served under a steady load while a sync of every
membership runs through the queue path, our connections against the writer cap, the sync's rate
against plain set-based SQL, and the reconcile passes' cost.

What it measures, in one run on the local MariaDB (127.0.0.1:3306, root, empty password), with
real WordPress (Debian's ``wordpress`` package) served by PHP's own web server:

0. **network**: ``--large`` (the default: 100 subsites x 10,000 users = 101 sites with the main
   site) or ``--small`` (20 x 1,000 = 21 sites), built with WordPress core by
   ``outbox_bench.source_network`` into ``wpmsbench_src_<S>x<U>`` (reused when a complete build
   with its ``wpmsbench_built`` marker is there; ~2 minutes for the large one otherwise). Two
   copies (``copy_database``): ``wpmsbench_load_<size>`` (served, synced, reconciled) and
   ``wpmsbench_loadsql_<size>`` (plain SQL). Before measuring, ``--login-users`` users spread
   over the whole id range get a known password (``wp_set_password``, in PHP).

   Two MySQL users of our own, with ALL on the load copy only: ``wpmsync_bench`` (the engine:
   every worker, the status polls, the reconcile passes) and ``wpmsbench_wp`` (WordPress's
   ``DB_USER``), both ``@127.0.0.1`` and ``@localhost``; dropped at the end.

1. **the stack**: ``php -S 127.0.0.1:PORT`` serving plain WordPress (``wpfixture.webserver``, no
   mu-plugin, ``--php-workers`` (4) PHP workers), plus one file dropped in its docroot,
   ``wpmsbench-touch.php?uid=N``: boots ``wp-load.php`` and calls
   ``update_user_meta(N, 'nickname', <a new value>)``, timing that call with ``microtime(true)``
   (its answer: the call's milliseconds, true/false, ``$wpdb->last_error``). Azurite's queue
   service on a free port (``wpfixture.azurite``; not 10001, which tests may use).
   ``--workers`` (4) batch workers, each its own process (``multiprocessing``, *spawn*), with the
   Functions app's settings in its environment (``WPMSYNC_DB_*`` as ``wpmsync_bench``,
   ``WPMSYNC_MAX_PARALLEL_BATCHES`` = ``--cap``, ``WPMSYNC_BATCH_SECONDS`` = ``--batch-seconds``,
   ``AzureWebJobsStorage`` = Azurite's connection string, ``WPMSYNC_HOOK_SECRET``; ``--batch-size``
   sets ``WPMSYNC_BATCH_SIZE``, the engine's 50,000 by default). Each loops as
   the Functions host's queue trigger does: receive one message (``BatchQueue.receive``, hidden
   600 s), call the queue function's user code ``run_batch`` (``blueprints.batches``) with a
   ``QueueMessage`` carrying the service's ``dequeue_count``, delete the message; a message whose
   function raised becomes visible again after 30 s (host.json's ``visibilityTimeout``) and after
   5 tries goes to ``poisoned_batch`` (``maxDequeueCount``). An empty queue is polled again after
   0.1 s, doubling up to ``--max-poll-seconds`` (1 s; the host's ``maxPollingInterval`` is 10 s).
   ``WPMSYNC_WORDPRESS_URL`` is not set: no cache cleaning calls (plain WordPress has no
   persistent object cache to clean).

2. **load**: ``--clients`` (2) client threads, each issuing requests back to back with
   ``--pause-ms`` (50) between them (a closed loop: a slow answer slows that client), the kind
   drawn at random by ``--mix`` (``view=5,login=2,touch=3``):

   - *view*: ``GET /siteN/`` of a random subsite (front page; 200 expected);
   - *login*: ``POST /wp-login.php`` as one of the users with a known password (with WordPress's
     test cookie); a 302 to ``/wp-admin/`` is a success, anything else a failure;
   - *touch*: ``GET /wpmsbench-touch.php?uid=N``; 200 with ``ok`` true is a success.

   The user of a touch (and of a login, when one with a password is there) is picked inside the
   user range of a batch running at that moment: a root connection reads the job's
   ``{prefix}wpmsync_job_batches`` every 0.25 s, the first pending batch of each lane
   (``seq mod --cap``, the ones running or next), their remaining ``first_user..last_user``;
   otherwise (idle, or between reads) from the whole user range. Each request's latency is the
   client's ``time.perf_counter`` around connect, send and the whole answer. After a warm-up of
   ``--warmup-seconds`` (3, not counted):

   - **idle**: the load alone for ``--idle-seconds`` (20), the workers already polling;
   - **during**: the same load while a sync of every membership runs: the sync HTTP function's
     user code (``POST /api/sync`` with no ``blog_ids``, i.e. ``jobs.start(engine, 'sync_all',
     <live sites>, send)``), then ``GET /api/jobs/{id}`` every 0.5 s until ``done`` (or failed).
     The phase covers the requests started between the sync call and the poll that saw it done.

   Per kind and for all: n, p50 / p95 / max of the latency, failures; for touch also the
   ``update_user_meta`` call's own time in PHP (its wait on InnoDB locks), the calls over 2 s, and
   the requests over 2 s of every kind.

3. **connections**: a root connection counts ``information_schema.PROCESSLIST`` rows of
   ``wpmsync_bench`` and of ``wpmsbench_wp`` every ``--conn-poll-ms`` (20) and keeps the peak of
   each per phase (target: ours <= cap + 2).

4. **rate**: the queue path's memberships added / (job's last batch ``finished_at`` - job's
   ``created_at``, both the server's clock), against ``bench.run_plain_sql`` (per site one
   ``INSERT ... SELECT`` for caps, one for user_level, plus primary_blog / source_domain; one
   transaction per site; no load, workers idle) on the fresh copy (target >= 0.7x). The batch
   steps: every ``memberships.apply_batch`` call in the workers is timed (wrapped in each worker
   process), with the rate ``wpmsync.throttle`` had learned (memberships examined per second) when
   it sized that step; messages per kind, requeues without a writer slot (the queue function's
   "waits for a writer slot" log line), drops, errors (tracebacks) and the batch rows' attempts.

5. **reconcile** on the synced copy, each pass with an engine opened as the timer does
   (``common.engine('timer')``) and ``wpmsync.reconcile.reconcile(engine, common.send,
   common.notify_wordpress, full=...)``; statements = ``SHOW SESSION STATUS LIKE 'Questions'`` on
   that engine's connection before/after (minus the SHOWs themselves); seconds of the call. After
   ``engine.change_settings(new_user=True, new_site=True)``:

   - (0) the first pass (no marks yet: full);
   - (i) an incremental pass of the network in sync;
   - (ii) after 100 users created by WordPress core (``wpmu_create_user``) and one site
     (``wpmu_create_blog``), plain WordPress without the mu-plugin (so no hook told us), an
     incremental pass; the job it queues is run by the workers (its seconds and memberships are
     printed too), then (ii') an incremental pass again;
   - (iii) a full pass (``full=True``).

   Targets: incremental under 1 s, and a statement count that does not grow with the network
   (compare the ``--small`` and ``--large`` runs). When ``reconcile`` has no ``full`` keyword
   (``inspect.signature``), the incremental rows say "incremental not available".

Printed: Markdown tables (requests idle vs during, the targets with PASS/FAIL, the sync and its
steps, the reconcile passes), then one JSON line with every figure. Progress goes to stderr.
Speed goals are reported, not asserted: exit status 0 unless the sync did not finish or a worker
raised. The machine's CPU is shared by WordPress, MariaDB, Azurite, the workers and the clients:
on 2 cores the figures include that contention.

Every database it creates starts with ``wpmsbench_`` and is dropped at the end (also on error),
the source network too, unless ``--keep`` (keep every database) or ``--keep-source``. The PHP
server, Azurite and the worker processes are stopped on exit (also on Ctrl-C / SIGTERM).

Run it from anywhere (needs ``scripts/setup.sh`` done once: PHP, WordPress, Azurite)::

    .venv/bin/python bench/load_bench.py --small                # a few minutes
    .venv/bin/python bench/load_bench.py                        # --large: 101 sites x 10,000 users
    .venv/bin/python bench/load_bench.py --workers 4 --cap 4 --batch-seconds 1 --clients 2 --idle-seconds 20
"""
from __future__ import annotations

import argparse
import bisect
import http.client
import importlib.util
import inspect
import json
import logging
import multiprocessing as mp
import os
import queue as queue_mod
import random
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
import traceback
import urllib.parse
import uuid
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def _load(name: str, path: Path) -> Any:
    """The sibling benchmark scripts, imported by path (``bench`` is also this folder's name)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules[name] = module
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


ob = _load("wpmsbench_outbox_bench", HERE / "outbox_bench.py")
pb = _load("wpmsbench_plain_bench", HERE / "bench.py")

from wpfixture import WordPress  # noqa: E402
from wpfixture import connect as fx_connect  # noqa: E402

PREFIX = ob.PREFIX
ENGINE_USER = "wpmsync_bench"
ENGINE_PASSWORD = "wpmsbench-engine-pw"
WP_USER = "wpmsbench_wp"
WP_PASSWORD = "wpmsbench-wp-pw"
USER_HOSTS = ("127.0.0.1", "localhost")
LOGIN_PASSWORD = "wpmsbench-Login-pw-1"
HOOK_SECRET = "wpmsbench-hook-secret-" + uuid.uuid4().hex
FUNCTION_KEY = "wpmsbench-function-key-" + uuid.uuid4().hex
TOUCH_FILE = "wpmsbench-touch.php"
LOCK_WAIT_LIMIT_MS = 2000.0
VISIBILITY = 600          # seconds a received message stays hidden while its function runs
RETRY_VISIBILITY = 30     # host.json visibilityTimeout: a failed message is seen again after it
MAX_DEQUEUE = 5           # host.json maxDequeueCount
KINDS = ("view", "login", "touch")

TOUCH_PHP = r"""<?php
/* wpmsbench (bench/load_bench.py): WordPress's own update_user_meta for one user, timed. */
require __DIR__ . '/wp-load.php';
$uid = isset( $_GET['uid'] ) ? (int) $_GET['uid'] : 0;
$t   = microtime( true );
$ok  = update_user_meta( $uid, 'nickname', 'wpmsbench-' . uniqid( '', true ) );
$dt  = microtime( true ) - $t;
header( 'Content-Type: application/json' );
echo json_encode( array( 'ok' => false !== $ok, 'ms' => round( $dt * 1000, 3 ), 'error' => $GLOBALS['wpdb']->last_error ) );
"""

SET_PASSWORDS_PHP = r"""
foreach ( $args['ids'] as $id ) {
	wp_set_password( $args['password'], (int) $id );
}
return count( $args['ids'] );
"""

log = ob.log
timed = ob.timed
pct = ob.pct


# ---------------------------------------------------------------- the batch workers (processes)

class _LogTally(logging.Handler):
    """Counts the log lines of the app (by logger and message template) and keeps the warnings."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.counts: Counter[str] = Counter()
        self.warnings: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.counts[f"{record.name}: {record.msg}"] += 1
        if record.levelno >= logging.WARNING and len(self.warnings) < 100:
            try:
                text = record.getMessage()
            except Exception:  # noqa: BLE001
                text = str(record.msg)
            self.warnings.append(f"{record.levelname} {record.name}: {text}"
                                 + (f"\n{self.format(record)}" if record.exc_info else ""))


def worker_main(index: int, env: dict[str, str], log_path: str, ready: Any, stop: Any, results: Any,
                max_poll: float) -> None:
    """One batch worker: the queue trigger's loop around the queue function's user code."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops us (stop event, then terminate)
    os.environ.update(env)
    tally = _LogTally()
    handler = logging.FileHandler(log_path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s"))
    app_log = logging.getLogger("wpmsync")
    app_log.setLevel(logging.INFO)
    app_log.addHandler(handler)
    app_log.addHandler(tally)
    messages: list[dict[str, Any]] = []
    steps: list[dict[str, Any]] = []
    errors: list[str] = []
    try:
        from azure.functions.queue import QueueMessage

        from wpfixture.local_host import LocalFunctions
        from wpmsync import Config, memberships, throttle
        from wpmsync.secrets import reset_secrets

        reset_secrets()
        local = LocalFunctions(env["WPMSYNC_HOOK_SECRET"])
        common = local.common
        common.reset()
        cfg = Config.from_env()
        run, poisoned = local.user_function("run_batch"), local.user_function("poisoned_batch")
        queue = common.queue()
        real_apply = memberships.apply_batch

        def timed_apply(conn: Any, network: Any, batch: Any, *args: Any, **kwargs: Any) -> Any:
            rate_before = throttle.rate(cfg)
            started, t = time.time(), time.perf_counter()
            out = None
            try:
                out = real_apply(conn, network, batch, *args, **kwargs)
                return out
            finally:
                steps.append({"t": started, "seconds": time.perf_counter() - t, "sites": len(batch.blog_ids),
                              "users": batch.last_user - batch.first_user + 1, "rate_before": rate_before,
                              "added": None if out is None else out.added, "ok": out is not None})

        memberships.apply_batch = timed_apply  # Engine.run_batch calls memberships.apply_batch(...)
        ready.set()
        parent = os.getppid()
        wait = 0.0
        while not stop.is_set() and os.getppid() == parent:
            try:
                got = queue.receive(max_messages=1, visibility_timeout=VISIBILITY)
            except Exception:  # noqa: BLE001 - Azurite hiccup: note it, go on
                errors.append("receive: " + traceback.format_exc())
                stop.wait(1.0)
                continue
            if not got:
                wait = min(max_poll, max(0.1, wait * 2))
                stop.wait(wait)
                continue
            wait = 0.0
            for text, raw in got:
                count = int(getattr(raw, "dequeue_count", None) or 1)
                try:
                    kind = json.loads(text).get("type", "?")
                except Exception:  # noqa: BLE001
                    kind = "?"
                msg = QueueMessage(id=raw.id, body=text.encode(), dequeue_count=count)
                started, t = time.time(), time.perf_counter()
                failed = None
                try:
                    run(msg)
                except Exception:  # noqa: BLE001 - the host retries the message
                    failed = traceback.format_exc()
                    errors.append(failed)
                messages.append({"kind": kind, "t": started, "seconds": time.perf_counter() - t,
                                 "dequeue_count": count, "failed": failed is not None})
                try:
                    if failed is None:
                        queue.delete(raw)
                    elif count >= MAX_DEQUEUE:
                        poisoned(msg)
                        queue.delete(raw)
                    else:
                        queue.client.update_message(raw, visibility_timeout=RETRY_VISIBILITY)
                except Exception:  # noqa: BLE001
                    errors.append("ack: " + traceback.format_exc())
        final_rate = throttle.rate(cfg)
    except Exception:  # noqa: BLE001 - reported by the parent
        errors.append("worker: " + traceback.format_exc())
        final_rate = None
        ready.set()
    results.put({"index": index, "pid": os.getpid(), "messages": messages, "steps": steps, "errors": errors,
                 "log_counts": dict(tally.counts), "warnings": tally.warnings, "final_rate": final_rate})


class Workers:
    """``n`` worker processes (spawn) and their results."""

    def __init__(self, n: int, env: dict[str, str], tmp: Path, max_poll: float) -> None:
        self.ctx = mp.get_context("spawn")
        self.stop_event = self.ctx.Event()
        self.results_q = self.ctx.Queue()
        self.procs: list[Any] = []
        self.readies: list[Any] = []
        self.results: list[dict[str, Any]] = []
        for i in range(n):
            ready = self.ctx.Event()
            p = self.ctx.Process(target=worker_main, name=f"wpmsbench-worker-{i}", daemon=True,
                                 args=(i, env, str(tmp / f"worker-{i}.log"), ready, self.stop_event,
                                       self.results_q, max_poll))
            p.start()
            self.procs.append(p)
            self.readies.append(ready)

    def wait_ready(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        for p, ready in zip(self.procs, self.readies):
            while not ready.wait(0.2):
                if not p.is_alive() or time.monotonic() > deadline:
                    raise RuntimeError(f"worker {p.name} did not start (exit code {p.exitcode})")

    def stop(self, timeout: float = 60.0) -> list[dict[str, Any]]:
        if not self.procs:
            return self.results
        self.stop_event.set()
        deadline = time.monotonic() + timeout
        while len(self.results) < len(self.procs) and time.monotonic() < deadline:
            if not any(p.is_alive() for p in self.procs) and self.results_q.empty():
                break
            try:
                self.results.append(self.results_q.get(timeout=0.5))
            except queue_mod.Empty:
                pass
        for p in self.procs:  # only the processes started here, one by one
            p.join(timeout=max(0.1, deadline - time.monotonic()))
            if p.is_alive():
                p.terminate()
                p.join(timeout=10)
            if p.is_alive():
                p.kill()
                p.join(timeout=10)
        self.procs = []
        return self.results


# ---------------------------------------------------------------- MySQL users, WordPress setup

def create_mysql_users(db_name: str) -> None:
    for user, password in ((ENGINE_USER, ENGINE_PASSWORD), (WP_USER, WP_PASSWORD)):
        for host in USER_HOSTS:
            fx_connect_exec(f"DROP USER IF EXISTS '{user}'@'{host}'")
            fx_connect_exec(f"CREATE USER '{user}'@'{host}' IDENTIFIED BY %s", (password,))
            fx_connect_exec(f"GRANT ALL PRIVILEGES ON `{db_name}`.* TO '{user}'@'{host}'")


def drop_mysql_users() -> None:
    for user in (ENGINE_USER, WP_USER):
        for host in USER_HOSTS:
            try:
                fx_connect_exec(f"DROP USER IF EXISTS '{user}'@'{host}'")
            except Exception as exc:  # noqa: BLE001
                print(f"warning: could not drop user {user}@{host}: {exc}", file=sys.stderr)


def fx_connect_exec(sql: str, args: Any = None) -> None:
    conn = fx_connect(None)
    try:
        with conn.cursor() as cur:
            cur.execute(sql, args)
    finally:
        conn.close()


def set_passwords(db: str, user_ids: list[int], count: int, content_dir: Path) -> list[tuple[int, str]]:
    """``count`` users spread over the id range get LOGIN_PASSWORD (``wp_set_password``)."""
    step = max(1, len(user_ids) // max(1, count))
    chosen = user_ids[::step][:count]
    wp = WordPress(db, PREFIX, content_dir=str(content_dir))
    wp.run([{"op": "eval", "code": SET_PASSWORDS_PHP, "args": {"ids": chosen, "password": LOGIN_PASSWORD}}])
    rows = wp.query("SELECT ID, user_login FROM {p}users WHERE ID IN (" + ", ".join(map(str, chosen)) + ")")
    return sorted((int(i), str(login)) for i, login in rows)


# ---------------------------------------------------------------- connection counts

class ConnectionPoller:
    """Counts our connections and WordPress's every ``interval`` s from a root connection; keeps
    the peak and the samples of each phase."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.phase = "setup"
        self.samples: dict[str, dict[str, list[int]]] = {}
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="wpmsbench-conn-poller", daemon=True)

    def start(self) -> "ConnectionPoller":
        self._thread.start()
        return self

    def _run(self) -> None:
        conn = fx_connect(None)
        try:
            with conn.cursor() as cur:
                while not self._stop.is_set():
                    cur.execute("SELECT USER, COUNT(*) FROM information_schema.PROCESSLIST WHERE USER IN (%s, %s) "
                                "GROUP BY USER", (ENGINE_USER, WP_USER))
                    counts = {u: int(n) for u, n in cur.fetchall()}
                    per = self.samples.setdefault(self.phase, {ENGINE_USER: [], WP_USER: []})
                    per[ENGINE_USER].append(counts.get(ENGINE_USER, 0))
                    per[WP_USER].append(counts.get(WP_USER, 0))
                    self._stop.wait(self.interval)
        except Exception:  # noqa: BLE001
            self.errors.append(traceback.format_exc())
        finally:
            conn.close()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def peak(self, phase: str, user: str) -> int | None:
        values = self.samples.get(phase, {}).get(user)
        return max(values) if values else None

    def over(self, phase: str, user: str, limit: int) -> int:
        return sum(1 for v in self.samples.get(phase, {}).get(user, []) if v > limit)

    def n(self, phase: str) -> int:
        return len(self.samples.get(phase, {}).get(ENGINE_USER, []))


# ---------------------------------------------------------------- the running batches

class RunningRanges:
    """The remaining user ranges of the batches running (or next) in the job's lanes, read from
    ``{prefix}wpmsync_job_batches`` every ``interval`` s on a root connection."""

    def __init__(self, db: str, lanes: int, interval: float = 0.25) -> None:
        self.db, self.lanes, self.interval = db, lanes, interval
        self.job_id: str | None = None
        self.ranges: list[tuple[int, int]] = []
        self.reads = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="wpmsbench-ranges", daemon=True)

    def start(self) -> "RunningRanges":
        self._thread.start()
        return self

    def _run(self) -> None:
        conn = fx_connect(self.db)
        table = f"`{PREFIX}wpmsync_job_batches`"
        try:
            with conn.cursor() as cur:
                while not self._stop.is_set():
                    if self.job_id is None:
                        self._stop.wait(self.interval)
                        continue
                    try:
                        cur.execute(
                            f"SELECT b.first_user, b.last_user FROM {table} b JOIN (SELECT MIN(seq) AS seq FROM "
                            f"{table} WHERE job_id = %s AND state = 'pending' GROUP BY seq MOD %s) f "
                            "ON f.seq = b.seq WHERE b.job_id = %s AND b.state = 'pending'",
                            (self.job_id, self.lanes, self.job_id))
                        self.ranges = [(int(a), int(b)) for a, b in cur.fetchall() if int(a) <= int(b)]
                        self.reads += 1
                    except Exception:  # noqa: BLE001 - the table may not exist yet
                        self.ranges = []
                    self._stop.wait(self.interval)
        finally:
            conn.close()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


# ---------------------------------------------------------------- the load

class Load:
    """``clients`` threads issuing WordPress requests back to back (``pause`` s apart)."""

    def __init__(self, port: int, host: str, site_paths: list[str], user_range: tuple[int, int],
                 logins: list[tuple[int, str]], mix: dict[str, int], clients: int, pause: float,
                 running: RunningRanges) -> None:
        self.port, self.host = port, host
        self.site_paths = site_paths
        self.lo, self.hi = user_range
        self.logins = logins
        self.login_ids = [uid for uid, _ in logins]
        self.kinds = [k for k in KINDS if mix.get(k, 0) > 0]
        self.weights = [mix[k] for k in self.kinds]
        self.clients, self.pause = clients, pause
        self.running = running
        self.phase = "warmup"
        self.samples: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        for i in range(self.clients):
            t = threading.Thread(target=self._client, args=(i,), name=f"wpmsbench-client-{i}", daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=120)

    # -- picking users
    def _uid(self, rng: random.Random) -> tuple[int, bool]:
        ranges = self.running.ranges
        if ranges:
            lo, hi = rng.choice(ranges)
            return rng.randint(lo, hi), True
        return rng.randint(self.lo, self.hi), False

    def _login_user(self, rng: random.Random) -> tuple[str, bool]:
        ranges = list(self.running.ranges)
        rng.shuffle(ranges)
        for lo, hi in ranges:
            a, b = bisect.bisect_left(self.login_ids, lo), bisect.bisect_right(self.login_ids, hi)
            if a < b:
                return self.logins[rng.randrange(a, b)][1], True
        return rng.choice(self.logins)[1], False

    # -- one request
    def _request(self, method: str, path: str, body: bytes | None = None,
                 headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        try:
            conn.request(method, path, body=body, headers={"Host": self.host, "Connection": "close",
                                                           **(headers or {})})
            resp = conn.getresponse()
            data = resp.read()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
        finally:
            conn.close()

    def one(self, kind: str, rng: random.Random) -> dict[str, Any]:
        sample: dict[str, Any] = {"kind": kind, "phase": self.phase, "t": time.time()}
        in_batch = False
        start = time.perf_counter()
        try:
            if kind == "view":
                status, _, _ = self._request("GET", rng.choice(self.site_paths))
                ok = status == 200
            elif kind == "login":
                login, in_batch = self._login_user(rng)
                form = urllib.parse.urlencode({"log": login, "pwd": LOGIN_PASSWORD, "wp-submit": "Log In",
                                               "redirect_to": f"http://{self.host}/wp-admin/", "testcookie": "1"})
                status, headers, _ = self._request(
                    "POST", "/wp-login.php", form.encode(),
                    {"Content-Type": "application/x-www-form-urlencoded",
                     "Cookie": "wordpress_test_cookie=WP%20Cookie%20check"})
                ok = status == 302 and "/wp-admin/" in headers.get("location", "")
            else:
                uid, in_batch = self._uid(rng)
                sample["uid"] = uid
                status, _, data = self._request("GET", f"/{TOUCH_FILE}?uid={uid}")
                ok = False
                if status == 200:
                    try:
                        doc = json.loads(data)
                        sample["update_ms"] = float(doc["ms"])
                        ok = bool(doc["ok"])
                        if doc.get("error"):
                            sample["error"] = str(doc["error"])[:300]
                    except (ValueError, KeyError, TypeError):
                        sample["error"] = f"not JSON: {data[:200]!r}"
            sample["status"] = status
        except Exception as exc:  # noqa: BLE001 - a failed request is counted
            ok = False
            sample["status"] = None
            sample["error"] = f"{type(exc).__name__}: {exc}"
        sample["latency"] = time.perf_counter() - start
        sample["ok"] = ok
        sample["in_batch"] = in_batch
        return sample

    def _client(self, i: int) -> None:
        rng = random.Random(1000 + i)
        while not self._stop.is_set():
            kind = rng.choices(self.kinds, self.weights)[0]
            sample = self.one(kind, rng)
            with self._lock:
                self.samples.append(sample)
            if self.pause:
                self._stop.wait(self.pause)

    def of(self, phase: str, kind: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return [s for s in self.samples if s["phase"] == phase and (kind is None or s["kind"] == kind)]


def latency_stats(samples: list[dict[str, Any]]) -> dict[str, Any]:
    ms = [s["latency"] * 1000 for s in samples]
    out: dict[str, Any] = {"n": len(samples), "failures": sum(1 for s in samples if not s["ok"]),
                           "p50_ms": pct(ms, 50) if ms else None, "p95_ms": pct(ms, 95) if ms else None,
                           "max_ms": max(ms) if ms else None,
                           "over_2s": sum(1 for v in ms if v > LOCK_WAIT_LIMIT_MS)}
    upd = [s["update_ms"] for s in samples if "update_ms" in s]
    if upd:
        out.update({"update_p50_ms": pct(upd, 50), "update_p95_ms": pct(upd, 95), "update_max_ms": max(upd),
                    "update_over_2s": sum(1 for v in upd if v > LOCK_WAIT_LIMIT_MS)})
    if any(s["kind"] in ("touch", "login") for s in samples):
        out["in_running_batch"] = sum(1 for s in samples if s.get("in_batch"))
    errors = Counter(s.get("error") or f"HTTP {s.get('status')}" for s in samples if not s["ok"])
    if errors:
        out["errors"] = dict(errors.most_common(5))
    return out


# ---------------------------------------------------------------- the functions app, in this process

def functions_env(db: str, conn_string: str, cap: int, batch_seconds: float,
                  batch_size: int | None = None) -> dict[str, str]:
    return {**({"WPMSYNC_BATCH_SIZE": str(batch_size)} if batch_size else {}),
        "WPMSYNC_DB_HOST": "127.0.0.1", "WPMSYNC_DB_PORT": "3306", "WPMSYNC_DB_USER": ENGINE_USER,
        "WPMSYNC_DB_PASSWORD": ENGINE_PASSWORD, "WPMSYNC_DB_NAME": db, "WPMSYNC_TABLE_PREFIX": PREFIX,
        "WPMSYNC_DB_SSL": "false", "WPMSYNC_MAX_PARALLEL_BATCHES": str(cap),
        "WPMSYNC_BATCH_SECONDS": f"{batch_seconds:g}", "AzureWebJobsStorage": conn_string,
        "WPMSYNC_HOOK_SECRET": HOOK_SECRET, "WPMSYNC_RECONCILE_SCHEDULE": "0 */15 * * * *",
        "WPMSYNC_KEY_VAULT_URL": "", "WPMSYNC_WORDPRESS_URL": "",
    }


def parse_ts(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value.rstrip("Z"))


def wait_for_job(local: Any, job_id: str, timeout: float, interval: float = 0.5,
                 on_poll: Callable[[dict], None] | None = None) -> tuple[dict[str, Any], float]:
    """Poll the job status function until the job is done or failed: (last status, wall time of
    the poll that saw it)."""
    deadline = time.monotonic() + timeout
    while True:
        st = local.job(job_id)
        if on_poll is not None:
            on_poll(st)
        if st.get("state") in ("done", "failed"):
            return st, time.perf_counter()
        if time.monotonic() > deadline:
            raise RuntimeError(f"job {job_id} not done after {timeout:.0f} s: {json.dumps(st)[:2000]}")
        time.sleep(interval)


def job_seconds(st: dict[str, Any]) -> float | None:
    a, b = parse_ts(st.get("created_at")), parse_ts(st.get("finished_at"))
    return (b - a).total_seconds() if a and b else None


def reconcile_pass(label: str, full: bool | None) -> dict[str, Any]:
    """One pass as the timer runs it; ``full=None``: the keyword is not passed."""
    from blueprints import common
    from wpmsync.reconcile import reconcile

    t0 = time.perf_counter()
    engine = common.engine("timer")
    opened = time.perf_counter() - t0
    try:
        q0 = pb.questions(engine.conn)
        q1 = pb.questions(engine.conn)
        show_cost = q1 - q0
        kwargs = {} if full is None else {"full": full}
        t1 = time.perf_counter()
        result = reconcile(engine, common.send, common.notify_wordpress, **kwargs)
        seconds = time.perf_counter() - t1
        q2 = pb.questions(engine.conn)
    finally:
        engine.close()
    missing = result.get("sites_missing_members")
    return {"label": label, "asked": "default" if full is None else ("full" if full else "incremental"),
            "pass": result.get("pass"), "status": result.get("status"), "reason": result.get("reason"),
            "full_because": result.get("full_because"), "seconds": seconds, "engine_open_seconds": opened,
            "statements": q2 - q1 - show_cost, "reported_statements": result.get("statements"),
            "changed_users": result.get("changed_users"), "new_sites": result.get("new_sites"),
            "sites_missing_members": len(missing) if isinstance(missing, list) else None,
            "job_id": result.get("job_id"), "repaired": (result.get("repaired") or {}).get("rows")
            if isinstance(result.get("repaired"), dict) else None}


# ---------------------------------------------------------------- report

def fmt(v: Any, digits: int = 0) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("PASS" if ok else "FAIL")


def report(r: dict[str, Any]) -> None:
    lat = r["latency"]
    print(f"## wpmsync load benchmark (issue 12): {r['network']['sites']} sites x {r['network']['users']} users, "
          f"{r['settings']['workers']} worker processes, cap {r['settings']['cap']}, batch_seconds "
          f"{r['settings']['batch_seconds']:g}, batch_size {r['settings']['batch_size']}, {r['settings']['clients']} clients ({r['settings']['pause_ms']:g} ms "
          f"pause, mix {r['settings']['mix']}), {os.cpu_count()} CPUs")
    print(f"source {r['network']['source']} ({r['network']['source_state']}); idle {lat['idle_seconds']:.1f} s, "
          f"during {lat['during_seconds']:.1f} s")
    print()
    print("### WordPress requests (client latency, ms)")
    print()
    print("| kind | idle n | idle p50 | idle p95 | idle max | idle fail | during n | during p50 | during p95 | "
          "during max | during fail | p95 during/idle |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for kind in (*KINDS, "all"):
        a, b = lat["idle"][kind], lat["during"][kind]
        ratio = (b["p95_ms"] / a["p95_ms"]) if a.get("p95_ms") and b.get("p95_ms") else None
        print(f"| {kind} | {a['n']} | {fmt(a['p50_ms'], 1)} | {fmt(a['p95_ms'], 1)} | {fmt(a['max_ms'], 1)} | "
              f"{a['failures']} | {b['n']} | {fmt(b['p50_ms'], 1)} | {fmt(b['p95_ms'], 1)} | {fmt(b['max_ms'], 1)} | "
              f"{b['failures']} | {fmt(ratio, 2)}x |")
    ti, td = lat["idle"]["touch"], lat["during"]["touch"]
    print(f"| touch: update_user_meta in PHP | {ti['n']} | {fmt(ti.get('update_p50_ms'), 2)} | "
          f"{fmt(ti.get('update_p95_ms'), 2)} | {fmt(ti.get('update_max_ms'), 2)} | - | {td['n']} | "
          f"{fmt(td.get('update_p50_ms'), 2)} | {fmt(td.get('update_p95_ms'), 2)} | {fmt(td.get('update_max_ms'), 2)} "
          f"| - | - |")
    print()
    print(f"during: {td.get('in_running_batch', 0)} of {td['n']} touches and "
          f"{lat['during']['login'].get('in_running_batch', 0)} of {lat['during']['login']['n']} logins were for a user "
          "inside a batch running (or next) in its lane; the rest from the whole range")
    for phase in ("idle", "during"):
        for kind in KINDS:
            errs = lat[phase][kind].get("errors")
            if errs:
                print(f"{phase} {kind} failures: {errs}")
    print()
    t = r["targets"]
    print("### Targets")
    print()
    print("| target | measured | verdict |")
    print("|---|---|---|")
    for row in t:
        print(f"| {row['target']} | {row['measured']} | {verdict(row['ok'])} |")
    print()
    s = r["sync"]
    print("### Sync of every membership through the queue path, and the steps")
    print()
    print("| figure | value |")
    print("|---|---|")
    for k, v in s["table"]:
        print(f"| {k} | {v} |")
    print()
    print("### Reconcile on the synced copy")
    print()
    print("| pass | asked | ran as | status | seconds | statements (Questions) | changed users | new sites | "
          "sites missing members | note |")
    print("|---|---|---|---|---:|---:|---:|---:|---:|---|")
    for p in r["reconcile"]["passes"]:
        if p.get("unavailable"):
            print(f"| {p['label']} | {p['asked']} | - | incremental not available | - | - | - | - | - | - |")
            continue
        note = p.get("full_because") or p.get("reason") or ""
        if p.get("job"):
            note = (note + "; " if note else "") + p["job"]
        print(f"| {p['label']} | {p['asked']} | {fmt(p['pass'])} | {fmt(p['status'])} | {p['seconds']:.3f} | "
              f"{p['statements']} | {fmt(p['changed_users'])} | "
              f"{fmt(len(p['new_sites']) if isinstance(p['new_sites'], list) else p['new_sites'])} | "
              f"{fmt(p['sites_missing_members'])} | {note} |")
    print()
    if r["oddities"]:
        print("### Odd things seen")
        print()
        for line in r["oddities"]:
            print(f"- {line}")
        print()


# ---------------------------------------------------------------- orchestration

def parse_mix(text: str) -> dict[str, int]:
    out: dict[str, int] = {}
    try:
        for part in text.split(","):
            k, v = part.split("=")
            if k.strip() not in KINDS:
                raise ValueError(k)
            out[k.strip()] = int(v)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: want e.g. view=5,login=2,touch=3") from None
    if sum(out.values()) <= 0:
        raise argparse.ArgumentTypeError("the mix needs a positive weight")
    return out


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    size = ap.add_mutually_exclusive_group()
    size.add_argument("--large", dest="size", action="store_const", const="large",
                      help="101 sites x 10,000 users (100 subsites; the default)")
    size.add_argument("--small", dest="size", action="store_const", const="small",
                      help="21 sites x 1,000 users (20 subsites; a quick try)")
    ap.add_argument("--network", type=ob.parse_size, default=None,
                    help="SUBSITESxUSERS instead of --large/--small, e.g. 50x5000")
    ap.add_argument("--workers", type=int, default=4, help="batch worker processes (4)")
    ap.add_argument("--cap", type=int, default=4, help="WPMSYNC_MAX_PARALLEL_BATCHES, the writer slots (4)")
    ap.add_argument("--batch-seconds", type=float, default=1.0, help="WPMSYNC_BATCH_SECONDS (1)")
    ap.add_argument("--batch-size", type=int, default=None,
                    help="WPMSYNC_BATCH_SIZE, memberships per batch (default: the engine's, 50000)")
    ap.add_argument("--clients", type=int, default=2, help="concurrent WordPress clients (2)")
    ap.add_argument("--pause-ms", type=float, default=50.0, help="pause of a client between two requests (50)")
    ap.add_argument("--mix", type=parse_mix, default=parse_mix("view=5,login=2,touch=3"),
                    help="request kinds' weights (view=5,login=2,touch=3)")
    ap.add_argument("--idle-seconds", type=float, default=20.0, help="the load alone (20)")
    ap.add_argument("--warmup-seconds", type=float, default=3.0, help="load before the idle phase, not counted (3)")
    ap.add_argument("--login-users", type=int, default=200, help="users given a known password (200)")
    ap.add_argument("--php-workers", type=int, default=4, help="PHP_CLI_SERVER_WORKERS of the web server (4)")
    ap.add_argument("--max-poll-seconds", type=float, default=1.0,
                    help="a worker's longest wait before polling an empty queue again (1; the host: 10)")
    ap.add_argument("--conn-poll-ms", type=float, default=20.0, help="connection count poll interval (20)")
    ap.add_argument("--new-users", type=int, default=100, help="users WordPress creates before pass (ii) (100)")
    ap.add_argument("--job-timeout", type=float, default=1800.0, help="seconds to wait for a job (1800)")
    ap.add_argument("--keep", action="store_true", help="keep every database (copies and source)")
    ap.add_argument("--keep-source", action="store_true", help="keep the source network (a later run reuses it)")
    args = ap.parse_args(argv)
    if args.network is None:
        args.network = (20, 1000) if args.size == "small" else (100, 10000)
    args.label = args.size or "large"
    if args.network not in ((20, 1000), (100, 10000)):
        args.label = f"{args.network[0]}x{args.network[1]}"
    if min(args.workers, args.cap, args.clients) < 1 or args.batch_seconds <= 0 or args.idle_seconds <= 0:
        ap.error("need --workers, --cap, --clients >= 1 and positive --batch-seconds, --idle-seconds")
    return args


def _on_sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _on_sigterm)
    from wpfixture.azurite import start_azurite
    from wpfixture.azurite import stop as stop_azurite
    from wpfixture.webserver import WordPressServer

    dbs = ob.Databases()
    tmp = Path(tempfile.mkdtemp(prefix="wpmsbench-load-"))
    plain_content = tmp / "wp-content-plain"
    azurite = None
    server = None
    workers: Workers | None = None
    poller: ConnectionPoller | None = None
    running: RunningRanges | None = None
    load: Load | None = None
    users_made = False
    saved_env: dict[str, str | None] = {}
    src = None
    failed = True  # until the run completes: on an error the server's files and the logs are kept
    try:
        sites_n, users_n = args.network
        src = ob.source_network(dbs, sites_n, users_n)
        load_db = ob.copy_of(dbs, src, f"load_{args.label}")
        sql_db = ob.copy_of(dbs, src, f"loadsql_{args.label}")
        create_mysql_users(load_db)
        users_made = True
        logins = timed(f"wp_set_password for {args.login_users} users",
                       lambda: set_passwords(load_db, src.user_ids, args.login_users, plain_content))
        azurite, conn_string = timed("start Azurite", lambda: start_azurite(tmp / "azurite"))
        env = functions_env(load_db, conn_string, args.cap, args.batch_seconds, args.batch_size)
        for k, v in env.items():  # this process runs the HTTP functions' user code (sync, status, timer)
            saved_env[k] = os.environ.get(k)
            os.environ[k] = v
        from wpmsync.secrets import reset_secrets

        reset_secrets()
        from wpfixture.local_host import LocalFunctions

        local = LocalFunctions(HOOK_SECRET)
        local.common.reset()
        local.common.queue().ensure()
        local.common.queue().poison().ensure()
        workers = Workers(args.workers, env, tmp, args.max_poll_seconds)
        timed(f"start {args.workers} worker processes", workers.wait_ready)

        server = WordPressServer(load_db, PREFIX, db_user=WP_USER, db_password=WP_PASSWORD,
                                 workers=args.php_workers, debug_log=False)
        timed("start WordPress (php -S)", server.start)
        assert server.tmp is not None
        (server.tmp / "docroot" / TOUCH_FILE).write_text(TOUCH_PHP)
        paths = [str(p) for (p,) in src_query(load_db, "SELECT path FROM {p}blogs WHERE blog_id > 1 ORDER BY blog_id")]
        user_range = (min(src.user_ids), max(src.user_ids))

        poller = ConnectionPoller(args.conn_poll_ms / 1000).start()
        running = RunningRanges(load_db, args.cap).start()
        load = Load(server.port, server.domain, paths, user_range, logins, args.mix, args.clients,
                    args.pause_ms / 1000, running)
        # warm-up: one of each kind, checked, then the clients
        rng = random.Random(7)
        for kind in KINDS:
            s = load.one(kind, rng)
            if not s["ok"]:
                raise RuntimeError(f"warm-up {kind} request failed: {s}\n{server.log_path.read_text(errors='replace')[-3000:]}")
        poller.phase = load.phase = "warmup"
        load.start()
        time.sleep(args.warmup_seconds)

        # ---- (1) idle
        log(f"(1) idle: the load alone for {args.idle_seconds:.0f} s")
        poller.phase = load.phase = "idle"
        idle_start = time.perf_counter()
        time.sleep(args.idle_seconds)
        idle_seconds = time.perf_counter() - idle_start

        # ---- (2) during: a sync of every membership through the queue
        log("(2) during: POST /api/sync (every live site), workers run it")
        poller.phase = load.phase = "during"
        during_start = time.perf_counter()
        window = [time.time(), None]  # wall clock of the during phase (workers' records use it)
        status_code, accepted = local.http("sync", "POST", "sync", {})
        if status_code != 202:
            raise RuntimeError(f"POST /api/sync answered {status_code}: {accepted}")
        job_id = accepted["job_id"]
        running.job_id = job_id
        polls = []
        st, seen = wait_for_job(local, job_id, args.job_timeout, on_poll=lambda s: polls.append(1))
        poller.phase = load.phase = "after"
        window[1] = time.time()
        running.job_id = None
        running.ranges = []
        during_seconds = seen - during_start
        log(f"    job {job_id}: {st['state']}, {st['memberships_added']} memberships, batches {st['batches']}, "
            f"{during_seconds:.1f} s")
        load.stop()
        poller.phase = "after"
        batch_rows = src_query(load_db, "SELECT seq, attempts, state, error, added FROM {p}wpmsync_job_batches "
                                        "WHERE job_id = %s ORDER BY seq", (job_id,))

        # ---- (4) plain SQL on the fresh copy (no load)
        poller.phase = "plain_sql"
        sql = timed("plain set-based SQL on the fresh copy", lambda: pb.run_plain_sql(sql_db))

        # ---- (5) reconcile
        poller.phase = "reconcile"
        from wpmsync import reconcile as reconcile_mod

        has_full = "full" in inspect.signature(reconcile_mod.reconcile).parameters
        with local.common.engine() as engine:
            engine.change_settings(new_user=True, new_site=True)
        passes: list[dict[str, Any]] = []

        def run_pass(label: str, full: bool) -> dict[str, Any] | None:
            if not has_full:
                if full:
                    p = reconcile_pass(label, None)
                    p["asked"] = "full (default: no full keyword)"
                else:
                    p = {"label": label, "asked": "incremental", "unavailable": True}
                passes.append(p)
                return p
            p = timed(f"reconcile {label}", lambda: reconcile_pass(label, full))
            passes.append(p)
            return p

        run_pass("(0) first pass, no marks", False)
        run_pass("(i) in sync", False)
        made = timed(f"WordPress core: {args.new_users} wpmu_create_user + 1 wpmu_create_blog", lambda: WordPress(
            load_db, PREFIX, content_dir=str(plain_content)).run([
                {"op": "create_users", "prefix": "wpmsnew", "count": args.new_users, "start": 1, "width": 0,
                 "email_domain": "example.test"},
                {"op": "create_site", "slug": "wpmsnewsite", "title": "New site", "network_id": 1}]))
        p2 = run_pass(f"(ii) after {args.new_users} users + 1 site by WordPress", False)
        job2 = None
        if p2 and not p2.get("unavailable") and p2.get("status") == "queued" and p2.get("job_id"):
            st2, _ = wait_for_job(local, p2["job_id"], args.job_timeout)
            job2 = {"state": st2["state"], "memberships_added": st2["memberships_added"],
                    "seconds": job_seconds(st2), "batches": st2["batches"]}
            p2["job"] = (f"its job: {st2['state']}, {st2['memberships_added']} memberships in "
                         f"{fmt(job_seconds(st2), 1)} s ({st2['batches']['total']} batches)")
        run_pass("(ii') incremental after that job", False)
        run_pass("(iii) full pass", True)
        poller.phase = "end"

        # ---- stop the workers, collect
        results = timed("stop the workers", workers.stop)
        poller.stop()

        r = summarize(args, src, st, job_id, during_seconds, idle_seconds, load, poller, results, batch_rows, sql,
                      passes, job2, len(made[0]) if made else None, logins, server, window)
        report(r)
        print(json.dumps(r["json"], sort_keys=True, default=str))
        failed = st["state"] != "done" or any(w["errors"] for w in results)
        return 1 if failed else 0
    finally:
        for thing in (load, running, poller):
            if thing is not None:
                try:
                    thing.stop()
                except Exception:  # noqa: BLE001
                    pass
        if workers is not None:
            try:
                workers.stop(timeout=20)
            except Exception as exc:  # noqa: BLE001
                print(f"warning: stopping the workers: {exc}", file=sys.stderr)
        if server is not None:
            server.stop()
            if not failed:
                server.cleanup()
            else:
                log(f"WordPress server files kept in {server.tmp}")
        if azurite is not None:
            stop_azurite(azurite)
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        if users_made:
            drop_mysql_users()
        if args.keep:
            log(f"kept databases: {', '.join(dbs.names)}")
        else:
            keep = {src.db} if (src is not None and args.keep_source) else set()
            timed("drop benchmark databases", lambda: dbs.drop_all(keep))
        if failed:
            log(f"worker logs kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def src_query(db: str, sql: str, args: Any = None) -> list[tuple]:
    conn = fx_connect(db)
    try:
        with conn.cursor() as cur:
            cur.execute(sql.replace("{p}", PREFIX), args)
            return list(cur.fetchall())
    finally:
        conn.close()


def summarize(args: argparse.Namespace, src: Any, st: dict[str, Any], job_id: str, during_seconds: float,
              idle_seconds: float, load: Load, poller: ConnectionPoller, results: list[dict[str, Any]],
              batch_rows: list[tuple], sql: Any, passes: list[dict[str, Any]], job2: dict[str, Any] | None,
              new_users: int | None, logins: list, server: Any, window: list[float]) -> dict[str, Any]:
    latency: dict[str, Any] = {"idle_seconds": idle_seconds, "during_seconds": during_seconds}
    for phase in ("idle", "during"):
        latency[phase] = {kind: latency_stats(load.of(phase, kind)) for kind in KINDS}
        latency[phase]["all"] = latency_stats(load.of(phase))
    sync_seconds = job_seconds(st)
    added = int(st["memberships_added"])
    queue_rate = added / sync_seconds if sync_seconds else None
    sql_rate = sql.caps_rows / sql.seconds if sql.seconds > 0 else None
    ratio = queue_rate / sql_rate if queue_rate and sql_rate else None

    def inside(rec: dict[str, Any]) -> bool:  # started during the sync (not the reconcile's job later)
        return window[0] <= rec["t"] <= window[1]

    all_messages = [m for w in results for m in w["messages"]]
    messages = [m for m in all_messages if inside(m)]
    steps = [s for w in results for s in w["steps"] if inside(s)]
    later = Counter(m["kind"] for m in all_messages if not inside(m))
    first_prepare = min((m["t"] for m in messages if m["kind"] == "prepare"), default=None)
    first_batch = min((m["t"] for m in messages if m["kind"] == "batch"), default=None)
    last_batch_end = max((m["t"] + m["seconds"] for m in messages if m["kind"] == "batch"), default=None)
    errors = [e for w in results for e in w["errors"]]
    log_counts: Counter[str] = Counter()
    for w in results:
        log_counts.update(w["log_counts"])
    warnings = [x for w in results for x in w["warnings"]]
    requeued = sum(n for k, n in log_counts.items() if "waits for a writer slot" in k)
    dropped = sum(n for k, n in log_counts.items() if "dropping" in k)
    retried_tx = sum(n for k, n in log_counts.items() if "(try " in k or "connection was lost" in k)
    kinds = Counter(m["kind"] for m in messages)
    msg_fail = sum(1 for m in messages if m["failed"])
    batch_msgs = [m["seconds"] for m in messages if m["kind"] == "batch"]
    step_s = [s["seconds"] for s in steps]
    step_users = [s["users"] for s in steps]
    step_rates = [s["sites"] * s["users"] / s["seconds"] for s in steps if s["seconds"] > 0]
    # the rate throttle had learned when it sized each step of the sync, per worker: first, median, last
    learned = []
    for w in results:
        rates = [s["rate_before"] for s in w["steps"] if inside(s)]
        if rates:
            learned.append((rates[0], statistics.median(rates), rates[-1], len(rates)))
    attempts = Counter(int(a) for _, a, _, _, _ in batch_rows)
    batch_errors = [(int(seq), e) for seq, _, _, e, _ in batch_rows if e]
    dup_msgs = Counter((m["kind"], m["dequeue_count"]) for m in messages)

    cap = args.cap
    peak_ours = poller.peak("during", ENGINE_USER)
    peak_ours_all = max((v for ph in poller.samples.values() for v in ph[ENGINE_USER]), default=None)
    peak_wp_idle, peak_wp_during = poller.peak("idle", WP_USER), poller.peak("during", WP_USER)
    li, ld = latency["idle"]["all"], latency["during"]["all"]
    p95_ratio = ld["p95_ms"] / li["p95_ms"] if li.get("p95_ms") and ld.get("p95_ms") else None
    upd_max = latency["during"]["touch"].get("update_max_ms")
    upd_over = latency["during"]["touch"].get("update_over_2s", 0)
    req_over = ld["over_2s"]
    # the target's passes: (i) in sync and (ii) after WordPress's new users and site
    incr = [p for p in passes if p["label"].startswith(("(i) ", "(ii) ")) and not p.get("unavailable")]

    targets = [
        {"target": "WordPress p95 during <= 1.5x idle (all requests)",
         "measured": f"{fmt(li.get('p95_ms'), 1)} -> {fmt(ld.get('p95_ms'), 1)} ms = {fmt(p95_ratio, 2)}x",
         "ok": None if p95_ratio is None else p95_ratio <= 1.5},
        {"target": "no update_user_meta waits > 2 s on a lock (touch, in PHP)",
         "measured": f"max {fmt(upd_max, 1)} ms; {upd_over} over 2 s; requests of any kind over 2 s (client): "
                     f"{req_over} of {ld['n']}",
         "ok": None if upd_max is None else upd_over == 0},
        {"target": "WordPress request failures during = 0",
         "measured": f"{ld['failures']} of {ld['n']} (idle: {li['failures']} of {li['n']})",
         "ok": ld["failures"] == 0},
        {"target": f"our connections (wpmsync_bench) peak <= cap + 2 = {cap + 2}",
         "measured": f"during {fmt(peak_ours)}, whole run {fmt(peak_ours_all)} "
                     f"({poller.n('during')} samples during, {poller.over('during', ENGINE_USER, cap + 2)} over); "
                     f"WordPress (wpmsbench_wp) peak idle {fmt(peak_wp_idle)} / during {fmt(peak_wp_during)}",
         "ok": None if peak_ours is None else peak_ours <= cap + 2},
        {"target": "queue path >= 0.7x plain set-based SQL (memberships/s)",
         "measured": f"{fmt(queue_rate)} /s vs {fmt(sql_rate)} /s = {fmt(ratio, 2)}x",
         "ok": None if ratio is None else ratio >= 0.7},
        {"target": "incremental reconcile < 1 s",
         "measured": "; ".join(f"{p['label'].split(' ')[0]} {p['seconds']:.3f} s / {p['statements']} stmts"
                               for p in incr) or "incremental not available",
         "ok": None if not incr else all(p["seconds"] < 1.0 and p.get("pass") == "incremental" for p in incr)},
    ]
    sync_table = [
        ("job", f"{job_id}: {st['state']}, batches {st['batches']['done']}/{st['batches']['total']} "
                f"(failed {st['batches']['failed']}), {len(st.get('errors') or [])} errors in its status"),
        ("memberships added", f"{added} (expected {(src.sites + 1) * src.users})"),
        ("job start -> done (server clock)", f"{fmt(sync_seconds, 2)} s; client: sync call -> done seen "
                                             f"{during_seconds:.2f} s"),
        ("queue path rate", f"{fmt(queue_rate)} memberships/s"),
        ("plain SQL (fresh copy, no load)", f"{sql.caps_rows} memberships in {sql.seconds:.2f} s = {fmt(sql_rate)} /s "
                                            f"({sql.statements} statements)"),
        ("ratio queue / plain SQL", f"{fmt(ratio, 2)}x"),
        ("queue messages handled during the sync", ", ".join(f"{k} {n}" for k, n in sorted(kinds.items()))
         + f"; failed {msg_fail}; by (kind, dequeue_count): {dict(sorted(dup_msgs.items()))}"
         + (f" (later, the reconcile's job: {dict(later)})" if later else "")),
        ("sync call -> prepare started -> first batch started; last batch ended -> done seen",
         f"{fmt(first_prepare - window[0] if first_prepare else None, 2)} s -> "
         f"{fmt(first_batch - window[0] if first_batch else None, 2)} s; "
         f"{fmt(window[1] - last_batch_end if last_batch_end else None, 2)} s"),
        ("batch message time", f"median {fmt(statistics.median(batch_msgs) if batch_msgs else None, 2)} s, "
                               f"max {fmt(max(batch_msgs) if batch_msgs else None, 2)} s"),
        ("requeued without a writer slot (5-15 s later)", str(requeued)),
        ("dropped messages / connection-loss or deadlock retries (logs)", f"{dropped} / {retried_tx}"),
        ("batch rows' attempts", ", ".join(f"{a} attempt(s): {n}" for a, n in sorted(attempts.items()))),
        ("steps (apply_batch calls)", f"{len(steps)}: seconds median {fmt(statistics.median(step_s) if step_s else None, 3)}"
                                      f" / p95 {fmt(pct(step_s, 95) if step_s else None, 3)} / max "
                                      f"{fmt(max(step_s) if step_s else None, 3)}; user ids per step median "
                                      f"{fmt(statistics.median(step_users) if step_users else None)} (min "
                                      f"{fmt(min(step_users) if step_users else None)}, max "
                                      f"{fmt(max(step_users) if step_users else None)})"),
        ("step rate (user ids x sites / s, one worker)", f"median {fmt(statistics.median(step_rates) if step_rates else None)}, "
                                          f"min {fmt(min(step_rates) if step_rates else None)}, max "
                                          f"{fmt(max(step_rates) if step_rates else None)}"),
        ("throttle's rate sizing the steps (memberships/s), per worker: first / median / last (steps)",
         ", ".join(f"{fmt(a)} / {fmt(m)} / {fmt(z)} ({n})" for a, m, z, n in learned)
         + f"; the budget of a step is rate x {args.batch_seconds:g} s x 0.8 / sites"),
        ("steps over batch_seconds", f"{sum(1 for x in step_s if x > args.batch_seconds)} of {len(steps)}"),
        ("worker errors (tracebacks)", str(len(errors))),
    ]
    oddities: list[str] = []
    for e in errors[:5]:
        oddities.append("worker error: " + e.strip().replace("\n", " | ")[-1500:])
    for w in warnings[:10]:
        oddities.append("worker log: " + w.replace("\n", " | ")[:600])
    for seq, e in batch_errors[:5]:
        oddities.append(f"batch {seq} error column: {e[:500]}")
    if poller.errors:
        oddities.append("connection poller: " + poller.errors[0][-500:])
    try:
        wp_log = [ln for ln in server.log_path.read_text(errors="replace").splitlines()
                  if any(w in ln for w in ("PHP Fatal", "PHP Warning", "PHP Notice", "PHP Parse", "PHP Deprecated"))]
    except (OSError, AssertionError):
        wp_log = []
    if wp_log:
        oddities.append(f"PHP server log: {len(wp_log)} PHP error lines, e.g. " + " | ".join(wp_log[:3])[:800])
    if peak_ours is not None and peak_ours > cap + 2:
        oddities.append(f"our connection peak {peak_ours} > cap + 2")
    reconcile_out = {"passes": passes, "job_ii": job2, "new_users": new_users}
    net = {"sites": src.sites + 1, "users": src.users, "source": src.db,
           "source_state": "reused" if src.reused else f"built in {src.build_seconds:.0f} s"}
    settings = {"workers": args.workers, "cap": cap, "batch_seconds": args.batch_seconds,
                "batch_size": args.batch_size or "default", "clients": args.clients,
                "pause_ms": args.pause_ms, "mix": ",".join(f"{k}={v}" for k, v in args.mix.items()),
                "idle_seconds": args.idle_seconds, "login_users": len(logins), "php_workers": args.php_workers,
                "max_poll_seconds": args.max_poll_seconds}
    conns = {phase: {"ours_peak": max(v[ENGINE_USER]) if v[ENGINE_USER] else None,
                     "wordpress_peak": max(v[WP_USER]) if v[WP_USER] else None, "samples": len(v[ENGINE_USER])}
             for phase, v in poller.samples.items()}
    j = {"bench": "load_bench", "network": net, "settings": settings, "latency": latency,
         "connections": conns, "sync": {"job_id": job_id, "state": st["state"], "added": added,
                                        "seconds": sync_seconds, "client_seconds": during_seconds,
                                        "rate": queue_rate, "plain_sql_rate": sql_rate,
                                        "plain_sql_seconds": sql.seconds, "plain_sql_rows": sql.caps_rows,
                                        "ratio": ratio, "messages": dict(kinds), "message_failures": msg_fail,
                                        "requeued_no_slot": requeued, "dropped": dropped, "retries_logged": retried_tx,
                                        "steps": len(steps),
                                        "step_seconds_median": statistics.median(step_s) if step_s else None,
                                        "step_seconds_max": max(step_s) if step_s else None,
                                        "step_users_median": statistics.median(step_users) if step_users else None,
                                        "throttle_rates": [{"first": a, "median": m, "last": z, "steps": n}
                                                           for a, m, z, n in learned],
                                        "worker_errors": len(errors),
                                        "batch_attempts": dict(attempts)},
         "reconcile": reconcile_out, "targets": [{k: t[k] for k in ("target", "measured", "ok")} for t in targets]}
    return {"network": net, "settings": settings, "latency": latency, "targets": targets,
            "sync": {"table": sync_table}, "reconcile": reconcile_out, "oddities": oddities, "json": j}


if __name__ == "__main__":
    sys.exit(main())
