"""``python -m wpmsync demo``: a demo network built by real WordPress, synced, with a report.

Needs the repo's ``wpfixture`` package (PHP + Debian's WordPress); it is a development tool and
is imported only here. It refuses to touch anything but a local database, which it recreates.
"""
from __future__ import annotations

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
    """Build, sync, show. Returns the JSON document of the CLI."""
    if config.db_host not in LOCAL_HOSTS:
        raise ConfigError("the demo recreates its database: it runs only against a local MariaDB")
    db_name = config.db_name if config.db_name != "wordpress" else DEMO_DB
    config = Config(**{**config.__dict__, "db_name": db_name})
    say = (lambda *a: None) if as_json else print
    try:
        from wpfixture import build_network
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

    report: dict[str, Any] = {"command": "demo", "database": db_name}
    with Engine(config) as engine:
        names = {s.blog_id: s.path for s in engine.network.live_sites()}
        before = members_by_site(engine)
        engine.change_settings(new_user="on", new_site="on", role_sync="on")
        plan = engine.sync_sites(None, dry_run=True)
        say(f"\nPlan (dry run): {plan.added} memberships to add on {len(plan.sites)} sites")
        started = time.perf_counter()
        synced = engine.sync_sites(None)
        seconds = time.perf_counter() - started
        say(f"Sync from scratch: added {synced.added} memberships in {seconds:.2f}s")

        # The three triggers, as the hooks will call them.
        newcomer = wp.create_user("newcomer")
        wp.add_user_to_blog(first_site, newcomer, "author")  # created by a subsite admin
        joined = engine.add_user_to_all_sites(newcomer)
        say(f"New user {newcomer} (created on site {first_site}): joined {joined.added} more sites")
        new_site = wp.create_site("fresh", "Fresh site", options={"default_role": "contributor"})
        engine.network = type(engine.network).load(engine.conn, config)
        names = {s.blog_id: s.path for s in engine.network.live_sites()}
        filled = engine.add_all_users_to_site(new_site)
        say(f"New site {new_site}: {filled.added} users joined as contributor")
        wp.set_role(1, net.user_ids[1], "editor")
        replicated = engine.replicate_role(net.user_ids[1], "editor", 1)
        say(f"User {net.user_ids[1]} made editor on the main site: role set on {replicated.roles_set} "
            f"other sites ({len(replicated.skipped)} left as they were)")
        after = members_by_site(engine)

    say("\nMemberships per site (before -> after):")
    say(_table(before, after, names))
    seen = wp.read_back(members=False)
    memberships = sum(len(b["users"]) for b in seen["blogs"].values() if not (b["archived"] or b["spam"] or b["deleted"]))
    say(f"\nWordPress itself (get_users per site) now sees {memberships} memberships; "
        f"rerun `python -m wpmsync plan --db {db_name}` to see there is nothing left to add.")
    report.update(before={str(k): sum(v.values()) for k, v in before.items()},
                  after={str(k): sum(v.values()) for k, v in after.items()},
                  sync=synced.to_dict(), new_user=joined.to_dict(), new_site=filled.to_dict(),
                  role=replicated.to_dict(), wordpress_sees=memberships)
    return report
