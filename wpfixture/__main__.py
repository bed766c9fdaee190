"""Command line: ``python -m wpfixture {build,drop,copy,list,read-back,run}``.

Examples::

    python -m wpfixture build wpfx_demo --sites 5 --users 50 --default-roles subscriber,author
    python -m wpfixture copy wpfx_demo wpfx_demo_copy
    python -m wpfixture read-back wpfx_demo --users 2,3 --blogs 1,2
    echo '[{"op": "create_user", "login": "zed"}]' | python -m wpfixture run wpfx_demo
    python -m wpfixture list            # scratch databases (wpfx_*)
    python -m wpfixture drop wpfx_demo wpfx_demo_copy
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from . import db
from .network import build_network, site_specs
from .wordpress import WordPress


def _ints(s: str | None) -> list[int] | None:
    return [int(x) for x in s.split(",") if x] if s else None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m wpfixture", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default=db.default_host())
    ap.add_argument("--port", type=int, default=db.default_port())
    ap.add_argument("--user", default=db.default_user())
    ap.add_argument("--password", default=db.default_password())
    sub = ap.add_subparsers(dest="cmd", required=True)

    b = sub.add_parser("build", help="create a fresh network (drops the database first)")
    b.add_argument("db")
    b.add_argument("--prefix", default="wp_")
    b.add_argument("--domain", default="wp.test")
    b.add_argument("--sites", type=int, default=5)
    b.add_argument("--users", type=int, default=50)
    b.add_argument("--user-prefix", default="user")
    b.add_argument("--default-roles", default="", help="comma list cycled over the sites' default_role")
    b.add_argument("--sync", action="store_true", help="also run sync_like_plugin")

    d = sub.add_parser("drop", help="drop databases")
    d.add_argument("dbs", nargs="+")

    c = sub.add_parser("copy", help="copy a database")
    c.add_argument("src")
    c.add_argument("dst")

    li = sub.add_parser("list", help="list scratch databases")
    li.add_argument("--like", default="wpfx_")

    r = sub.add_parser("read-back", help="print read_back JSON")
    r.add_argument("db")
    r.add_argument("--prefix", default="wp_")
    r.add_argument("--domain", default="wp.test")
    r.add_argument("--users")
    r.add_argument("--blogs")

    ru = sub.add_parser("run", help="run a JSON list of ops from stdin")
    ru.add_argument("db")
    ru.add_argument("--prefix", default="wp_")
    ru.add_argument("--domain", default="wp.test")

    a = ap.parse_args(argv)
    conn = {"host": a.host, "port": a.port, "user": a.user, "password": a.password}

    if a.cmd == "build":
        roles = [x for x in a.default_roles.split(",") if x] or None
        t = time.perf_counter()
        net = build_network(
            a.db, a.prefix, site_specs(a.sites, default_roles=roles), a.users,
            user_prefix=a.user_prefix, domain=a.domain, sync=a.sync, **conn,
        )
        print(json.dumps({
            "db": a.db, "prefix": a.prefix, "admin_user_id": net.admin_user_id,
            "site_ids": net.site_ids, "users": len(net.user_ids), "synced": net.synced,
            "timings": {k: round(v, 3) for k, v in net.timings.items()},
            "total_seconds": round(time.perf_counter() - t, 3),
        }))
    elif a.cmd == "drop":
        for name in a.dbs:
            db.drop_database(name, **conn)
    elif a.cmd == "copy":
        db.copy_database(a.src, a.dst, **conn)
    elif a.cmd == "list":
        print("\n".join(db.list_databases(a.like, **conn)))
    elif a.cmd == "read-back":
        wp = WordPress(a.db, a.prefix, domain=a.domain, **conn)
        print(json.dumps(wp.read_back(_ints(a.users), _ints(a.blogs)), indent=1))
    elif a.cmd == "run":
        wp = WordPress(a.db, a.prefix, domain=a.domain, **conn)
        print(json.dumps(wp.run(json.load(sys.stdin))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
