"""``python -m wpmsync demo``: a demo network built by real WordPress, synced through the
Functions app's own handlers (HTTP actions, signed hooks, the queue function on Azurite), with a
before/after report.

Needs the repo's ``wpfixture`` package (PHP + Debian's WordPress, Azurite); it is a development
tool and is imported only here. It refuses to touch anything but a local database, which it
recreates.
"""
from __future__ import annotations

import os
import tempfile
import time
from collections import Counter
from typing import Any

from .config import LOCAL_HOSTS, Config
from .engine import Engine
from .errors import ConfigError

DEMO_DB = "wpmsync_demo"
ROLES = ["subscriber", "author", "contributor", "editor"]


def members_by_site(engine: Engine) -> dict[int, Counter]:
    """Roles per site straight from usermeta (one query per site: a report, not a sync)."""
    table: dict[int, Counter] = {}
    tables = engine.network.tables
    with engine.conn.cursor() as cur:
        for site in engine.network.live_sites():
            cur.execute(f"SELECT meta_value FROM {tables.usermeta} WHERE meta_key = %s",
                        (tables.cap_key(site.blog_id),))
            counts: Counter = Counter()
            for (value,) in cur.fetchall():
                roles = [k for k in value.split('"')[1::2]] or ["(none)"]
                counts[roles[0]] += 1
            table[site.blog_id] = counts
    return table


def _table(before: dict[int, Counter], after: dict[int, Counter], sites: dict[int, str]) -> str:
    lines = [f"{'site':<28} {'before':>7} {'after':>7}  roles after"]
    for blog_id in sorted(after):
        roles = ", ".join(f"{r} {n}" for r, n in sorted(after[blog_id].items()))
        lines.append(f"{blog_id:>3} {sites[blog_id]:<24} {sum(before.get(blog_id, Counter()).values()):>7} "
                     f"{sum(after[blog_id].values()):>7}  {roles}")
    return "\n".join(lines)


def run_demo(config: Config, *, users: int = 12, sites: int = 4, as_json: bool = False) -> dict[str, Any]:
    """Build, sync through the Functions app's handlers, show. Returns the CLI's JSON document."""
    if config.db_host not in LOCAL_HOSTS:
        raise ConfigError("the demo recreates its database: it runs only against a local MariaDB")
    db_name = config.db_name if config.db_name != "wordpress" else DEMO_DB
    config = Config(**{**config.__dict__, "db_name": db_name})
    say = (lambda *a: None) if as_json else print
    try:
        from wpfixture import build_network
        from wpfixture.azurite import start_azurite, stop
        from wpfixture.local_host import LocalFunctions
    except ImportError:
        raise ConfigError("the demo needs the repo's wpfixture package: run it from the repo root") from None

    say(f"Building a demo network with real WordPress in database {db_name!r} "
        f"(main site + {sites} sites, {users} users)...")
    started = time.perf_counter()
    specs = [{"slug": f"site{i}", "title": f"{ROLES[i % len(ROLES)].title()}s",
              "options": {"default_role": ROLES[i % len(ROLES)]}} for i in range(1, sites + 1)]
    net = build_network(db_name, config.table_prefix, sites=specs, users=users,
                        host=config.db_host, port=config.db_port, user=config.db_user,
                        password=config.db_password, title="wpmsync demo")
    wp = net.wp
    first_site = net.site_ids[0]
    wp.add_user_to_blog(first_site, net.user_ids[0], "editor")  # an existing member, left alone
    say(f"  built in {time.perf_counter() - started:.1f}s by wp_install, wpmu_create_blog, wpmu_create_user")

    with tempfile.TemporaryDirectory(prefix="wpmsync-demo-") as tmp:
        azurite, connection = start_azurite(tmp)
        saved = {k: os.environ.get(k) for k in DEMO_ENV}
        os.environ.update({"AzureWebJobsStorage": connection, "WPMSYNC_DB_NAME": db_name,
                           "WPMSYNC_TABLE_PREFIX": config.table_prefix, "WPMSYNC_HOOK_SECRET": DEMO_SECRET,
                           "WPMSYNC_BATCH_SIZE": str(max(2, users // 3))})
        try:
            report = _through_functions(config, wp, net, first_site, LocalFunctions(DEMO_SECRET), say)
        finally:
            stop(azurite)
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
    report["database"] = db_name
    return report


DEMO_SECRET = "demo-hook-secret-not-for-production"
DEMO_ENV = ("AzureWebJobsStorage", "WPMSYNC_DB_NAME", "WPMSYNC_TABLE_PREFIX", "WPMSYNC_HOOK_SECRET",
            "WPMSYNC_BATCH_SIZE")


def _preview(app: Any, status: int, body: dict[str, Any], key: str) -> dict[str, Any]:
    """A preview answered inline (200), or, over one batch, queued as a job (202): then its
    result, once the queue has run it."""
    if status != 202:
        return body
    app.drain()
    return app.job(body["job_id"])["result"][key]


def _through_functions(config: Config, wp: Any, net: Any, first_site: int, app: Any, say: Any) -> dict[str, Any]:
    """The sync and the three triggers, each through the function a real deployment would run."""
    from blueprints import common
    from wpmsync.secrets import reset_secrets

    reset_secrets()
    common.reset()
    common.queue().ensure()
    common.queue().poison().ensure()
    with Engine(config) as engine:
        names = {s.blog_id: s.path for s in engine.network.live_sites()}
        before = members_by_site(engine)

    app.http("settings", "PATCH", "settings", {"new_user": True, "new_site": True, "role_sync": True})
    plan = _preview(app, *app.http("plan", "POST", "plan", {}), "plan")
    say(f"\nPOST /api/plan: {plan['added']} memberships to add on {len(plan['sites'])} sites")
    status, queued = app.http("sync", "POST", "sync", {})
    say(f"POST /api/sync: {status}, job {queued['job_id']} with {queued['batches']} batches")
    started = time.perf_counter()
    delivered = app.drain()
    job = app.job(queued["job_id"])
    say(f"  queue function ran {delivered} messages in {time.perf_counter() - started:.2f}s; "
        f"GET /api/jobs/{{id}}: {job['state']}, batches {job['batches']['done']}/{job['batches']['total']}, "
        f"{job['memberships_added']} memberships added")
    undo = _preview(app, *app.http("undo", "POST", f"jobs/{queued['job_id']}/undo", {"dry_run": True},
                                   params={"job_id": queued["job_id"]}), "preview")
    say(f"  POST /api/jobs/{{id}}/undo (dry run): the undo journal could put back all {undo['restored']} rows "
        f"it wrote ({undo['conflicts']} changed since); nothing undone")

    newcomer = wp.create_user("newcomer")
    wp.add_user_to_blog(first_site, newcomer, "author")  # created by a subsite admin
    _, joined = app.hook("user_created", {"user_id": newcomer, "blog_id": first_site})
    say(f"hook user_created (user {newcomer}, made on site {first_site}): joined {joined['added']} more sites")
    new_site = wp.create_site("fresh", "Fresh site", options={"default_role": "contributor"})
    status, filled = app.hook("site_created", {"blog_id": new_site})
    if status == 202:
        app.drain()
        filled = {"added": app.job(filled["job_id"])["memberships_added"], "via": "queue"}
    say(f"hook site_created (site {new_site}): {filled['added']} users joined as contributor"
        f"{' (through the queue)' if filled.get('via') else ''}")
    wp.set_role(1, net.user_ids[1], "editor")
    _, replicated = app.hook("role_changed", {"user_id": net.user_ids[1], "blog_id": 1, "role": "editor",
                                              "actor_id": net.admin_user_id})
    say(f"hook role_changed (user {net.user_ids[1]} made editor on the main site): role set on "
        f"{replicated['roles_set']} other sites ({len(replicated['skipped'])} left as they were)")

    with Engine(config) as engine:
        names = {s.blog_id: s.path for s in engine.network.live_sites()}
        after = members_by_site(engine)
    say("\nMemberships per site (before -> after):")
    say(_table(before, after, names))
    seen = wp.read_back(members=False)
    memberships = sum(len(b["users"]) for b in seen["blogs"].values()
                      if not (b["archived"] or b["spam"] or b["deleted"]))
    say(f"\nWordPress itself (get_users per site) now sees {memberships} memberships; "
        f"`python -m wpmsync plan --db {config.db_name}` shows there is nothing left to add.")
    return {"command": "demo", "before": {str(k): sum(v.values()) for k, v in before.items()},
            "after": {str(k): sum(v.values()) for k, v in after.items()}, "job": job,
            "undo_preview": undo, "new_user": joined, "new_site": filled, "role": replicated,
            "wordpress_sees": memberships}
