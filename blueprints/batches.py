"""The batch queue: one message per batch of a sync job, and its poison queue.

Messages are plain JSON (host.json sets ``messageEncoding: none``):
``{"type": "prepare", "job": ID}`` starts the job's lanes (``WPMSYNC_MAX_PARALLEL_BATCHES``):
one ``{"type": "batch", "job": ID, "seq": N, "lanes": L}`` for the first pending batch of each
lane (seq mod L), a batch being the job's sites × one user-id range; each batch, once done,
queues the next batch of its lane. So the queue holds about as many messages as may write.
``{"type": "undo_preview", "job": ID, "of": ID, "from_user": N}`` previews one range of an
undo too large for one request, for the preview job ``job``, and queues the next.
``{"type": "undo", "job": ID, "undo": ID}``
(with ``from_user``) undoes one user-id range of a change and queues the next one while ranges
remain (a redelivered one finds its range already undone). A message that fails is retried by the
host; after ``maxDequeueCount`` tries it lands in the poison queue, where the job is marked
failed with the batch and the reason, so it never stays ``running``.

Batches and undo steps write: each first takes a writer slot (``wpmsync.throttle``: at most
``WPMSYNC_MAX_PARALLEL_BATCHES`` at once across every instance). Without a free slot the message
is sent again, invisible for a few seconds, and this one is acknowledged: waiting is not a failed
try and never leads to the poison queue. A database connection lost under a writer (1040, 2003,
2006, 2013) is tried again here with a backoff; the batch resumes where its last step committed.

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

from wpmsync import Engine, db, inputs, jobs, throttle
from wpmsync.errors import InputError, NotFound
from wpmsync.journal import Change

from . import common

bp = func.Blueprint()
log = logging.getLogger("wpmsync.batches")

MAX_SEQ = 2**31 - 1   # job_batches.seq is an INT
MAX_LANES = 64        # WPMSYNC_MAX_PARALLEL_BATCHES' upper bound
FIELDS = {"prepare": ("type", "job"), "batch": ("type", "job", "seq", "lanes"),
          "undo": ("type", "job", "undo", "from_user"), "undo_preview": ("type", "job", "of", "from_user")}


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
        lanes = inputs.optional(data, "lanes", inputs.whole_number, None, "message.lanes", 1, MAX_LANES)
        if lanes is not None:
            message["lanes"] = lanes
    elif kind == "undo":
        message["undo"] = inputs.job_id(data.get("undo"), "message.undo")
    if kind in ("undo", "undo_preview"):
        message["from_user"] = inputs.optional(data, "from_user", inputs.whole_number, 0, "message.from_user",
                                               0, inputs.MAX_ID)
    if kind == "undo_preview":
        message["of"] = inputs.job_id(data.get("of"), "message.of")
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
        if data["type"] == "prepare":  # reads only: no writer slot
            with common.engine() as engine:
                sent = jobs.handle_prepare(engine, data["job"], common.send)
            log.info("job fanned out", extra={"job_id": data["job"], "batches": sent})
            return
        # A writer: it holds a slot, and a connection lost under it is tried again (the work
        # resumes where its last commit left it).
        db.retry_connection_loss(lambda retried: _write(data, msg, retried), f"{data['type']} of job {data['job']}")
    except throttle.NoSlot as exc:  # back to the queue, later: not a failed try
        common.send([data], throttle.slot_delay())
        log.info("batch waits for a writer slot: %s", exc, extra={
            "job_id": data["job"], "seq": data.get("seq"), "dequeue_count": msg.dequeue_count})
    except jobs.Dropped as exc:
        _dropped(msg, data, str(exc))


def _write(data: dict[str, Any], msg: func.QueueMessage, retried: bool) -> None:
    """A batch or an undo step, on an engine that holds a writer slot (``retried``: a try
    after the connection was lost under an earlier one)."""
    with common.writer() as engine:
        if data["type"] == "undo_preview":
            jobs.handle_undo_preview(engine, data["job"], data["of"], data["from_user"], common.send)
            return
        if data["type"] == "undo":
            _undo_step(engine, data["job"], data["undo"], data["from_user"])
            return
        outcome = jobs.handle_batch(engine, data["job"], data["seq"], common.notify_wordpress)
        # The lane goes on: this copy finished the batch, or it is a retry of one that may
        # have stopped between the batch's commit and this send.
        following = None
        if "lanes" in data and (outcome is not None or retried or msg.dequeue_count > 1):
            following = jobs.successor(engine.conn, engine.network, data["job"], data["seq"], data["lanes"])
    if following is not None:
        common.send([following])
    log.info("batch", extra={"job_id": data["job"], "seq": data["seq"], "dequeue_count": msg.dequeue_count,
                             "added": None if outcome is None else outcome.added,
                             "redelivered": outcome is None})


def _undo_step(engine: Engine, job_id: str, undo_id: str, from_user: int) -> None:
    """One range of a queued undo, then the message for the next range while ranges remain."""
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
    what = f"batch {seq}" if seq is not None else \
        "previewing the undo" if data["type"] == "undo_preview" else "preparing the job"
    reason = f"{what} failed after every retry (dequeued {msg.dequeue_count} times)"
    try:
        with common.engine() as engine:
            jobs.fail_message(engine, data["job"], seq, reason)
    except jobs.Dropped as exc:  # a stale copy: its job is over, or its batch done
        _dropped(msg, data, str(exc))
        return
    log.error("job failed", extra={"job_id": data["job"], "seq": seq, "reason": reason})
