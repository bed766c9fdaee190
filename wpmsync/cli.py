"""``python -m wpmsync <command>``: the engine for operators who prefer a shell to the portal.

Each command prints a short summary (or one JSON object with ``--json``) and exits 0; an error
is one line on stderr and a non-zero exit, never a traceback.
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Sequence

import pymysql

from .config import Config
from .engine import Engine
from .errors import InputError, Unreachable, WpmsyncError
from .memberships import Outcome


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    common.add_argument("--prefix", help="table prefix (default: WPMSYNC_TABLE_PREFIX or wp_)")
    common.add_argument("--db", help="database name (default: WPMSYNC_DB_NAME or wordpress)")
    common.add_argument("--network", type=int, help="network id (default: WPMSYNC_NETWORK_ID or 1)")
    writes = argparse.ArgumentParser(add_help=False)
    writes.add_argument("--dry-run", action="store_true", help="show what would change, write nothing")
    forced = argparse.ArgumentParser(add_help=False)
    forced.add_argument("--force", action="store_true",
                        help="also add back users removed from a site on purpose (clears the record)")

    parser = argparse.ArgumentParser(prog="python -m wpmsync", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = sub.add_parser("plan", parents=[common, forced], help="what a sync would add (dry run)")
    p.add_argument("--sites", nargs="+", metavar="BLOG_ID", help="only these sites")
    sub.add_parser("sync-all", parents=[common, writes, forced], help="every site gets every user")
    p = sub.add_parser("sync-sites", parents=[common, writes, forced], help="these sites get every user")
    p.add_argument("blog_ids", nargs="*", metavar="BLOG_ID")
    p = sub.add_parser("add-user", parents=[common, writes, forced], help="one user joins every site")
    p.add_argument("user_id", metavar="USER_ID")
    p = sub.add_parser("add-site", parents=[common, writes, forced], help="one site gets every user")
    p.add_argument("blog_id", metavar="BLOG_ID")
    p = sub.add_parser("set-role", parents=[common, writes],
                       help="replicate the user's role on one site to its other sites")
    p.add_argument("user_id", metavar="USER_ID")
    p.add_argument("role", metavar="ROLE")
    p.add_argument("--from-site", required=True, metavar="BLOG_ID")
    p.add_argument("--actor", metavar="USER_ID", help="who changed the role (a super admin may "
                   "replicate roles at or above the ceiling)")
    p = sub.add_parser("settings", parents=[common], help="show or change the trigger switches")
    for flag in ("new-user", "new-site", "role-sync"):
        p.add_argument(f"--{flag}", choices=["on", "off"])
    p = sub.add_parser("options", parents=[common], help="show or change the network options "
                       "(per-site opt_out and role, excluded_roles / allowed_roles, missing_role)")
    p.add_argument("--set", metavar="JSON", help='e.g. \'{"sites": {"5": {"opt_out": true}}, '
                   '"missing_role": "copy"}\'')
    p = sub.add_parser("sync-users", parents=[common, writes, forced],
                       help="these users join these sites (bulk sync by hand)")
    p.add_argument("--users", nargs="+", required=True, metavar="USER_ID")
    p.add_argument("--sites", nargs="+", required=True, metavar="BLOG_ID")
    p = sub.add_parser("unsync", parents=[common, writes],
                       help="take users off sites, as remove_user_from_blog() does (remembered)")
    p.add_argument("--users", nargs="+", required=True, metavar="USER_ID")
    p.add_argument("--sites", nargs="+", required=True, metavar="BLOG_ID")
    p = sub.add_parser("journal", parents=[common], help="the newest changes in the undo journal")
    p.add_argument("--limit", type=int, default=20)
    p = sub.add_parser("undo", parents=[common, writes],
                       help="put back the exact rows a change (a job, hook or action) replaced")
    p.add_argument("job_id", metavar="JOB_ID")
    sub.add_parser("uninstall", parents=[common], help="remove our settings and tables (never users)")
    p = sub.add_parser("demo", parents=[common], help="build a demo network with real WordPress and sync it")
    p.add_argument("--users", type=int, default=12, help="users in the demo network")
    p.add_argument("--sites", type=int, default=4, help="sites besides the main site")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result = run(args)
    except Unreachable as exc:  # a database fault (README: exit 1), though raised as a ConfigError
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except WpmsyncError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except pymysql.MySQLError as exc:
        print(f"error: database: {exc.args[-1] if exc.args else exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted: batches already committed stay; rerun to finish", file=sys.stderr)
        return 130
    if args.json:
        print(json.dumps(result, sort_keys=True))
    return 0


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Dispatch one command; returns the JSON document and prints the human summary."""
    config = Config.from_env(table_prefix=args.prefix, db_name=args.db, network_id=args.network)
    if args.command == "demo":  # in its own database (wpmsync_demo) unless --db says otherwise
        from .demo import run_demo  # needs real WordPress: only the demo pulls it in
        return run_demo(config, users=args.users, sites=args.sites, as_json=args.json)
    say = (lambda *a: None) if args.json else print
    with Engine(config, trigger=f"cli:{args.command}") as engine:
        cmd = args.command
        if cmd == "settings":
            changes = {name: getattr(args, name) == "on" for name in ("new_user", "new_site", "role_sync")
                       if getattr(args, name) is not None}  # argparse took on / off only
            values = engine.change_settings(**changes) if changes else engine.settings()
            for name, on in values.items():
                say(f"{name.replace('_', '-'):<10} {'on' if on else 'off'}")
            return {"command": cmd, "settings": values}
        if cmd == "options":
            if args.set:
                try:
                    changes = json.loads(args.set)
                except ValueError:
                    raise InputError("--set must be a JSON object", "--set") from None
                values = engine.change_network_options(changes)
            else:
                values = engine.network_options()
            say(json.dumps(values, indent=2, sort_keys=True))
            return {"command": cmd, "options": values}
        if cmd == "uninstall":
            result = engine.uninstall()
            say(f"removed {result['settings_deleted']} setting rows, {result['removal_records_deleted']} "
                f"removal records, {len(result['tables_dropped'])} tables; users, memberships and roles kept")
            return {"command": cmd, **result}
        if cmd == "journal":
            changes = engine.journal(args.limit)
            for c in changes:
                undone = f"  undone by {c['undone_by']}" if c["undone_by"] else ""
                say(f"{c['job_id']}  {c['created_at']}  {c['rows']:>8} rows  {c['trigger']}{undone}")
            return {"command": cmd, "changes": changes}
        if cmd == "undo":
            result = engine.undo(args.job_id, dry_run=args.dry_run).to_dict()
            verb = "would restore" if args.dry_run else "restored"
            say(f"{verb} {result['restored']} rows of change {args.job_id}; {result['conflicts']} rows left "
                "alone (their membership changed since)" + (f"; undo it with: undo {result['job_id']}"
                                                             if result["job_id"] else ""))
            for skip in result["skipped"][:20]:
                say(f"  kept user_id={skip['user_id']} blog_id={skip['blog_id']}: {skip['reason']}")
            return {"command": cmd, **result}
        progress = _progress
        if cmd == "plan":
            outcome = engine.sync_sites(args.sites, force=args.force, dry_run=True, progress=progress)
        elif cmd == "sync-all":
            outcome = engine.sync_sites(None, force=args.force, dry_run=args.dry_run, progress=progress)
        elif cmd == "sync-sites":
            outcome = engine.sync_sites(args.blog_ids, force=args.force, dry_run=args.dry_run,
                                        progress=progress)
        elif cmd == "add-user":
            outcome = engine.add_user_to_all_sites(args.user_id, force=args.force, dry_run=args.dry_run)
        elif cmd == "add-site":
            outcome = engine.add_all_users_to_site(args.blog_id, force=args.force, dry_run=args.dry_run,
                                                   progress=progress)
        elif cmd == "sync-users":
            outcome = engine.add_users_to_sites(args.users, args.sites, force=args.force, dry_run=args.dry_run)
        elif cmd == "unsync":
            outcome = engine.remove_users(args.users, args.sites, dry_run=args.dry_run)
        else:  # set-role
            outcome = engine.replicate_role(args.user_id, args.role, args.from_site, args.actor,
                                            dry_run=args.dry_run)
        say(summary(outcome))
        return {"command": cmd, **outcome.to_dict()}


def _progress(done: int, total: int) -> None:
    step = max(1, total // 20)
    if done == total or done % step == 0:
        print(f"progress: {done}/{total} batches", file=sys.stderr, flush=True)


def summary(outcome: Outcome) -> str:
    """A few lines a person reads: totals, then one line per site touched, then the skips."""
    verb = "would add" if outcome.dry_run else "added"
    lines = [f"{verb} {outcome.added} memberships on {sum(1 for s in outcome.sites.values() if s['added'])} "
             f"sites; {'would set' if outcome.dry_run else 'set'} {outcome.roles_set} roles; "
             f"{len(outcome.skipped)} skipped"]
    removed = sum(e.get("removed", 0) for e in outcome.sites.values())
    if removed:
        lines.append(f"{'would remove' if outcome.dry_run else 'removed'} {removed} memberships")
    for blog_id, entry in sorted(outcome.sites.items()):
        if entry["added"] or entry["roles_set"] or entry.get("removed"):
            ids = ", ".join(map(str, entry["user_ids"]))
            lines.append(f"  site {blog_id:>5}: +{entry['added']} members, {entry['roles_set']} roles"
                         f"  (users {ids}{', ...' if entry['added'] > len(entry['user_ids']) else ''})")
    for skip in outcome.skipped[:20]:
        where = " ".join(f"{k}={v}" for k, v in skip.items() if k != "reason")
        lines.append(f"  skipped {where}: {skip['reason']}")
    if len(outcome.skipped) > 20:
        lines.append(f"  ... and {len(outcome.skipped) - 20} more skipped")
    if outcome.job_id:
        lines.append(f"journaled as change {outcome.job_id} (python -m wpmsync undo {outcome.job_id})")
    return "\n".join(lines)
