"""Telling WordPress to clean its object cache after we wrote memberships behind its back.

The functions write usermeta with SQL, so a persistent object cache (Redis is common on Azure)
would keep serving old memberships. When ``WPMSYNC_WORDPRESS_URL`` is set, after each batch or
inline hook the functions POST the affected user and blog ids to the mu-plugin's REST route
``/wp-json/wpmsync/v1/clean-cache``, signed like the hooks (same secret, same headers), and
WordPress runs its own ``clean_user_cache``. A failure is logged, never raised: the rows are
committed either way, and a cache entry expires on its own.
"""
from __future__ import annotations

import json
import logging
import os
import time
import urllib.error
import urllib.request
from typing import Iterable, Mapping

from . import signing
from .errors import ConfigError

URL_SETTING = "WPMSYNC_WORDPRESS_URL"
ROUTE = "/wp-json/wpmsync/v1/clean-cache"
CHUNK = 5000  # ids per call (the route accepts up to 10,000)
TIMEOUT = 5
log = logging.getLogger("wpmsync.cache")


def endpoint(env: Mapping[str, str] | None = None) -> str | None:
    """The route's URL, or None when cache cleaning is not configured."""
    base = (os.environ if env is None else env).get(URL_SETTING, "").strip().rstrip("/")
    if not base:
        return None
    if not base.startswith(("https://", "http://")):
        raise ConfigError(f"{URL_SETTING} must be the network's http(s) URL, got {base!r}")
    return base + ROUTE


def clean(user_ids: Iterable[int], blog_ids: Iterable[int], secret: str,
          env: Mapping[str, str] | None = None) -> int:
    """Ask WordPress to forget these users (and the user counts of these sites).
    Returns the number of calls that succeeded; 0 when not configured or nothing to clean."""
    url = endpoint(env)
    users, blogs = sorted(set(user_ids)), sorted(set(blog_ids))
    if url is None or not (users or blogs):
        return 0
    done = 0
    for start in range(0, max(len(users), 1), CHUNK):
        body = json.dumps({"user_ids": users[start:start + CHUNK], "blog_ids": blogs}).encode()
        ts = str(int(time.time()))
        request = urllib.request.Request(url, data=body, method="POST", headers={
            "Content-Type": "application/json", signing.TIMESTAMP_HEADER: ts,
            signing.SIGNATURE_HEADER: signing.sign(secret, ts, body)})
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
                response.read()
            done += 1
        except (urllib.error.URLError, OSError, ValueError) as exc:
            log.warning("WordPress cache cleaning failed", extra={"url": url, "error": str(exc),
                                                                  "users": len(users[start:start + CHUNK])})
    return done
