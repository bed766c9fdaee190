"""The batch queue: one message per batch of a sync job, and its poison queue.

Messages are plain JSON (host.json sets ``messageEncoding: none``):
``{"type": "prepare", "job": ID}`` fans out one ``{"type": "batch", "job": ID, "seq": N}``
per batch (the job's sites × one user-id range). ``{"type": "undo", "job": ID, "undo": ID}``
(with ``from_user``) undoes one user-id range of a change and queues the next one while ranges
remain (a redelivered one finds its range already undone). A message that fails is retried by the
host; after ``maxDequeueCount`` tries it lands in the poison queue, where the job is marked
failed with the batch and the reason, so it never stays ``running``.

Only faults a retry may cure are raised. A message that is malformed in any way (not JSON, an
unknown type, a field missing, of the wrong type or out of range, a field too many), or whose
job is unknown, failed, undone or finished (``jobs.Dropped``), is dropped with one log line:
raising would only have the host retry it into the poison queue.
"""
from __future__ import annotations

import json
import logging
from typing import Any

import azure.functions as func

from wpmsync import inputs, jobs
from wpmsync.errors import InputError, NotFound
from wpmsync.journal import Change

from . import common

bp = func.Blueprint()
log = logging.getLogger("wpmsync.batches")

MAX_SEQ = 2**31 - 1   # job_batches.seq is an INT
FIELDS = {"prepare": ("type", "job"), "batch": ("type", "job", "seq"),
          "undo": ("type", "job", "undo", "from_user")}


def parse_message(body: bytes) -> dict[str, Any]:
    """A queue message, parsed strictly (``wpmsync.inputs``): a JSON object of one known type
    with exactly its fields, ids of the right kind, numbers in range. Anything else is an
    ``InputError``: no retry would make it better, so it is dropped, not raised."""
    try:
        data = json.loads(body.decode("utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError):  # deep nesting: RecursionError
        raise InputError("message is not JSON", "message") from None
    data = inputs.obj(data, "message")
    kind = inputs.choice(data.get("type"), "message.type", tuple(FIELDS))
    inputs.obj(data, "message", FIELDS[kind])
    message: dict[str, Any] = {"type": kind, "job": inputs.job_id(data.get("job"), "message.job")}
    if kind == "batch":
        message["seq"] = inputs.whole_number(data.get("seq"), "message.seq", 0, MAX_SEQ)
    elif kind == "undo":
        message["undo"] = inputs.job_id(data.get("undo"), "message.undo")
        message["from_user"] = inputs.optional(data, "from_user", inputs.whole_number, 0, "message.from_user",
                                               0, inputs.MAX_ID)
    return message


def _parse(msg: func.QueueMessage) -> dict[str, Any] | None:
    """The message, or None when it is malformed (logged once)."""
    try:
        return parse_message(msg.get_body())
    except InputError as exc:
        log.error("dropping a malformed message: %s", exc, extra={"message_id": msg.id,
                                                                  "dequeue_count": msg.dequeue_count})
        return None


def _dropped(msg: func.QueueMessage, data: dict[str, Any], reason: str) -> None:
    """The one log line of a message whose job may no longer run; the message is acknowledged."""
    log.warning("dropping a %s message: %s", data["type"], reason, extra={
        "message_id": msg.id, "job_id": data["job"], "seq": data.get("seq"), "dequeue_count": msg.dequeue_count})


@bp.queue_trigger(arg_name="msg", queue_name=common.QUEUE_NAME, connection="AzureWebJobsStorage")
def run_batch(msg: func.QueueMessage) -> None:
    data = _parse(msg)
    if data is None:
        return
    try:
        if data["type"] == "undo":
            _undo_step(data["job"], data["undo"], data["from_user"])
            return
        with common.engine() as engine:
            if data["type"] == "prepare":
                sent = jobs.handle_prepare(engine, data["job"], common.send)
                log.info("job fanned out", extra={"job_id": data["job"], "batches": sent})
                return
            outcome = jobs.handle_batch(engine, data["job"], data["seq"], common.notify_wordpress)
    except jobs.Dropped as exc:
        _dropped(msg, data, str(exc))
        return
    log.info("batch", extra={"job_id": data["job"], "seq": data["seq"], "dequeue_count": msg.dequeue_count,
                             "added": None if outcome is None else outcome.added,
                             "redelivered": outcome is None})


def _undo_step(job_id: str, undo_id: str, from_user: int) -> None:
    """One range of a queued undo, then the message for the next range while ranges remain."""
    with common.engine("queue") as engine:
        try:
            outcome = engine.undo(job_id, change=Change(undo_id, f"undo {job_id} (queue)", undo_of=job_id),
                                  from_user=from_user, max_ranges=1)
        except NotFound as exc:  # a change the journal does not know (pruned, uninstalled): no retry helps
            raise jobs.Dropped(str(exc)) from None
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
    seq = data.get("seq")
    what = f"batch {seq}" if seq is not None else "preparing the job"
    reason = f"{what} failed after every retry (dequeued {msg.dequeue_count} times)"
    try:
        with common.engine() as engine:
            jobs.fail_message(engine, data["job"], seq, reason)
    except jobs.Dropped as exc:  # a stale copy: its job is over, or its batch done
        _dropped(msg, data, str(exc))
        return
    log.error("job failed", extra={"job_id": data["job"], "seq": seq, "reason": reason})
