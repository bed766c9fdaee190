"""Signed hook callbacks: HMAC-SHA256 over the timestamp and the body, with a shared secret.

WordPress (the mu-plugin) sends two headers with every callback, and the functions send the same
two with every call back to WordPress (the clean-cache route):

- ``X-Wpmsync-Timestamp``: Unix seconds when it was sent;
- ``X-Wpmsync-Signature``: ``sha256=`` + hex HMAC-SHA256 of ``"<timestamp>." + body``.

We refuse (401) a missing or wrong signature and a timestamp more than five minutes away from
our clock, comparing in constant time. Signing the timestamp with the body stops an old
callback from being replayed later with a fresh timestamp.

Rotation without a gap: a side may hold a *previous* secret besides its current one. It then
signs with both, current first (``sha256=<a>,sha256=<b>``), and accepts a message if any
signature in the header matches any of its secrets. With one secret the header is exactly the
single ``sha256=<hex>`` it always was. The header grammar (shared with the PHP signer,
``Wpmsync_Signer``, and pinned by tests/vectors/signing.json): 1 to ``MAX_SIGNATURES``
comma-separated items, each ``sha256=`` and 64 lowercase hex digits, spaces or tabs allowed
around an item; anything else is refused as malformed (401) before any HMAC is computed.
"""
from __future__ import annotations

import hashlib
import hmac
import re
import time
from typing import Iterable

from .errors import Unauthorized

TIMESTAMP_HEADER = "X-Wpmsync-Timestamp"
SIGNATURE_HEADER = "X-Wpmsync-Signature"
WINDOW_SECONDS = 300
# Two are needed (current + previous); a few more leave room without letting a caller make us
# compute an HMAC comparison per item of an arbitrarily long header.
MAX_SIGNATURES = 4

_ITEM = re.compile(r"sha256=[0-9a-f]{64}")
_OWS = " \t"  # HTTP optional whitespace, the same set PHP's trim( $item, " \t" ) strips


def sign(secret: str, timestamp: str | int, body: bytes) -> str:
    """One signature, ``sha256=<hex>``."""
    digest = hmac.new(secret.encode("utf-8"), f"{timestamp}.".encode("ascii") + body, hashlib.sha256)
    return "sha256=" + digest.hexdigest()


def _secret_list(secrets: str | Iterable[str]) -> list[str]:
    """The non-empty secrets, in order, each once (a previous secret equal to the current one
    adds nothing); a single string is one secret."""
    items = [secrets] if isinstance(secrets, str) else list(secrets)
    out: list[str] = []
    for secret in items:
        if secret and secret not in out:
            out.append(secret)
    return out


def signature_header(secrets: str | Iterable[str], timestamp: str | int, body: bytes) -> str:
    """The ``X-Wpmsync-Signature`` value: one signature per secret, current first.

    With a single secret this is exactly ``sign(secret, ...)``, so a side without a previous
    secret sends what it always sent."""
    keys = _secret_list(secrets)
    if not keys or len(keys) > MAX_SIGNATURES:
        raise ValueError(f"signing needs 1 to {MAX_SIGNATURES} non-empty secrets")
    return ",".join(sign(secret, timestamp, body) for secret in keys)


def parse_signatures(header: str) -> list[str]:
    """The signatures of a header, or ``Unauthorized`` when the header is malformed."""
    items = [item.strip(_OWS) for item in header.split(",")]
    if len(items) > MAX_SIGNATURES:
        raise Unauthorized(f"{SIGNATURE_HEADER} carries more than {MAX_SIGNATURES} signatures")
    if not all(_ITEM.fullmatch(item) for item in items):
        raise Unauthorized(f"malformed {SIGNATURE_HEADER} header: expected sha256=<64 hex>[,sha256=<64 hex>]")
    return items


def matches(secrets: str | Iterable[str], timestamp: str, signatures: list[str], body: bytes) -> bool:
    """Whether any signature is the HMAC of any secret. Every pair is compared in constant time
    and none is skipped, so the time taken does not tell which item (or whether one) matched."""
    found = False
    for secret in _secret_list(secrets):
        expected = sign(secret, timestamp, body).encode("ascii")
        for signature in signatures:
            found |= hmac.compare_digest(expected, signature.encode("ascii"))
    return found


def verify(secrets: str | Iterable[str], timestamp: str | None, signature: str | None, body: bytes,
           now: float | None = None) -> int:
    """Raise ``Unauthorized`` unless the callback is signed with one of ``secrets`` (the current
    secret, then the previous one if any) and fresh; returns the timestamp."""
    if not timestamp or not signature:
        raise Unauthorized(f"missing {TIMESTAMP_HEADER} or {SIGNATURE_HEADER} header")
    if not (timestamp.isascii() and timestamp.isdigit()) or len(timestamp) > 12:  # ASCII: isdigit() takes "١٢"
        raise Unauthorized(f"{TIMESTAMP_HEADER} must be Unix seconds")
    if not matches(secrets, timestamp, parse_signatures(signature), body):
        raise Unauthorized("bad signature")
    now = time.time() if now is None else now
    if abs(now - int(timestamp)) > WINDOW_SECONDS:
        raise Unauthorized(f"timestamp is more than {WINDOW_SECONDS // 60} minutes away from now")
    return int(timestamp)
