"""The batch queue: one message per batch of a sync job, and its poison queue.

Messages are plain JSON (host.json sets ``messageEncoding: none``):
``{"type": "prepare", "job": ID}`` fans out one ``{"type": "batch", "job": ID, "seq": N}``
per batch (the job's sites × one user-id range). A message that fails is retried by the
host; after ``maxDequeueCount`` tries it lands in the poison queue, where the job is marked
failed with the batch and the reason, so it never stays ``running``.
"""
from __future__ import annotations

import json
import logging
from typing import Any

import azure.functions as func

from wpmsync import jobs

from . import common

bp = func.Blueprint()
log = logging.getLogger("wpmsync.batches")


def _parse(msg: func.QueueMessage) -> dict[str, Any] | None:
    try:
        data = json.loads(msg.get_body().decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        data = None
    if not isinstance(data, dict) or data.get("type") not in ("prepare", "batch") or not data.get("job"):
        log.error("dropping a message that is not ours", extra={"message_id": msg.id})
        return None
    return data


@bp.queue_trigger(arg_name="msg", queue_name=common.QUEUE_NAME, connection="AzureWebJobsStorage")
def run_batch(msg: func.QueueMessage) -> None:
    data = _parse(msg)
    if data is None:
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


@bp.queue_trigger(arg_name="msg", queue_name=common.QUEUE_NAME + "-poison", connection="AzureWebJobsStorage")
def poisoned_batch(msg: func.QueueMessage) -> None:
    data = _parse(msg)
    if data is None:
        return
    seq = int(data["seq"]) if data["type"] == "batch" else None
    what = f"batch {seq}" if seq is not None else "preparing the job"
    reason = f"{what} failed after every retry (dequeued {msg.dequeue_count} times)"
    with common.engine() as engine:
        jobs.fail(engine.conn, engine.network, data["job"], seq, reason)
    log.error("job failed", extra={"job_id": data["job"], "seq": seq, "reason": reason})
