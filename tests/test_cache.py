"""wpmsync.cache: what the functions send to WordPress's clean-cache route (a local HTTP server
stands in for WordPress; the PHP side is tested against real WordPress in test_wordpress_plugin)."""
from __future__ import annotations

import http.server as http_server
import json
import threading
from types import SimpleNamespace
from typing import Any, Iterator

import pytest

from wpmsync import cache, signing
from wpmsync.secrets import reset_secrets

SECRET = "test-hook-secret-0123456789abcdef"


class _Route(http_server.BaseHTTPRequestHandler):
    """Records every call; answers with ``status``."""

    calls: list[tuple[str, dict, bytes]] = []
    status = 200

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Route.calls.append((self.path, dict(self.headers), body))
        self.send_response(_Route.status)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"users": 0, "blogs": 0, "roles": 0}')

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def route() -> Iterator[dict[str, str]]:
    """A local stand-in for WordPress; yields the env that points cache.clean at it."""
    server = http_server.ThreadingHTTPServer(("127.0.0.1", 0), _Route)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _Route.calls, _Route.status = [], 200
    try:
        yield {cache.URL_SETTING: f"http://127.0.0.1:{server.server_port}/"}
    finally:
        server.shutdown()
        server.server_close()


def _bodies() -> list[dict[str, list[int]]]:
    """The bodies received, each checked: route, JSON, signed with SECRET (Python verifier)."""
    out = []
    for path, headers, raw in _Route.calls:
        assert path == cache.ROUTE
        assert headers["Content-Type"] == "application/json"
        signing.verify(SECRET, headers[signing.TIMESTAMP_HEADER], headers[signing.SIGNATURE_HEADER], raw)
        out.append(json.loads(raw))
    return out


def test_clean_sends_roles_blog_ids_in_the_signed_body(route):
    assert cache.clean([7, 3, 7], [2], SECRET, env=route, roles_blog_ids=[5, 2, 5]) == 1
    assert _bodies() == [{"user_ids": [3, 7], "blog_ids": [2], "roles_blog_ids": [2, 5]}]
    # The signature covers roles_blog_ids: the same body with another list does not verify.
    _, headers, raw = _Route.calls[0]
    forged = raw.replace(b'"roles_blog_ids": [2, 5]', b'"roles_blog_ids": [2, 6]')
    assert forged != raw
    with pytest.raises(signing.Unauthorized):
        signing.verify(SECRET, headers[signing.TIMESTAMP_HEADER], headers[signing.SIGNATURE_HEADER], forged)


def test_roles_alone_are_worth_a_call_and_nothing_is_not(route):
    assert cache.clean([], [], SECRET, env=route, roles_blog_ids={4}) == 1
    assert _bodies() == [{"user_ids": [], "blog_ids": [], "roles_blog_ids": [4]}]
    _Route.calls = []
    assert cache.clean([], [], SECRET, env=route) == 0
    assert cache.clean([1], [2], SECRET, env={}, roles_blog_ids=[3]) == 0  # not configured
    assert _Route.calls == []


def test_chunks_hold_at_most_chunk_ids_in_all(route, monkeypatch):
    monkeypatch.setattr(cache, "CHUNK", 3)
    assert cache.clean([1, 2, 3, 4], [10, 11], SECRET, env=route, roles_blog_ids=[11, 12, 13]) == 3
    bodies = _bodies()
    assert all(set(b) == set(cache.FIELDS) for b in bodies)
    assert all(sum(len(v) for v in b.values()) <= 3 for b in bodies)
    merged = {f: [i for b in bodies for i in b[f]] for f in cache.FIELDS}
    assert merged == {"user_ids": [1, 2, 3, 4], "blog_ids": [10, 11], "roles_blog_ids": [11, 12, 13]}


def test_ids_are_validated_and_bad_ones_dropped(route, caplog):
    assert cache.clean([1, "2", 0, -1, True, None], [], SECRET, env=route, roles_blog_ids=["x", 3, 1.5]) == 1
    assert _bodies() == [{"user_ids": [1, 2], "blog_ids": [], "roles_blog_ids": [3]}]
    assert "ids dropped" in caplog.text


def test_a_failed_call_is_logged_not_raised(route, caplog):
    _Route.status = 500
    assert cache.clean([1], [], SECRET, env=route, roles_blog_ids=[2]) == 0
    assert len(_Route.calls) == 1 and "cache cleaning failed" in caplog.text


@pytest.mark.parametrize("has_roles", [True, False])
def test_notify_wordpress_passes_touched_roles(route, monkeypatch, has_roles):
    from blueprints import common

    monkeypatch.setenv(cache.URL_SETTING, route[cache.URL_SETTING])
    monkeypatch.setenv("WPMSYNC_HOOK_SECRET", SECRET)
    reset_secrets()
    try:
        outcome = SimpleNamespace(touched_users={8}, touched_sites={2, 4})
        if has_roles:  # Outcome.touched_roles (role replication); an older Outcome has none
            outcome.touched_roles = {4}
        common.notify_wordpress(outcome)
        roles_only = SimpleNamespace(touched_users=set(), touched_sites=set(), touched_roles={6})
        common.notify_wordpress(roles_only)
    finally:
        reset_secrets()
    assert _bodies() == [{"user_ids": [8], "blog_ids": [2, 4], "roles_blog_ids": [4] if has_roles else []},
                         {"user_ids": [], "blog_ids": [], "roles_blog_ids": [6]}]
