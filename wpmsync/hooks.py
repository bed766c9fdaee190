"""What each WordPress hook callback does, once its signature and event id have been checked.

| event          | data                                  | switch     | work                          |
| -------------- | ------------------------------------- | ---------- | ----------------------------- |
| user_created   | user_id, blog_id (where created)      | new_user   | add to every site (inline)    |
| site_created   | blog_id                               | new_site   | every user joins (inline when |
|                |                                       |            | small, else a queued job)     |
| role_changed   | user_id, blog_id, role, actor_id      | role_sync  | replicate the role (inline)   |
| user_removed   | user_id, blog_id                      | (always)   | remember the removal; with    |
|                |                                       |            | the unsync option, remove the |
|                |                                       |            | user from the sites in scope  |
| user_added     | user_id, blog_id                      | (always)   | forget a removal              |

A hook whose switch is off is acknowledged and does nothing.
"""
from __future__ import annotations

from typing import Any, Callable

from . import events, inputs, jobs, unsync
from .engine import Engine
from .errors import WpmsyncError
from .memberships import Outcome

EVENTS = {"user_created": "new_user", "site_created": "new_site", "role_changed": "role_sync",
          "user_removed": None, "user_added": None}
# The ids each event must carry. user_created's blog_id (the site where the user was created)
# is checked when given and not needed: the user joins every site.
FIELDS = {"user_created": ("user_id",), "site_created": ("blog_id",),
          "role_changed": ("user_id", "blog_id"), "user_removed": ("user_id", "blog_id"),
          "user_added": ("user_id", "blog_id")}
# Refusals that would come back the same however often the event is tried: remembered as the
# event's answer (a replay gets them back) and settled. Anything else (a lock held too long, a job
# still syncing the site, a database fault) leaves the event to be tried again.
FINAL_STATUSES = (400, 404, 413)


def handle_once(engine: Engine, event_id: str, event: str, data: Any, send: Callable[[list[dict]], Any],
                notify: Callable[[Outcome], Any] = lambda outcome: None) -> dict[str, Any]:
    """``handle`` once per event id: a second delivery gets the first answer back (with
    ``"replayed": true``) and writes nothing. Callers hold the event's lock (``delivery.deliver``)."""
    replay = events.claim(engine.conn, engine.network, event_id, event)
    if replay is not None:
        return replay
    try:
        result = handle(engine, event, data, send, notify)
    except WpmsyncError as exc:
        if exc.status in FINAL_STATUSES:
            events.refuse(engine.conn, engine.network, event_id, exc)
        else:
            events.release(engine.conn, engine.network, event_id)
        raise
    except BaseException:
        events.release(engine.conn, engine.network, event_id)
        raise
    events.finish(engine.conn, engine.network, event_id, result)
    return result


def parse_data(event: Any, data: Any) -> tuple[str, dict[str, Any]]:
    """The event's name and its data, each field strictly typed (``inputs``), whether or not
    its switch is on: malformed data is refused, never acknowledged as "ignored". Keys beyond
    the known ones are let through unread, so a newer mu-plugin's extra field does not make an
    event of today refused (and settled) for good."""
    event = inputs.choice(event, "event", tuple(EVENTS))
    data = inputs.obj(data, "data")
    parsed: dict[str, Any] = {}
    for name in FIELDS[event]:
        parsed[name] = inputs.ident(data.get(name), f"data.{name}")
    if event == "user_created":
        parsed["blog_id"] = inputs.optional(data, "blog_id", inputs.ident, None, "data.blog_id")
    if event == "role_changed":
        role = data.get("role", "")  # "" (all roles taken away): nothing to replicate
        parsed["role"] = "" if role == "" else inputs.role(role, "data.role")
        parsed["actor_id"] = inputs.actor_id(data.get("actor_id", 0), "data.actor_id")
    return event, parsed


def handle(engine: Engine, event: str, data: Any, send: Callable[[list[dict]], Any],
           notify: Callable[[Outcome], Any] = lambda outcome: None) -> dict[str, Any]:
    """Run one hook; returns the JSON answer (a ``job_id`` when the work was queued).
    ``notify`` is told what was written inline (WordPress's cache cleaning)."""
    event, data = parse_data(event, data)
    switch = EVENTS[event]
    if switch is not None and not engine.settings()[switch]:
        return {"status": "ignored", "reason": f"the {switch} trigger is off"}

    if event == "user_created":
        outcome = engine.add_user_to_all_sites(data["user_id"])
    elif event == "site_created":
        site = engine.network.require_live_site(data["blog_id"], "data.blog_id")
        if len(engine.user_ranges(1)) > 1:  # more users than one batch: through the queue
            job = jobs.start(engine, "new_site", [site.blog_id], send, trigger="hook:site_created")
            return {"status": "queued", "job_id": job.id, "batches": job.batches_total}
        outcome = engine.add_all_users_to_site(site.blog_id)
    elif event == "role_changed":
        outcome = engine.replicate_role(data["user_id"], data["role"], data["blog_id"], data["actor_id"])
    elif event == "user_removed":
        user_id, blog_id = data["user_id"], data["blog_id"]
        removed_from = engine.record_removal(user_id, blog_id)
        if not engine.network.options.unsync:
            return {"status": "done", "removed_from": removed_from}
        others = unsync.sites_in_scope_of(engine.network, engine.network.require_site(blog_id).blog_id)
        outcome = engine.remove_users([user_id], others) if others else Outcome()
        notify(outcome)
        return {"status": "done", "removed_from": sorted(set(removed_from) | outcome.touched_sites),
                **outcome.to_dict()}
    else:
        return {"status": "done", "removed_from": engine.forget_removal(data["user_id"], data["blog_id"])}
    notify(outcome)
    return {"status": "done", **outcome.to_dict()}
