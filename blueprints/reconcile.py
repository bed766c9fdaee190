"""The timers: reconcile drift.

- ``reconcile_drift``, on ``WPMSYNC_RECONCILE_SCHEDULE`` (NCRONTAB, ``0 */15 * * * *`` in the
  samples: every 15 minutes): the incremental pass, which looks at what changed since the last
  pass (new users, new membership rows, sites live again), so a quiet network costs a few
  statements whatever its size;
- ``reconcile_full``, on ``WPMSYNC_FULL_RECONCILE_SCHEDULE`` (default ``0 30 2 * * *``: every
  night at 02:30): the full pass, which reads every membership row, catches what no mark sees
  (rows changed in place or deleted), makes the role report and resets the marks.

The full schedule is read from the environment here, at import: the Python v2 model reads the
decorators when the host indexes the functions, with the app settings in the environment, and a
``%NAME%`` schedule would make the setting required (the host refuses to start without it),
where this one has a default.
"""
from __future__ import annotations

import logging
import os
from typing import Any

import azure.functions as func

from wpmsync.reconcile import reconcile

from . import common

bp = func.Blueprint()
log = logging.getLogger("wpmsync.reconcile")
FULL_SCHEDULE_SETTING = "WPMSYNC_FULL_RECONCILE_SCHEDULE"
DEFAULT_FULL_SCHEDULE = "0 30 2 * * *"
FULL_SCHEDULE = os.environ.get(FULL_SCHEDULE_SETTING, "").strip() or DEFAULT_FULL_SCHEDULE  # empty: default
LOGGED = ("job_id", "reason", "sites_missing_members", "outbox", "pass", "full_because", "changed_users",
          "new_sites", "statements")


@bp.timer_trigger(arg_name="timer", schedule="%WPMSYNC_RECONCILE_SCHEDULE%", run_on_startup=False)
def reconcile_drift(timer: func.TimerRequest) -> None:
    """The incremental pass (a full one when the marks say so: the first, after a change of the
    switches or options, after a failed job of the timer)."""
    _run(timer, full=False)


@bp.timer_trigger(arg_name="timer", schedule=FULL_SCHEDULE, run_on_startup=False)
def reconcile_full(timer: func.TimerRequest) -> None:
    """The full pass; when the other timer holds the lease (both fire at 02:30 by default) or a
    sync job runs, it asks the next pass to be the full one instead."""
    _run(timer, full=True)


def _run(timer: func.TimerRequest, *, full: bool) -> None:
    with common.engine("timer") as engine:
        # The pass queues its own job (jobs.start): a job whose message cannot be queued ends
        # failed there, as on every other path, and the error fails this invocation.
        result: dict[str, Any] = reconcile(engine, common.send, common.notify_wordpress, full=full)
    log.info("reconcile %s", result.get("status"), extra={"past_due": timer.past_due, **{
        k: v for k, v in result.items() if k in LOGGED}})
