"""Signed hook callbacks: HMAC-SHA256 over the timestamp and the body, with a shared secret.

WordPress (the mu-plugin) sends two headers with every callback:

- ``X-Wpmsync-Timestamp``: Unix seconds when it was sent;
- ``X-Wpmsync-Signature``: ``sha256=`` + hex HMAC-SHA256 of ``"<timestamp>." + body``.

We refuse (401) a missing or wrong signature and a timestamp more than five minutes away from
our clock, comparing in constant time. Signing the timestamp with the body stops an old
callback from being replayed later with a fresh timestamp.
"""
from __future__ import annotations

import hashlib
import hmac
import time

from .errors import Unauthorized

TIMESTAMP_HEADER = "X-Wpmsync-Timestamp"
SIGNATURE_HEADER = "X-Wpmsync-Signature"
WINDOW_SECONDS = 300


def sign(secret: str, timestamp: str | int, body: bytes) -> str:
    digest = hmac.new(secret.encode("utf-8"), f"{timestamp}.".encode("ascii") + body, hashlib.sha256)
    return "sha256=" + digest.hexdigest()


def verify(secret: str, timestamp: str | None, signature: str | None, body: bytes,
           now: float | None = None) -> int:
    """Raise ``Unauthorized`` unless the callback is signed with ``secret`` and fresh."""
    if not timestamp or not signature:
        raise Unauthorized(f"missing {TIMESTAMP_HEADER} or {SIGNATURE_HEADER} header")
    if not timestamp.isdigit() or len(timestamp) > 12:
        raise Unauthorized(f"{TIMESTAMP_HEADER} must be Unix seconds")
    expected = sign(secret, timestamp, body)
    if not hmac.compare_digest(expected.encode("ascii"), signature.strip().encode("utf-8", "replace")):
        raise Unauthorized("bad signature")
    now = time.time() if now is None else now
    if abs(now - int(timestamp)) > WINDOW_SECONDS:
        raise Unauthorized(f"timestamp is more than {WINDOW_SECONDS // 60} minutes away from now")
    return int(timestamp)
