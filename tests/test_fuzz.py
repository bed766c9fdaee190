"""Property-based fuzz of every HTTP function and every queue message type (issue #11).

Fuzzed, through the real function objects (``func.HttpRequest`` / ``QueueMessage``) against a copy
of the fixture network built by real WordPress:

- every route of ``blueprints/actions.py`` (sync, sites/{id}/sync, plan, settings, options,
  users/sync, unsync, jobs/{id}, jobs/{id}/undo, journal, health) and ``POST /api/hooks``;
- bodies that are mostly the right shape with one field of the wrong type (digit strings, floats,
  booleans, null, objects, lists, huge and negative numbers, non-ASCII digits such as "²" and
  "١٢", lone surrogates sent as ``\\ud800`` escapes), unknown keys, missing keys, non-JSON and
  too-deep bodies, bodies over 64 KiB; odd headers (``X-Correlation-Id`` of 300 characters or with
  control characters, ``X-Wpmsync-Actor``), query strings (``journal?limit=²``) and route
  parameters;
- hooks signed with the fixture's secret (so the fuzz gets past the HMAC), plus bad timestamps
  (non-ASCII digits, stale, padded) and bad signatures; replays of the same event id;
- ``run_batch`` and ``poisoned_batch`` with garbage and with well-formed messages of unknown jobs
  and of a finished job;
- ``GET /api/health`` with the database settings broken.

Asserted for every input (the contract of issue #11 and ``wpmsync/inputs.py``):

- the answer is JSON, never 5xx, never a traceback (in the body or logged);
- valid input gets a 2xx (or the documented 404/409 for well-formed ids that do not exist or a
  job that is busy); input breaking a rule gets the documented 4xx: 400 with a JSON body
  ``{"error", "field", "correlation_id"}`` whose ``field`` names the bad field, 401 for a bad
  signature or timestamp, 413 over 64 KiB;
- after every refusal, usermeta, sitemeta, users, blogs, every options table and every table of
  our own (``{prefix}wpmsync_%``; the set of table names too) are unchanged (``CHECKSUM TABLE``);
  GET, plan and dry runs never write, even when they answer 2xx; a refused hook may only write
  its own event's row (a replay must get the first answer back), and its replay writes nothing;
- answers never carry connection details (user, host, port, database name), and a correlation id
  in an answer is a safe token (an invalid ``X-Correlation-Id`` is never echoed);
- queue functions never raise (a raise sends the message back into the queue and then to the
  poison queue), send nothing and write nothing for messages of unknown or finished jobs.

Seeded (``derandomize=True``) and bounded: 3,100 examples (about 3,300 calls with the hook
replays) in all, in about 60 to 90 seconds once the fixture network is built.
``WPMSYNC_FUZZ_SCALE`` multiplies every example count (e.g. 0.1 for a smoke run, 5 for a long
one). Outcome counts per status are written to /tmp/wpmsync-fuzz-summary.txt and printed at the
end of the module.
"""
from __future__ import annotations

import collections
import dataclasses
import functools
import hashlib
import hmac
import itertools
import json
import logging
import os
import re
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import azure.functions as func
import pytest
from azure.functions.queue import QueueMessage
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

import function_app  # noqa: F401  (registers the blueprints, as the host does)
from blueprints import actions, batches, common, hooks
from conftest import Net
from fuzz_inputs import (JUNK_BODIES, MAX_ID, TOKEN_RE, actor_header, correlation_header,
                         dumps, not_bool, not_choice, not_id, not_id_list, not_id_text, not_limit_text,
                         not_role, not_role_list, not_switch, role_name, unknown_key)
from wpfixture.db import connect
from wpfixture.local_host import LocalFunctions
from wpmsync import db, signing
from wpmsync.secrets import reset_secrets

SECRET = "fuzz-hook-secret-0123456789abcdef"
SAVED_TABLES = ("jobs", "job_batches")
SCALE = float(os.environ.get("WPMSYNC_FUZZ_SCALE", "1"))
SUMMARY_FILE = Path("/tmp/wpmsync-fuzz-summary.txt")
OUTCOMES: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
# WPMSYNC_FUZZ_SURVEY=1: note every broken rule (count, shortest example) and go on, for a list of
# findings; the tests then pass and the list is printed with the summary.
SURVEY = os.environ.get("WPMSYNC_FUZZ_SURVEY") == "1"
SURVEYED: dict[tuple[str, str], list[Any]] = {}

OK = frozenset({200})
ACCEPTED = frozenset({202, 409})   # a job was queued, or one of the same sites is queued already
BAD = frozenset({400})
NOT_FOUND = frozenset({404})
UNSIGNED = frozenset({401})
MISSING_ROLE = ("skip", "copy")
SCOPES = ("all", "main_to_subsites", "subsites_to_main")
EVENTS = ("user_created", "site_created", "role_changed", "user_removed", "user_added")
JOB_ID_RE = re.compile(r"[0-9a-f]{32}")


def fuzz(examples: int) -> settings:
    """Seeded, no example database, no deadline: the same inputs on every run."""
    return settings(max_examples=max(1, int(examples * SCALE)), derandomize=True, database=None,
                    deadline=None, print_blob=False, phases=(Phase.explicit, Phase.generate, Phase.shrink),
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                           HealthCheck.data_too_large, HealthCheck.filter_too_much,
                                           HealthCheck.large_base_example])


# ------------------------------------------------------------------------------------- the world

class _Tracebacks(logging.Handler):
    """Log records carrying a traceback: a fault, never an answer to input."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info:
            self.records.append(record)


@dataclass(repr=False)
class World:
    """One network copy shared by every example of one test; the checks make each example
    stand alone (every refusal is compared with the tables before it)."""

    net: Net
    name: str
    conn: Any
    logs: _Tracebacks
    counter: Iterator[int] = field(default_factory=itertools.count)
    job_id: str | None = None        # a real sync job (queued or, after finish_job(), done)
    change_id: str | None = None     # a real change in the undo journal (an inline users/sync)
    sent: list[dict] | None = None   # the queue test records what would be sent
    flags: set[str] = field(default_factory=set)
    strategies: dict[Any, Any] = field(default_factory=dict)   # see per_world

    def __repr__(self) -> str:   # short, in Hypothesis' report of a failing case
        return f"World({self.name}, database {self.net.db})"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:   # what Hypothesis prints
        printer.text(repr(self))

    def id(self, key: str) -> int:
        return self.net.ids[key]

    def unique(self) -> str:
        return f"{next(self.counter):08x}"

    @property
    def live(self) -> list[int]:
        return [1] + [self.id(f"site_{s}") for s in ("plain", "authors", "editors", "club", "ghostly")]

    @property
    def dead(self) -> list[int]:
        return [self.id(f"site_{s}") for s in ("archived", "deleted", "spammy")]

    @property
    def foreign_sites(self) -> list[int]:
        return [self.id("net2_main"), self.id("site_net2_second")]

    @property
    def users(self) -> list[int]:
        return [self.id("admin"), *(self.id(f"user{i}") for i in range(1, 9)),
                self.id("user_ed"), self.id("user_spammer"), self.id("user_boss")]

    # -- snapshots ---------------------------------------------------------------------------
    def _watched(self, table: str) -> bool:
        p = self.net.prefix
        return (table in {f"{p}usermeta", f"{p}sitemeta", f"{p}users", f"{p}blogs", f"{p}site", f"{p}options"}
                or bool(re.fullmatch(re.escape(p) + r"[0-9]+_options", table)) or table.startswith(p + "wpmsync_"))

    @property
    def events_table(self) -> str:
        return f"{self.net.prefix}wpmsync_events"

    def snapshot(self, event_id: str | None = None) -> dict[str, Any]:
        """``CHECKSUM TABLE`` of every watched table (a table created since shows as a new key);
        with ``event_id``, also the events table without that event's own row."""
        with self.conn.cursor() as cur:
            cur.execute("SHOW TABLES")
            names = sorted(r[0] for r in cur.fetchall() if self._watched(r[0]))
            cur.execute("CHECKSUM TABLE " + ", ".join(f"`{n}`" for n in names))
            sums: dict[str, Any] = {row[0].split(".", 1)[1]: row[1] for row in cur.fetchall()}
            if event_id is not None and self.events_table in names:
                cur.execute(f"SELECT COUNT(*), COALESCE(BIT_XOR(CRC32(CONCAT_WS(0x1f, event_id, event, answer, "
                            f"received_at))), 0) FROM `{self.events_table}` WHERE BINARY event_id <> %s",
                            (event_id,))
                sums["(other events)"] = cur.fetchone()
        return sums

    def changed(self, before: dict[str, Any], after: dict[str, Any], own_event_may_change: bool) -> list[str]:
        drop = self.events_table if own_event_may_change else "(other events)"
        keys = (before.keys() | after.keys()) - {drop}
        return sorted(k for k in keys if before.get(k) != after.get(k))

    # -- state some tests need -----------------------------------------------------------------
    def make_change(self) -> str:
        """A real change in the journal: user2 joins the club site (inline users/sync)."""
        if self.change_id is None:
            resp = call(actions.users_sync, http_request("POST", "users/sync", dumps(
                {"user_ids": [self.id("user2")], "blog_ids": [self.id("site_club")]})))
            body = json.loads(resp.get_body())
            assert resp.status_code == 200 and JOB_ID_RE.fullmatch(body["job_id"]), body
            self.change_id = body["job_id"]
        return self.change_id

    def make_job(self) -> str:
        """A real sync job of one site, queued (not run)."""
        if self.job_id is None:
            resp = call(actions.sync, http_request("POST", "sync", dumps({"blog_ids": [self.id("site_plain")]})))
            body = json.loads(resp.get_body())
            assert resp.status_code == 202, body
            self.job_id = body["job_id"]
        return self.job_id

    def settle(self) -> None:
        """After an example: a job it queued is marked failed (nobody runs this test's queue), so
        the next example starts with no job in flight and gets the same answer on every replay."""
        self.net.query("UPDATE {p}wpmsync_jobs SET state = 'failed', finished_at = NOW(6) "
                       "WHERE state IN ('queued', 'running')")

    def finish_job(self) -> str:
        """The job above, run to the end through the queue; its rows are kept aside (``restore``)."""
        job_id = self.make_job()
        LocalFunctions(SECRET).drain()
        resp = call(actions.job_status, http_request("GET", "jobs/x", route_params={"job_id": job_id}))
        assert json.loads(resp.get_body())["state"] == "done", resp.get_body()
        with self.conn.cursor() as cur:
            for name in SAVED_TABLES:   # outside the prefix: not watched
                cur.execute(f"CREATE TABLE `fuzzsaved_{name}` AS SELECT * FROM `{self.net.prefix}wpmsync_{name}`")
        return job_id

    def restore(self) -> None:
        """Put the job tables back as ``finish_job`` left them (after an example that wrote there,
        so the next one, and a replay of this one, start from the same state)."""
        with self.conn.cursor() as cur:
            for name in SAVED_TABLES:
                cur.execute(f"DELETE FROM `{self.net.prefix}wpmsync_{name}`")
                cur.execute(f"INSERT INTO `{self.net.prefix}wpmsync_{name}` SELECT * FROM `fuzzsaved_{name}`")


@pytest.fixture
def world(net: Net, azurite: str, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> Iterator[World]:
    """The app pointed at one fresh network copy and a fresh queue, for all examples of a test."""
    monkeypatch.setenv("WPMSYNC_DB_NAME", net.db)
    monkeypatch.setenv("WPMSYNC_TABLE_PREFIX", net.prefix)
    monkeypatch.setenv("WPMSYNC_HOOK_SECRET", SECRET)
    monkeypatch.setenv("WPMSYNC_BATCH_SIZE", "3")
    monkeypatch.setattr(db, "LOCK_BUCKET", 2)
    monkeypatch.setenv("AzureWebJobsStorage", azurite)
    monkeypatch.setattr(common, "QUEUE_NAME", f"wpmsync-{uuid.uuid4().hex[:12]}")
    monkeypatch.delenv("WPMSYNC_WORDPRESS_URL", raising=False)
    reset_secrets()
    common.reset()
    common.queue().ensure()
    common.queue().poison().ensure()
    logs = _Tracebacks()
    logging.getLogger().addHandler(logs)
    conn = connect(net.db, autocommit=True)
    # Our tables are created by the first engine: make them exist before the first snapshot.
    assert call(actions.health, request_get("health")).status_code == 200
    try:
        yield World(net, request.node.name, conn, logs)
    finally:
        logging.getLogger().removeHandler(logs)
        conn.close()
        common.reset()
        reset_secrets()


@pytest.fixture(scope="module", autouse=True)
def _summary(request: pytest.FixtureRequest) -> Iterator[None]:
    """One line per test and one in all: how many calls (shrinking included), by status."""
    yield
    if not OUTCOMES:
        return
    lines = []
    for name, counts in OUTCOMES.items():
        statuses = ", ".join(f"{k}: {v}" for k, v in sorted(counts.items()) if k != "calls")
        lines.append(f"  {name}: {counts['calls']} calls ({statuses})")
    total: collections.Counter[str] = sum(OUTCOMES.values(), collections.Counter())
    statuses = ", ".join(f"{k}: {v}" for k, v in sorted(total.items()) if k != "calls")
    head = f"wpmsync fuzz: {total['calls']} cases ({statuses})"
    if SURVEY:
        lines.append(f"  broken rules (survey): {sum(n for n, _ in SURVEYED.values())} cases")
        for (name, label), (n, example) in sorted(SURVEYED.items()):
            lines.append(f"    [{name}] {label}: {n}x, e.g. {example[:700]}")
    SUMMARY_FILE.write_text("\n".join([head, *lines]) + "\n")
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line("")
        for line in (head, *lines)[:40]:
            reporter.write_line(line)


# ----------------------------------------------------------------------------- calling the app

_USER_FUNCTIONS: dict[int, Callable[..., Any]] = {}


def call(fn: Any, arg: Any) -> Any:
    key = id(fn)
    if key not in _USER_FUNCTIONS:
        _USER_FUNCTIONS[key] = fn.build().get_user_function()
    return _USER_FUNCTIONS[key](arg)


def http_request(method: str, route: str, body: bytes = b"", *, params: dict[str, str] | None = None,
            route_params: dict[str, str] | None = None, headers: dict[str, str] | None = None) -> func.HttpRequest:
    return func.HttpRequest(method, f"http://localhost:7071/api/{route}", body=body, params=params or {},
                            route_params=route_params or {}, headers=headers or {})


def request_get(route: str) -> func.HttpRequest:
    return http_request("GET", route)


def _short(value: Any, limit: int = 300) -> str:
    text = value.decode("utf-8", "backslashreplace") if isinstance(value, bytes) else repr(value)
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} chars)"


def _nonstandard(body: Any) -> bool:
    """Whether the JSON sent holds NaN or Infinity (Python writes them; JSON has no such numbers)."""
    if isinstance(body, (bytes, type(None))):
        return False
    try:
        json.dumps(body, allow_nan=False, default=str)
    except ValueError:
        return True
    return False


@dataclass(frozen=True)
class Fresh:
    """An event id made when the request is sent (so no two examples share one): ``kind`` says
    how it is spelled, valid (``uuid``, ``hex``, ``dotted``, ``min``) or not."""

    kind: str

    VALID = ("uuid", "hex", "dotted", "min")

    def make(self, world: World) -> Any:
        u = world.unique()
        fresh = uuid.uuid4().hex[:16] + u
        return {
            "uuid": str(uuid.uuid4())[:28] + u, "hex": fresh, "dotted": f"wp.evt:{u}_{fresh[:8]}",
            "min": "e" + u[1:], "upper": "EVT-" + fresh.upper() + "ABC", "newline": fresh + "\n",
            "short": u[1:], "long": "a" * 48 + fresh, "space": "evt " + fresh, "surrogate": "evt-\ud800" + fresh,
            "unicode": "évènement-" + fresh, "slash": "evt/" + fresh, "int": int(u, 16) + 10**8,
            "null": None, "list": [fresh], "object": {"id": fresh}, "true": True, "float": 12345678.5,
            "nonascii": "١٢٣٤٥٦٧٨" + u,
        }[self.kind]


@dataclass
class Case:
    """One request and what the contract allows as its answer."""

    label: str
    fn: Any
    method: str
    route: str
    body: Any = None                      # JSON value (sent dumped), bytes (as they are), None (no body)
    expect: frozenset[int] = OK
    writes: bool = False                  # may a 2xx write? (GET, plan, dry runs: never)
    bad_field: str | None = None          # the field a 400 must name
    params: dict[str, str] | None = None
    route_params: dict[str, str] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    auth: str | None = None               # hooks: "good", or how the signature or timestamp is wrong
    replay: bool = False                  # hooks: send it again, it must get the same answer

    def __post_init__(self) -> None:
        if self.bad_field is not None and _nonstandard(self.body):
            self.bad_field = None   # NaN / Infinity are not JSON: refusing the whole body is right too

    def __repr__(self) -> str:
        parts = [f"{self.label}: {self.method} /api/{self.route}"]
        if self.params:
            parts.append(f"params={self.params!r}")
        if self.route_params:
            parts.append(f"route_params={self.route_params!r}")
        if self.body is not None:
            parts.append(f"body={_short(self.body)}")
        if self.headers:
            parts.append(f"headers={self.headers!r}")
        if self.auth and self.auth != "good":
            parts.append(f"auth={self.auth}")
        parts.append(f"expect={sorted(self.expect)}" + (f" field={self.bad_field!r}" if self.bad_field else ""))
        return "Case(" + ", ".join(parts) + ")"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:   # what Hypothesis prints
        printer.text(repr(self))


def _hook_headers(auth: str, raw: bytes) -> dict[str, str]:
    """Signature headers, right (``good``) or wrong in one way; the HMAC is always computed over
    the timestamp text actually sent, so a bad timestamp is the only thing wrong with it."""
    now = int(time.time())
    arabic = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")
    stamps = {"good": str(now), "ts_arabic": str(now).translate(arabic), "ts_superscript": "²" * 10,
              "ts_fullwidth": str(now).translate(str.maketrans("0123456789", "０１２３４５６７８９")),
              "ts_stale": str(now - 301), "ts_future": str(now + 301), "ts_zero": "0", "ts_empty": "",
              "ts_padded": f" {now}", "ts_trailing": f"{now} ", "ts_float": f"{now}.0", "ts_negative": f"-{now}",
              "ts_exp": "1.7e9", "ts_plus": f"+{now}", "ts_millis": str(now * 1000), "ts_huge": "9" * 30,
              "ts_nul": f"{now}\x00", "ts_mixed": str(now)[:-2] + "١٢"}
    ts = stamps.get(auth, str(now))

    def mac(secret: str, stamp: str, body: bytes) -> str:
        digest = hmac.new(secret.encode(), stamp.encode("utf-8") + b"." + body, hashlib.sha256).hexdigest()
        return "sha256=" + digest

    good = mac(SECRET, ts, raw)
    signatures = {"sig_other_secret": mac("another-secret-0123456789", ts, raw), "sig_zero": "sha256=" + "0" * 64,
                  "sig_upper": good.upper().replace("SHA256=", "sha256="), "sig_trailing_comma": good + ",",
                  "sig_five": ",".join([good] * 5), "sig_sha1": "sha1=" + good[7:47], "sig_cut": good[:-1],
                  "sig_other_body": mac(SECRET, ts, raw + b" "), "sig_newline": good + "\n",
                  "sig_empty": "", "sig_bare_hex": good[7:]}
    headers = {signing.TIMESTAMP_HEADER: ts, signing.SIGNATURE_HEADER: signatures.get(auth, good)}
    if auth == "no_timestamp":
        del headers[signing.TIMESTAMP_HEADER]
    if auth == "no_signature":
        del headers[signing.SIGNATURE_HEADER]
    return headers


BAD_AUTH = ("ts_arabic", "ts_superscript", "ts_fullwidth", "ts_stale", "ts_future", "ts_zero", "ts_empty",
            "ts_padded", "ts_trailing", "ts_float", "ts_negative", "ts_exp", "ts_plus", "ts_millis", "ts_huge",
            "ts_nul", "ts_mixed", "sig_other_secret", "sig_zero", "sig_upper", "sig_trailing_comma", "sig_five",
            "sig_sha1", "sig_cut", "sig_other_body", "sig_newline", "sig_empty", "sig_bare_hex",
            "no_timestamp", "no_signature")


def build(world: World, case: Case) -> tuple[func.HttpRequest, str | None]:
    """The request of a case, and the (valid) event id of a hook whose own row may be written."""
    event_id = None
    body = case.body
    if isinstance(body, dict) and isinstance(body.get("event_id"), Fresh):
        fresh: Fresh = body["event_id"]
        body = {**body, "event_id": fresh.make(world)}
        if fresh.kind in Fresh.VALID:
            event_id = body["event_id"]
    raw = body if isinstance(body, bytes) else (b"" if body is None else dumps(body))
    headers = dict(case.headers)
    if case.auth is not None:
        headers.update(_hook_headers(case.auth, raw))
    return http_request(case.method, case.route, raw, params=case.params, route_params=case.route_params,
                   headers=headers), event_id


def _strip(body: Any) -> Any:
    return {k: v for k, v in body.items() if k not in ("replayed", "correlation_id")} if isinstance(body, dict) else body


class ContractViolation(AssertionError):
    """One broken rule of the contract. Each rule raises its own subclass, so Hypothesis tells the
    rules apart and shrinks a minimal input for each one, not only for the first it met."""


_RULES: dict[str, type[ContractViolation]] = {}


def rule(holds: bool, name: str, label: str, message: str) -> None:
    """Fail (or, with ``WPMSYNC_FUZZ_SURVEY=1``, note and go on) unless the rule ``name`` holds."""
    if holds:
        return
    if SURVEY:
        entry = SURVEYED.setdefault((name, label), [0, message])
        entry[0] += 1
        if len(message) < len(entry[1]):
            entry[1] = message
        return
    if name not in _RULES:
        _RULES[name] = type("Violated_" + re.sub(r"\W+", "_", name), (ContractViolation,), {})
    raise _RULES[name](f"{name}: {message}")


def check(world: World, case: Case) -> tuple[int, Any]:
    """Send one case and check every property of the contract; returns (status, body)."""
    req, event_id = build(world, case)
    status, body = _send_and_check(world, case, req, event_id, strict=False)
    if case.replay and event_id is not None and status in (200, 202, 400, 404):
        # The same event again (signed anew): the first answer back, and nothing written at all.
        again = Case(**{**case.__dict__, "label": case.label + " (replayed)", "expect": frozenset({status}),
                        "body": {**case.body, "event_id": event_id}, "replay": False})
        req2, _ = build(world, again)
        _, body2 = _send_and_check(world, again, req2, event_id, strict=True)
        rule(_strip(body2) == _strip(body), "a replay gets the first answer", case.label,
             f"{case!r}: {_short(body)} then {_short(body2)}")
    return status, body


def _send_and_check(world: World, case: Case, req: func.HttpRequest, event_id: str | None,
                    strict: bool) -> tuple[int, Any]:
    before = world.snapshot(event_id)
    world.logs.records.clear()
    resp = call(case.fn, req)
    after = world.snapshot(event_id)
    status, raw = resp.status_code, resp.get_body() or b""
    counts = OUTCOMES[world.name]
    counts["calls"] += 1
    counts[str(status)] += 1
    label, where = case.label, f"{case!r} -> {status} {_short(raw)}"
    rule(status < 500, "never a 5xx", label, where)
    try:
        body = json.loads(raw)
    except ValueError:
        body = None
        rule(False, "the answer is JSON", label, where)
    rule(b"Traceback" not in raw and b'File "' not in raw, "no traceback in the answer", label, where)
    rule(not world.logs.records, "no traceback logged", label,
         f"({world.logs.records[0].getMessage() if world.logs.records else ''}) {where}")
    ok = 200 <= status < 300
    ignored = ok and isinstance(body, dict) and body.get("status") == "ignored"
    if not ok or not case.writes or ignored or strict:
        own_row = event_id is not None and status not in (401, 413) and not strict
        diff = world.changed(before, after, own_row)
        if status == 202 and isinstance(body, dict) and body.get("kind") in ("plan", "undo_preview"):
            # a preview too large for one request is queued: its job row is ours, nothing else
            diff = [t for t in diff if not t.endswith(("wpmsync_jobs", "wpmsync_job_batches"))]
        what = ("a refusal" if not ok else "a replayed hook" if strict else "an ignored hook" if ignored
                else "a read, plan or dry run")
        rule(not diff, f"{what} writes nothing", label, f"changed {diff}: {where}")
    if status not in case.expect:
        if ok:
            name = "input breaking a rule is refused"
        elif all(200 <= s < 300 for s in case.expect):
            name = "valid input is answered 2xx"
        else:
            name = "a refusal has the documented status"
        rule(False, name, label, f"status {status}, expected {sorted(case.expect)}: {where}")
    if not ok and status < 500:
        rule(isinstance(body, dict) and isinstance(body.get("error"), str) and bool(body["error"].strip()),
             "a refusal says what was wrong", label, where)
        rule(isinstance(body, dict) and "correlation_id" in body, "a refusal has a correlation id", label, where)
        if status == 400 and isinstance(body, dict):
            rule("field" in body, "a 400 has a 'field'", label, where)
            if case.bad_field is not None and "field" in body:
                rule(case.bad_field in str(body["field"]), "a 400 names the bad field", label,
                     f"field {body['field']!r}, not {case.bad_field!r}: {where}")
    text = raw.decode("utf-8", "replace")
    shown = [s for s in (world.net.db, "root@", "127.0.0.1", "localhost:3306", SECRET) if s in text]
    rule(not shown, "no connection details or secrets in an answer", label, f"shows {shown}: {where}")
    if isinstance(body, dict) and "correlation_id" in body:
        cid = body["correlation_id"]
        rule(isinstance(cid, str) and bool(TOKEN_RE.fullmatch(cid)), "a correlation id is a safe token", label,
             f"{cid!r}: {where}")
        sent = case.headers.get("x-correlation-id")
        if sent is not None and TOKEN_RE.fullmatch(sent.strip()):
            rule(cid == sent.strip(), "a valid X-Correlation-Id is kept", label, f"sent {sent!r}: {where}")
    return status, body


# ----------------------------------------------------------------------------- strategies

Value = tuple[Any, "frozenset[int] | None"]   # a well-formed value, and the refusal it must get (None: none)


def per_world(build: Callable[..., Any]) -> Callable[..., Any]:
    """Strategies depend only on the world's ids: build each one once per world, not per example."""
    @functools.wraps(build)
    def cached(world: World, *args: Any, **kwargs: Any) -> Any:
        key = (build.__name__, args, tuple(sorted(kwargs.items())))
        if key not in world.strategies:
            world.strategies[key] = build(world, *args, **kwargs)
        return world.strategies[key]
    return cached


def merge(*refusals: frozenset[int] | None) -> frozenset[int] | None:
    found = [r for r in refusals if r]
    return frozenset().union(*found) if found else None


def headers_st() -> st.SearchStrategy[dict[str, str]]:
    return st.builds(lambda c, a: {k: v for k, v in (("x-correlation-id", c), ("x-wpmsync-actor", a)) if v is not None},
                     correlation_header, actor_header)


def site_st(world: World, live_only: bool, fine: bool = False) -> st.SearchStrategy[Value]:
    """A well-formed blog id: live (fine), archived/deleted/spam (400 where a live site is needed),
    of network 2 or unknown (404); with ``fine``, only ids that are refused for nothing."""
    if fine:
        return st.sampled_from(world.live if live_only else world.live + world.dead).map(lambda b: (b, None))
    return st.one_of(
        st.sampled_from(world.live).map(lambda b: (b, None)),
        st.sampled_from(world.live).map(lambda b: (b, None)),
        st.sampled_from(world.dead).map(lambda b: (b, BAD if live_only else None)),
        st.sampled_from(world.foreign_sites + [999_999, MAX_ID]).map(lambda b: (b, NOT_FOUND)),
    )


def user_st(world: World, fine: bool = False) -> st.SearchStrategy[Value]:
    if fine:
        return st.sampled_from(world.users).map(lambda u: (u, None))
    return st.one_of(
        st.sampled_from(world.users).map(lambda u: (u, None)),
        st.sampled_from(world.users).map(lambda u: (u, None)),
        st.sampled_from([world.id("user_netwo"), 999_999, MAX_ID]).map(lambda u: (u, NOT_FOUND)),
    )


def list_st(item: st.SearchStrategy[Value], max_size: int = 4) -> st.SearchStrategy[Value]:
    return st.lists(item, min_size=1, max_size=max_size).map(lambda items: ([v for v, _ in items],
                                                                             merge(*(r for _, r in items))))


def plain(values: st.SearchStrategy[Any]) -> st.SearchStrategy[Value]:
    return values.map(lambda v: (v, None))


@dataclass
class Spec:
    """A body field: its well-formed values, its refused values, whether it must be there."""

    valid: st.SearchStrategy[Value]
    invalid: st.SearchStrategy[Any]
    required: bool = False
    often: bool = False    # present in most valid bodies
    fine: st.SearchStrategy[Value] | None = None   # valid values refused for nothing (default: valid)


@dataclass
class Drawn:
    body: Any                          # dict, or bytes for a junk body
    refusal: frozenset[int] | None     # the status the body must get; None: the endpoint's success
    field: str | None
    mode: str


@st.composite
def body_st(draw: st.DrawFn, specs: dict[str, Spec], body_optional: bool,
            extra_unknown: tuple[str, ...] = (), fine_only: bool = False, unknown_refused: bool = True) -> Drawn:
    """A JSON body for ``specs``: well-formed, or wrong in exactly one way; ``fine_only``: well-formed
    and refused for nothing (something else around it is wrong). Without ``unknown_refused`` (a
    hook's data), a key nobody reads is let through: the body is answered as if it were not there."""
    modes = ["valid", "valid", "unknown", "junk"] + (["bad"] * 3 if specs else [])
    if any(s.required for s in specs.values()):
        modes.append("missing")
    mode = "fine" if fine_only else draw(st.sampled_from(modes))
    if mode == "junk":
        raw, status = draw(st.sampled_from(JUNK_BODIES + ((b"", 0), (b"  \n", 0))))
        if status == 0:  # an empty body
            if body_optional:
                return Drawn(raw, None, None, "empty")
            return Drawn(raw, BAD, None, "empty")
        return Drawn(raw, frozenset({status}), None, "junk")
    body: dict[str, Any] = {}
    refusal: frozenset[int] | None = None
    for name, spec in specs.items():
        present = spec.required or draw(st.integers(0, 9)) < (8 if spec.often else 4)
        if present:   # one thing wrong at a time: around a broken field, only values refused for nothing
            value, why = draw(spec.valid if mode == "valid" or spec.fine is None else spec.fine)
            body[name] = value
            refusal = merge(refusal, why)
    if mode in ("valid", "fine"):
        return Drawn(body, refusal, None, "valid")
    if mode == "bad":
        name = draw(st.sampled_from(sorted(specs)))
        body[name] = draw(specs[name].invalid)
        return Drawn(body, BAD, name, f"bad {name}")
    if mode == "missing":
        name = draw(st.sampled_from(sorted(n for n, s in specs.items() if s.required)))
        del body[name]
        return Drawn(body, BAD, name, f"missing {name}")
    key = draw(st.one_of(unknown_key, st.sampled_from(extra_unknown)) if extra_unknown else unknown_key)
    body[key] = draw(st.sampled_from((True, 1, "x", None, [1], {})))
    if not unknown_refused:
        return Drawn(body, refusal, None, "valid")
    return Drawn(body, BAD, key, "unknown key")


@functools.lru_cache(maxsize=None)
def bool_spec(often: bool = False, valid: st.SearchStrategy[bool] | None = None) -> Spec:
    return Spec(plain(valid if valid is not None else st.booleans()), not_bool, often=often)


@per_world
def sites_spec(world: World, live_only: bool, many: bool, required: bool = True, usual: int | None = None) -> Spec:
    """blog_ids (``many``) or blog_id; ``usual``: a site drawn often (a known-good combination)."""
    valid, fine = site_st(world, live_only), site_st(world, live_only, fine=True)
    if usual is not None:
        valid, fine = st.one_of(st.just((usual, None)), valid), st.one_of(st.just((usual, None)), fine)
    if many:
        return Spec(list_st(valid), not_id_list(st.sampled_from(world.users)), required, fine=list_st(fine))
    return Spec(valid, not_id, required, fine=fine)


@per_world
def users_spec(world: World, many: bool, required: bool = True, usual: int | None = None) -> Spec:
    valid, fine = user_st(world), user_st(world, fine=True)
    if usual is not None:
        valid, fine = st.one_of(st.just((usual, None)), valid), st.one_of(st.just((usual, None)), fine)
    if many:
        return Spec(list_st(valid), not_id_list(st.sampled_from(world.users)), required, fine=list_st(fine))
    return Spec(valid, not_id, required, fine=fine)


@functools.lru_cache(maxsize=None)
def role_spec(usual: str) -> Spec:
    """A replicated role: present in most bodies; an empty role is skipped by the mu-plugin and the
    functions alike, so "" is left out of the refused values."""
    return Spec(plain(st.one_of(st.just(usual), role_name)), not_role.filter(lambda v: v != ""), often=True)


DRY = st.sampled_from([True] * 7 + [False])   # mostly dry runs; a real write now and then


def case_from(drawn: Drawn, label: str, fn: Any, method: str, route: str, success: frozenset[int],
              headers: dict[str, str], writes: bool, **kw: Any) -> Case:
    expect = drawn.refusal if drawn.refusal is not None else success
    return Case(f"{label} [{drawn.mode}]", fn, method, route, drawn.body, expect, writes, drawn.field,
                headers=headers, **kw)


# -- per endpoint ------------------------------------------------------------------------------

@st.composite
def bulk_cases(draw: st.DrawFn, world: World) -> Case:
    """POST users/sync and unsync: mostly dry runs."""
    unsync = draw(st.booleans())
    specs = {"user_ids": users_spec(world, many=True),
             "blog_ids": sites_spec(world, live_only=not unsync, many=True),
             "dry_run": bool_spec(often=True, valid=DRY)}
    if not unsync:
        specs["force"] = bool_spec()
    drawn = draw(body_st(specs, body_optional=False))
    writes = not (isinstance(drawn.body, dict) and drawn.body.get("dry_run") is True)
    fn, route = (actions.unsync, "unsync") if unsync else (actions.users_sync, "users/sync")
    return case_from(drawn, route, fn, "POST", route, OK, draw(headers_st()), writes)


@st.composite
def plan_cases(draw: st.DrawFn, world: World) -> Case:
    """POST plan: every action, never a write."""
    action = draw(st.sampled_from((None, "sync", "add_user", "add_site", "set_role", "bad")))
    triple = (world.id("user1"), world.id("site_authors"), "contributor")  # user1 is contributor there
    specs: dict[str, Spec] = {}
    success = OK
    if action in (None, "sync"):
        specs = {"blog_ids": sites_spec(world, live_only=True, many=True, required=False), "force": bool_spec()}
    elif action == "add_user":
        specs = {"user_id": users_spec(world, many=False)}
    elif action == "add_site":
        specs = {"blog_id": sites_spec(world, live_only=True, many=False), "force": bool_spec()}
    elif action == "set_role":
        specs = {"user_id": users_spec(world, many=False, usual=triple[0]),
                 "blog_id": sites_spec(world, live_only=False, many=False, usual=triple[1]),
                 "role": role_spec(triple[2]),
                 "actor_id": users_spec(world, many=False, required=False)}
    drawn = draw(body_st(specs, body_optional=True, extra_unknown=("blogid", "userid", "roles")))
    if action == "bad":
        body = drawn.body if isinstance(drawn.body, dict) and drawn.mode == "valid" else {}
        drawn = Drawn({**body, "action": draw(not_choice(("sync", "add_user", "add_site", "set_role")))},
                      BAD, "action", "bad action")
    elif action is not None and isinstance(drawn.body, dict):
        drawn.body = {"action": action, **drawn.body}
    if action == "set_role" and drawn.mode == "valid" and isinstance(drawn.body, dict):
        b = drawn.body
        if "role" not in b:   # nothing to replicate: skipped, or refused as a missing role
            drawn.refusal = (drawn.refusal or OK) | BAD
        elif drawn.refusal is None and (b.get("user_id"), b.get("blog_id"), b.get("role")) != triple:
            success = frozenset({200, 400})  # a role the user does not have there is refused
    if action in (None, "sync", "add_site") and 200 in success:
        success = success | {202}  # over one batch (WPMSYNC_BATCH_SIZE is 3 here): a queued plan job
    return case_from(drawn, f"plan {action or '(default)'}", actions.plan, "POST", "plan", success,
                     draw(headers_st()), writes=False)


@per_world
def _job_id_st(world: World) -> st.SearchStrategy[tuple[str, str]]:
    """(job id text, what it is): the real job, the real change, an unknown id, or not an id."""
    job, change = world.make_job(), world.make_change()
    return st.one_of(
        st.sampled_from(((job, "job"), (job.upper(), "job"), (change, "change"), (change.upper(), "change"))),
        st.from_regex(r"[0-9a-f]{32}", fullmatch=True).map(lambda j: (j, "unknown")),
        st.sampled_from(("", "../etc", "0" * 31, "0" * 33, "g" * 32, "Z" * 32, "٠" * 32, "0x" + "0" * 30,
                         job[:-1] + "²", job + "\n", "%00" + "0" * 29, job + job)).map(lambda j: (j, "bad")),
        st.text(max_size=40).filter(lambda s: not JOB_ID_RE.fullmatch(s.lower())).map(lambda j: (j, "bad")),
    )


@st.composite
def read_cases(draw: st.DrawFn, world: World) -> Case:
    """GET health, settings, options, jobs/{id}, journal; POST jobs/{id}/undo (dry run or an unknown
    id); POST plan: none of them may write."""
    kind = draw(st.sampled_from(("health", "settings", "options", "job", "undo", "journal", "plan", "plan")))
    headers = draw(headers_st())
    if kind == "plan":
        return draw(plan_cases(world))
    if kind in ("health", "settings", "options"):
        fn = {"health": actions.health, "settings": actions.settings, "options": actions.network_options}[kind]
        params = draw(st.dictionaries(st.sampled_from(("limit", "x", "debug", "")), st.text(max_size=5), max_size=2))
        body = draw(st.sampled_from((None, b"{not json", b'{"new_user": true}', b"x" * 70_000)))
        expect = frozenset({200, 413}) if body and len(body) > 65536 else OK   # a GET may ignore its body
        return Case(f"GET {kind}", fn, "GET", kind, body, expect, params=params, headers=headers)
    if kind == "journal":
        limit = draw(st.one_of(
            st.none().map(lambda _: (None, OK)),
            st.integers(1, 500).map(lambda n: (str(n), OK)),
            st.sampled_from(("020", "001", "500")).map(lambda s: (s, OK)),
            st.just(("", frozenset({200, 400}))),
            not_limit_text().map(lambda s: (s, BAD)),
        ))
        params = {} if limit[0] is None else {"limit": limit[0]}
        return Case("GET journal", actions.journal, "GET", "journal", None, limit[1],
                    bad_field="limit" if limit[1] == BAD else None, params=params, headers=headers)
    job_id, what = draw(_job_id_st(world))
    if kind == "job":
        expect = {"job": OK, "change": NOT_FOUND, "unknown": NOT_FOUND, "bad": BAD}[what]
        return Case(f"GET jobs/{{id}} ({what})", actions.job_status, "GET", "jobs/x", None, expect,
                    bad_field="job_id" if what == "bad" else None, route_params={"job_id": job_id}, headers=headers)
    if what == "job":
        job_id, what = world.make_change(), "change"  # undoing a queued job is not read-only
    dry = st.just(True) if what == "change" else st.booleans()
    drawn = draw(body_st({"dry_run": Spec(plain(dry), not_bool, required=what == "change")}, body_optional=True))
    if what == "change" and (drawn.mode == "empty" or drawn.mode.startswith("missing")):
        drawn = Drawn({"dry_run": True}, None, None, "valid")   # no dry_run would really undo it
    if drawn.refusal is None:
        drawn.refusal = {"change": OK | {202}, "unknown": NOT_FOUND, "bad": BAD}[what]  # 202: a queued preview
        drawn.field = "job_id" if what == "bad" else None
    elif what == "bad":   # two things wrong: either may be named
        drawn.refusal, drawn.field = drawn.refusal | BAD, None
    return case_from(drawn, f"POST jobs/{{id}}/undo ({what})", actions.undo, "POST", "jobs/x/undo",
                     OK | {202}, headers,  # a preview over one batch is a queued job
                     writes=False, route_params={"job_id": job_id})


@st.composite
def sync_cases(draw: st.DrawFn, world: World) -> Case:
    """POST sync and sites/{id}/sync: a job is queued (202) or one is queued already (409)."""
    headers = draw(headers_st())
    if draw(st.booleans()):
        specs = {"blog_ids": sites_spec(world, live_only=True, many=True, required=False), "force": bool_spec()}
        drawn = draw(body_st(specs, body_optional=True, extra_unknown=("blog_id", "user_ids", "dry_run")))
        return case_from(drawn, "POST sync", actions.sync, "POST", "sync", ACCEPTED, headers, writes=True)
    blog, refusal = draw(st.one_of(
        site_st(world, live_only=True).map(lambda v: (str(v[0]), v[1])),
        st.sampled_from(world.live).map(lambda b: ("0" + str(b), None)),   # ASCII digits all the same
        not_id_text().map(lambda s: (s, BAD)),
    ))
    drawn = draw(body_st({"force": bool_spec()}, body_optional=True, extra_unknown=("blog_ids", "dry_run")))
    if drawn.refusal is None and refusal is not None:
        drawn.refusal, drawn.field = refusal, "blog_id" if refusal == BAD else None
    elif refusal == BAD and drawn.refusal is not None:   # two things wrong: either may be named
        drawn.refusal, drawn.field = drawn.refusal | BAD, None
    return case_from(drawn, "POST sites/{id}/sync", actions.site_sync, "POST", "sites/x/sync", ACCEPTED, headers,
                     writes=True, route_params={"blog_id": blog})


@per_world
def _sites_invalid(world: World) -> st.SearchStrategy[Any]:
    site = st.sampled_from(world.live + world.dead).map(str)
    bad_entry = st.one_of(
        st.sampled_from(("yes", True, 1, [], None, "opt_out")),
        st.just({"optout": True}), st.just({"opt_out": True, "extra": 1}),
        not_bool.map(lambda v: {"opt_out": v}),
        not_role.filter(lambda v: v != "").map(lambda v: {"role": v}),   # "": no role of its own
    )
    return st.one_of(
        st.sampled_from(([], "2", 2, None, True, [{"2": {}}], [["2", {}]])),
        not_id_text().map(lambda k: {k: {}}),
        st.tuples(site, bad_entry).map(lambda t: {t[0]: t[1]}),
    )


@per_world
def _sites_valid(world: World, fine: bool = False) -> st.SearchStrategy[Value]:
    entry = st.fixed_dictionaries({}, optional={"opt_out": st.booleans(), "role": st.one_of(role_name, st.just(""))})
    key = st.sampled_from(world.live + world.dead).map(lambda b: (str(b), None))
    if not fine:
        key = st.one_of(key, st.sampled_from(world.foreign_sites + [999_999]).map(
            lambda b: (str(b), frozenset({400, 404}))))
    return st.lists(st.tuples(key, entry), max_size=3).map(
        lambda items: ({k: e for (k, _), e in items}, merge(*(r for (_, r), _ in items))))


@st.composite
def write_cases(draw: st.DrawFn, world: World) -> Case:
    """PATCH/PUT settings and PATCH options (2xx may write, refusals may not)."""
    headers = draw(headers_st())
    if draw(st.booleans()):
        switch = Spec(plain(st.booleans()), not_switch)
        specs = {name: switch for name in ("new_user", "new_site", "role_sync")}
        drawn = draw(body_st(specs, body_optional=False, extra_unknown=("newuser", "new_users", "unsync")))
        if drawn.mode == "valid" and drawn.body == {}:
            drawn.refusal = frozenset({200, 400})   # nothing to change
        elif drawn.mode == "valid" and draw(st.integers(0, 3)) == 0:
            # "on" / "off" as text: refused (the WordPress screen sends JSON true / false).
            first = next(iter(drawn.body))
            drawn = Drawn({first: "on" if drawn.body[first] else "off"}, BAD, first, "on/off text")
        method = draw(st.sampled_from(("PATCH", "PATCH", "PUT")))
        return case_from(drawn, f"{method} settings", actions.settings, method, "settings", OK, headers, writes=True)
    roles = st.lists(role_name, max_size=3, unique=True)
    specs = {"sites": Spec(_sites_valid(world), _sites_invalid(world), fine=_sites_valid(world, fine=True)),
             "excluded_roles": Spec(plain(roles), not_role_list()),
             "allowed_roles": Spec(plain(roles), not_role_list()),
             "missing_role": Spec(plain(st.sampled_from(MISSING_ROLE)), not_choice(MISSING_ROLE)),
             "scope": Spec(plain(st.sampled_from(SCOPES)), not_choice(SCOPES)),
             "unsync": bool_spec()}
    drawn = draw(body_st(specs, body_optional=False, extra_unknown=("site", "excluded", "roles", "new_user")))
    if isinstance(drawn.body, dict):
        b = drawn.body
        for one, other in (("excluded_roles", "allowed_roles"), ("allowed_roles", "excluded_roles")):
            if b.get(one) and other not in b:
                b[other] = []   # what is stored must not decide: clear the other filter
        both = all(isinstance(b.get(k), list) and b.get(k) and all(isinstance(r, str) for r in b[k])
                   for k in ("excluded_roles", "allowed_roles"))
        if drawn.mode == "valid" and both:
            drawn.refusal, drawn.mode = merge(drawn.refusal, BAD), "both role filters"
        elif both:   # one thing wrong at a time: keep the broken filter, empty the other
            b["excluded_roles" if drawn.mode == "bad allowed_roles" else "allowed_roles"] = []
        if drawn.mode == "valid" and b == {}:
            drawn.refusal = frozenset({200, 400})
    return case_from(drawn, "PATCH options", actions.network_options, "PATCH", "options", OK, headers, writes=True)


@st.composite
def hook_cases(draw: st.DrawFn, world: World, switched_on: bool) -> Case:
    """POST hooks: signed with the fixture's secret, the envelope or the data wrong in one way; or
    well-formed and badly signed."""
    event = draw(st.sampled_from(EVENTS))
    triple = (world.id("user1"), world.id("site_authors"), "contributor")
    if event == "site_created":
        specs = {"blog_id": sites_spec(world, live_only=True, many=False)}
    elif event == "role_changed":
        # the mu-plugin sends actor 0 when nobody is logged in (cron, WP-CLI)
        actor = dataclasses.replace(users_spec(world, many=False, required=False, usual=0),
                                    invalid=not_id.filter(lambda v: not (type(v) is int and v == 0)))
        specs = {"user_id": users_spec(world, many=False, usual=triple[0]),
                 "blog_id": sites_spec(world, live_only=False, many=False, usual=triple[1]),
                 "role": role_spec(triple[2]), "actor_id": actor}
    elif event == "user_created":
        # blog_id (the site it was created on) is checked for its type only, and may be left out:
        # the user joins every site, and a site deleted since must not make the event refused for good.
        any_site = plain(st.one_of(st.sampled_from(world.live + world.dead + world.foreign_sites),
                                   st.integers(1, MAX_ID)))
        specs = {"user_id": users_spec(world, many=False), "blog_id": Spec(any_site, not_id, required=False)}
    else:   # user_removed, user_added
        specs = {"user_id": users_spec(world, many=False), "blog_id": sites_spec(world, live_only=False, many=False)}
    envelope = draw(st.sampled_from(("ok",) * 8 + ("event", "event_id", "missing", "unknown", "junk", "auth",
                                                   "unsigned_huge")))
    # One thing wrong at a time: around a broken envelope, data refused for nothing.
    fine = envelope in ("event", "event_id", "missing", "unknown")
    data = draw(body_st(specs, body_optional=False, extra_unknown=("userid", "blog", "roles"), fine_only=fine,
                        unknown_refused=False))
    data.mode = "data " + data.mode if data.mode != "valid" else "valid"
    if data.mode in ("data junk", "data empty"):   # data that is not an object
        data = Drawn(draw(st.sampled_from(([], "x", 1, None, True, [1, 2], "{}"))), BAD, "data", "data not an object")
    # What a well-formed event gets.
    if data.refusal is None:
        if not switched_on and event in ("user_created", "site_created", "role_changed"):
            success = OK                              # acknowledged and ignored
        elif event == "site_created":
            success = frozenset({200, 202, 409})      # inline, queued, or the site is being synced
        elif event == "role_changed" and (data.body.get("user_id"), data.body.get("blog_id"),
                                          data.body.get("role")) != triple:
            success = frozenset({200, 400})           # a role the user does not have there
        else:
            success = OK
    elif data.mode == "valid" and not switched_on and event in ("user_created", "site_created", "role_changed"):
        success = data.refusal | OK   # well-formed, naming an unknown or archived site: may just be ignored
        data.refusal = None
    else:
        success = OK
    if event == "role_changed" and data.mode == "valid" and "role" not in data.body:
        success = success | BAD   # nothing to replicate: skipped, or refused as a missing role
    payload: Any = {"event": event, "event_id": Fresh(draw(st.sampled_from(Fresh.VALID))), "data": data.body}
    refusal, field_name, mode = data.refusal, data.field, data.mode
    auth = "good"
    if envelope == "event":
        payload["event"] = draw(st.one_of(not_choice(EVENTS), st.sampled_from(("\ud800", event + "\ud800", "x" * 300))))
        refusal, field_name, mode = BAD, "event", "bad event"
    elif envelope == "event_id":
        payload["event_id"] = Fresh(draw(st.sampled_from(("upper", "newline", "short", "long", "space", "surrogate",
                                                          "unicode", "slash", "int", "null", "list", "object",
                                                          "true", "float", "nonascii"))))
        refusal, field_name, mode = BAD, "event_id", f"bad event_id ({payload['event_id'].kind})"
    elif envelope == "missing":
        field_name = draw(st.sampled_from(("event", "event_id", "data")))
        del payload[field_name]
        refusal, mode = BAD, f"missing {field_name}"
    elif envelope == "unknown":   # let through unread, as in data: a newer mu-plugin's field
        key = draw(unknown_key.filter(lambda k: k not in payload))
        payload[key] = draw(st.sampled_from((True, "x", None, {})))
        mode = "unknown key let through"
    elif envelope == "junk":
        payload, status = draw(st.sampled_from(JUNK_BODIES))
        refusal, field_name, mode = frozenset({status}), None, "junk body"
    elif envelope == "auth":
        auth = draw(st.sampled_from(BAD_AUTH))
        refusal, field_name, mode = UNSIGNED, None, f"bad auth ({auth})"
    elif envelope == "unsigned_huge":
        payload, auth = b'{"pad": "' + b"x" * 70_000 + b'"}', "no_signature"
        refusal, field_name, mode = frozenset({401, 413}), None, "unsigned huge body"
    expect = refusal if refusal is not None else success
    return Case(f"hook {event} [{mode}]", hooks.hook, "POST", "hooks", payload, expect, writes=True,
                bad_field=field_name, headers=draw(headers_st()), auth=auth,
                replay=isinstance(payload, dict) and draw(st.integers(0, 4)) == 0)


@st.composite
def queue_messages(draw: st.DrawFn, world: World) -> tuple[str, bytes, int]:
    """(function, message body, dequeue count): garbage, or well-formed for an unknown job or the
    finished one."""
    job = world.job_id or ""
    job_ref = st.one_of(
        st.from_regex(r"[0-9a-f]{32}", fullmatch=True),
        st.sampled_from((job, job.upper(), " " + job, job + "\n", job[:-1] + "²")),
        st.sampled_from(("", "x", "../etc", "٠" * 32, None, 0, 1, True, [job], {"id": job}, 1.5)),
        st.text(max_size=40),
    )
    count = st.one_of(st.integers(-(2**70), 2**70), st.sampled_from(("1", "²", "١٢", "", None, True, 1.5, [], "1e3")))
    kind = draw(st.sampled_from(("prepare", "batch", "batch", "undo", "bad_type", "garbage", "json")))
    if kind == "garbage":
        body = draw(st.one_of(st.binary(max_size=80), st.sampled_from([raw for raw, _ in JUNK_BODIES])))
    elif kind == "json":
        body = dumps(draw(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8),
                                       lambda inner: st.lists(inner, max_size=3)
                                       | st.dictionaries(st.text(max_size=5), inner, max_size=3), max_leaves=8)))
    else:
        message: dict[str, Any] = {"type": draw(not_choice(("prepare", "batch", "undo"))) if kind == "bad_type" else kind,
                                   "job": draw(job_ref)}
        if kind == "batch" or draw(st.booleans()):
            message["seq"] = draw(st.one_of(st.integers(0, 5), count))
        if kind == "undo" or draw(st.integers(0, 3)) == 0:
            message["undo"] = draw(job_ref.filter(lambda j: j != job))
            message["from_user"] = draw(st.one_of(st.integers(0, 20), count))
        if draw(st.integers(0, 4)) == 0:
            message[draw(unknown_key)] = draw(st.sampled_from((1, "x", None)))
        if kind == "undo" and isinstance(message["job"], str) and message["job"].strip().lower() == job:
            message["job"] = uuid.uuid4().hex   # undoing the finished job would be real work: keep it unknown
        body = dumps(message)
    fn = draw(st.sampled_from(("run_batch", "run_batch", "poisoned_batch")))
    return fn, body, draw(st.integers(1, 6))


# ------------------------------------------------------------------------------------- the tests

@fuzz(600)
@given(data=st.data())
def test_fuzz_reads_plans_and_dry_runs_never_write(world: World, data: st.DataObject) -> None:
    """GET health/settings/options/jobs/journal, POST plan, undo previews and undo of unknown ids."""
    check(world, data.draw(read_cases(world)))


@fuzz(500)
@given(data=st.data())
def test_fuzz_bulk_users_sync_and_unsync(world: World, data: st.DataObject) -> None:
    check(world, data.draw(bulk_cases(world)))


@fuzz(250)
@given(data=st.data())
def test_fuzz_sync_and_site_sync(world: World, data: st.DataObject) -> None:
    try:
        check(world, data.draw(sync_cases(world)))
    finally:
        world.settle()


@fuzz(450)
@given(data=st.data())
def test_fuzz_settings_and_options_writes(world: World, data: st.DataObject) -> None:
    check(world, data.draw(write_cases(world)))


@fuzz(500)
@given(data=st.data())
def test_fuzz_hooks_with_switches_off(world: World, data: st.DataObject) -> None:
    check(world, data.draw(hook_cases(world, switched_on=False)))


@fuzz(250)
@given(data=st.data())
def test_fuzz_hooks_with_switches_on(world: World, data: st.DataObject) -> None:
    if "switched on" not in world.flags:   # once per test: every trigger on
        resp = call(actions.settings, http_request("PATCH", "settings", dumps(
            {"new_user": True, "new_site": True, "role_sync": True})))
        assert resp.status_code == 200, resp.get_body()
        world.flags.add("switched on")
    try:
        check(world, data.draw(hook_cases(world, switched_on=True)))
    finally:
        world.settle()


@fuzz(500)
@given(data=st.data())
def test_fuzz_queue_messages_never_raise_send_or_write(world: World, data: st.DataObject,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    if world.sent is None:   # once per test: a finished job, then record what would be queued
        world.finish_job()
        world.sent = []
        monkeypatch.setattr(common, "send", lambda messages: world.sent.extend(messages) or len(messages))
    fn_name, body, dequeue_count = data.draw(queue_messages(world))
    fn = {"run_batch": batches.run_batch, "poisoned_batch": batches.poisoned_batch}[fn_name]
    label, where = f"{fn_name} {_message_kind(world, body)}", f"{fn_name}({_short(body)}, dequeue_count={dequeue_count})"
    before = world.snapshot()
    world.logs.records.clear()
    world.sent.clear()
    counts = OUTCOMES[world.name]
    counts["calls"] += 1
    try:
        call(fn, QueueMessage(id=uuid.uuid4().hex, body=body, dequeue_count=dequeue_count))
        counts["returned"] += 1
    except Exception as exc:  # noqa: BLE001 - the property: nothing escapes to the host
        counts["raised"] += 1
        rule(False, "a queue function never raises", label,
             f"{type(exc).__name__}: {exc} (the host would retry it into the poison queue): {where}")
    after = world.snapshot()
    rule(not world.logs.records, "no traceback logged", label,
         f"({world.logs.records[0].getMessage() if world.logs.records else ''}) {where}")
    rule(not world.sent, "nothing is queued for an unknown or finished job", label, f"queued {world.sent!r}: {where}")
    diff = world.changed(before, after, False)
    if diff:
        world.restore()
    rule(not diff, "a message of an unknown or finished job writes nothing", label, f"changed {diff}: {where}")


def _message_kind(world: World, body: bytes) -> str:
    """``prepare (finished job)``, ``batch (unknown job)``, ``undo (no job id)``, ``(garbage)``."""
    try:
        message = json.loads(body)
    except (ValueError, RecursionError):
        return "(garbage)"
    if not isinstance(message, dict) or message.get("type") not in ("prepare", "batch", "undo"):
        return "(not a message of ours)"
    job = message.get("job")
    text = job.strip().lower() if isinstance(job, str) else ""
    what = "finished job" if text == world.job_id else "unknown job" if JOB_ID_RE.fullmatch(text) else "no job id"
    return f"{message['type']} ({what})"


BROKEN_DB = st.one_of(
    # Nothing listens there, in any lane (3307 is the mysql lane's server: scripts/lanes.sh).
    st.sampled_from(("1", "2", "3399", "65535")).map(lambda port: ("WPMSYNC_DB_PORT", port)),
    st.from_regex(r"wpmsync_gone_[a-z0-9]{1,12}", fullmatch=True).map(lambda name: ("WPMSYNC_DB_NAME", name)),
    st.from_regex(r"nobody_[a-z0-9]{1,8}", fullmatch=True).map(lambda user: ("WPMSYNC_DB_USER", user)),
    st.sampled_from(("zz_", "wpx9_", "wp_2_")).map(lambda prefix: ("WPMSYNC_TABLE_PREFIX", prefix)),
)


@fuzz(50)
@given(broken=BROKEN_DB, route=st.sampled_from(("health", "health", "plan", "settings", "journal")))
def test_fuzz_health_never_shows_connection_details(world: World, monkeypatch: pytest.MonkeyPatch,
                                                    broken: tuple[str, str], route: str) -> None:
    """With the database out of reach, health answers 503 and no answer names the user, host, port
    or database (the logs do, under the correlation id)."""
    name, value = broken
    fn = {"health": actions.health, "plan": actions.plan, "settings": actions.settings, "journal": actions.journal}[route]
    method = "POST" if route == "plan" else "GET"
    with monkeypatch.context() as m:
        m.setenv(name, value)
        reset_secrets()
        resp = call(fn, http_request(method, route, b"{}" if method == "POST" else b""))
    reset_secrets()
    counts = OUTCOMES[world.name]
    counts["calls"] += 1
    counts[str(resp.status_code)] += 1
    raw = resp.get_body().decode("utf-8", "replace")
    label, where = f"{route} with {name} broken", f"{route} with {name}={value!r} -> {resp.status_code} {raw[:300]}"
    try:
        body = json.loads(raw)
    except ValueError:
        body = None
    rule(isinstance(body, dict), "the answer is JSON", label, where)
    if route == "health":
        rule(resp.status_code == 503 and isinstance(body, dict) and body.get("status") == "error",
             "health answers 503 when the database is out of reach", label, where)
    else:
        rule(resp.status_code >= 500 and isinstance(body, dict) and bool(body.get("correlation_id")),
             "a fault is a 5xx with a correlation id", label, where)
    shown = ["root@", "127.0.0.1", "localhost", "3306", world.net.db, SECRET]
    if world.net.config().db_port != 3306:  # the lane's own server (the mysql lane: 3307)
        shown.append(str(world.net.config().db_port))
    if name in ("WPMSYNC_DB_NAME", "WPMSYNC_DB_USER"):
        shown.append(value)
    if name == "WPMSYNC_DB_PORT":
        shown += [f":{value}/", f":{value} ", f"port {value}"]
    # the answer's words (its correlation id is random hex, which may hold "3306" by chance)
    words = json.dumps({k: v for k, v in body.items() if k != "correlation_id"}) if isinstance(body, dict) else raw
    leaked = [s for s in shown if s in words]
    rule(not leaked, "no connection details or secrets in an answer", label, f"shows {leaked}: {where}")
    rule("Traceback" not in raw, "no traceback in the answer", label, where)
