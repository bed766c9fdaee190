"""Telling WordPress to clean its object cache after we wrote memberships behind its back.

The functions write usermeta with SQL, and role replication (network option ``missing_role`` =
``copy``) rewrites a site's ``{prefix}{N}_user_roles`` option with SQL, so a persistent object
cache (Redis is common on Azure) would keep serving old memberships and, because ``user_roles`` is
autoloaded, the site's old roles from its cached ``alloptions``. When ``WPMSYNC_WORDPRESS_URL`` is
set, after each batch or inline hook the functions POST the affected ids to the mu-plugin's REST
route ``/wp-json/wpmsync/v1/clean-cache``, signed like the hooks (same secret, same headers)::

    {"user_ids": [...], "blog_ids": [...], "roles_blog_ids": [...]}

WordPress runs its own ``clean_user_cache`` for ``user_ids``, forgets the user counts of
``blog_ids``, and for ``roles_blog_ids`` (the sites whose roles option was rewritten) deletes what
``update_option()`` would refresh: the site's ``alloptions``, its ``user_roles`` option key and
that key in ``notoptions``. Each call carries at most ``CHUNK`` ids in all (the route refuses more
than 10,000), every field present (possibly empty); ids are positive integers, sorted and
deduplicated per field (anything else is dropped with a warning). A failure is logged,
never raised: the rows are committed either way, and a cache entry expires on its own.
"""
from __future__ import annotations

import json
import logging
import os
import time
import urllib.error
import urllib.request
from typing import Iterable, Mapping, Sequence

from . import signing
from .errors import ConfigError

URL_SETTING = "WPMSYNC_WORDPRESS_URL"
ROUTE = "/wp-json/wpmsync/v1/clean-cache"
FIELDS = ("user_ids", "blog_ids", "roles_blog_ids")
CHUNK = 5000  # ids per call, all fields together (the route accepts up to 10,000)
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


def _ids(field: str, values: Iterable[int]) -> list[int]:
    """Sorted distinct positive integers, as the route accepts them. Anything else (a bug
    upstream) is dropped with a warning rather than raised: the rows are committed already, and
    one bad id must not make the route refuse the whole call."""
    out, bad = set(), []
    for value in values:
        try:
            number = int(value) if not isinstance(value, (bool, float)) else 0
        except (TypeError, ValueError):
            number = 0
        if number > 0:
            out.add(number)
        else:
            bad.append(repr(value))
    if bad:
        log.warning("WordPress cache cleaning: ids dropped", extra={"field": field, "dropped": bad[:10]})
    return sorted(out)


def bodies(user_ids: Iterable[int], blog_ids: Iterable[int],
           roles_blog_ids: Iterable[int] = ()) -> list[dict[str, list[int]]]:
    """The request bodies: every field in each, at most ``CHUNK`` ids per body in all."""
    lists = dict(zip(FIELDS, (_ids(f, v) for f, v in zip(FIELDS, (user_ids, blog_ids, roles_blog_ids)))))
    items = [(field, i) for field in FIELDS for i in lists[field]]
    out = []
    for start in range(0, len(items), CHUNK):
        body: dict[str, list[int]] = {field: [] for field in FIELDS}
        for field, i in items[start:start + CHUNK]:
            body[field].append(i)
        out.append(body)
    return out


def clean(user_ids: Iterable[int], blog_ids: Iterable[int], secret: str | Sequence[str],
          env: Mapping[str, str] | None = None, roles_blog_ids: Iterable[int] = ()) -> int:
    """Ask WordPress to forget these users (and the user counts of these sites, and the roles of
    the sites in ``roles_blog_ids``). Returns the number of calls that succeeded; 0 when not
    configured or nothing to clean. ``secret``: the hook secret, or the current and previous
    ones during a rotation (each call is then signed with both, see ``wpmsync.signing``)."""
    url = endpoint(env)
    chunks = bodies(user_ids, blog_ids, roles_blog_ids)
    if url is None or not chunks:
        return 0
    done = 0
    for chunk in chunks:
        body = json.dumps(chunk).encode()
        ts = str(int(time.time()))
        request = urllib.request.Request(url, data=body, method="POST", headers={
            "Content-Type": "application/json", signing.TIMESTAMP_HEADER: ts,
            signing.SIGNATURE_HEADER: signing.signature_header(secret, ts, body)})
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
                response.read()
            done += 1
        except (urllib.error.URLError, OSError, ValueError) as exc:
            log.warning("WordPress cache cleaning failed", extra={
                "url": url, "error": str(exc), "users": len(chunk["user_ids"]),
                "blogs": len(chunk["blog_ids"]), "roles_blogs": len(chunk["roles_blog_ids"])})
    return done
