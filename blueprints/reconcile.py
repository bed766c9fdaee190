"""The timer: reconcile drift on the schedule in ``WPMSYNC_RECONCILE_SCHEDULE`` (NCRONTAB,
``0 */15 * * * *`` in the samples: every 15 minutes)."""
from __future__ import annotations

import logging

import azure.functions as func

from wpmsync.reconcile import reconcile

from . import common

bp = func.Blueprint()
log = logging.getLogger("wpmsync.reconcile")


@bp.timer_trigger(arg_name="timer", schedule="%WPMSYNC_RECONCILE_SCHEDULE%", run_on_startup=False)
def reconcile_drift(timer: func.TimerRequest) -> None:
    with common.engine("timer") as engine:
        # The pass queues its own job (jobs.start): a job whose message cannot be queued ends
        # failed there, as on every other path, and the error fails this invocation.
        result = reconcile(engine, common.send, common.notify_wordpress)
    log.info("reconcile %s", result.get("status"), extra={"past_due": timer.past_due, **{
        k: v for k, v in result.items() if k in ("job_id", "reason", "sites_missing_members", "outbox")}})
