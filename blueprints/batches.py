"""The batch queue: one message per batch of a sync job, and its poison queue.

Messages are plain JSON (host.json sets ``messageEncoding: none``):
``{"type": "prepare", "job": ID}`` fans out one ``{"type": "batch", "job": ID, "seq": N}``
per batch (the job's sites × one user-id range). ``{"type": "undo", "job": ID, "undo": ID}``
(with ``from_user``) undoes one user-id range of a change and queues the next one while ranges
remain (a redelivered one finds its range already undone). A message that fails is retried by the
host; after ``maxDequeueCount`` tries it lands in the poison queue, where the job is marked
failed with the batch and the reason, so it never stays ``running``.
"""
from __future__ import annotations

import json
import logging
from typing import Any

import azure.functions as func

from wpmsync import jobs
from wpmsync.errors import InputError
from wpmsync.journal import Change, parse_job_id

from . import common

bp = func.Blueprint()
log = logging.getLogger("wpmsync.batches")


def _parse(msg: func.QueueMessage) -> dict[str, Any] | None:
    try:
        data = json.loads(msg.get_body().decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        data = None
    if not isinstance(data, dict) or data.get("type") not in ("prepare", "batch", "undo") or not data.get("job"):
        log.error("dropping a message that is not ours", extra={"message_id": msg.id})
        return None
    if data["type"] == "undo":
        try:
            data["job"], data["undo"] = parse_job_id(data["job"]), parse_job_id(data.get("undo"))
            data["from_user"] = int(data.get("from_user", 0))
        except (InputError, TypeError, ValueError):
            log.error("dropping an undo message without valid ids", extra={"message_id": msg.id})
            return None
    return data


@bp.queue_trigger(arg_name="msg", queue_name=common.QUEUE_NAME, connection="AzureWebJobsStorage")
def run_batch(msg: func.QueueMessage) -> None:
    data = _parse(msg)
    if data is None:
        return
    if data["type"] == "undo":
        _undo_step(data["job"], data["undo"], data["from_user"])
        return
    with common.engine() as engine:
        if data["type"] == "prepare":
            sent = jobs.handle_prepare(engine, data["job"], common.send)
            log.info("job fanned out", extra={"job_id": data["job"], "batches": sent})
            return
        outcome = jobs.handle_batch(engine, data["job"], int(data["seq"]), common.notify_wordpress)
    log.info("batch", extra={"job_id": data["job"], "seq": data["seq"], "dequeue_count": msg.dequeue_count,
                             "added": None if outcome is None else outcome.added,
                             "redelivered": outcome is None})


def _undo_step(job_id: str, undo_id: str, from_user: int) -> None:
    """One range of a queued undo, then the message for the next range while ranges remain."""
    with common.engine("queue") as engine:
        outcome = engine.undo(job_id, change=Change(undo_id, f"undo {job_id} (queue)", undo_of=job_id),
                              from_user=from_user, max_ranges=1)
    common.notify_wordpress(outcome)
    if outcome.next_user is not None:
        common.send([{"type": "undo", "job": job_id, "undo": undo_id, "from_user": outcome.next_user}])
    log.info("undo step", extra={"job_id": undo_id, "undo_of": job_id, "from_user": from_user,
                                 "restored": outcome.restored, "conflicts": outcome.conflicts,
                                 "next_user": outcome.next_user,
                                 "skipped": outcome.skipped[:5]})


@bp.queue_trigger(arg_name="msg", queue_name=common.QUEUE_NAME + "-poison", connection="AzureWebJobsStorage")
def poisoned_batch(msg: func.QueueMessage) -> None:
    data = _parse(msg)
    if data is None:
        return
    if data["type"] == "undo":  # nothing to mark: rerunning the undo restores what is left
        log.error("queued undo failed after every retry; run the undo again", extra={
            "job_id": data["undo"], "undo_of": data["job"], "dequeue_count": msg.dequeue_count})
        return
    seq = int(data["seq"]) if data["type"] == "batch" else None
    what = f"batch {seq}" if seq is not None else "preparing the job"
    reason = f"{what} failed after every retry (dequeued {msg.dequeue_count} times)"
    with common.engine() as engine:
        jobs.fail(engine.conn, engine.network, data["job"], seq, reason)
    log.error("job failed", extra={"job_id": data["job"], "seq": seq, "reason": reason})
