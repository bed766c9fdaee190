"""Rotating the hook secret without a gap (README, "Rotating the hook secret"), both directions,
each side through its real code:

- WordPress -> functions: the mu-plugin, configured by its wp-config constants, signs a hook
  (``Wpmsync_Client::send_hook`` -> ``Wpmsync_Config::hook_secrets`` -> ``Wpmsync_Signer``, in
  real WordPress); the Functions app's ``POST /api/hooks`` (real ``HttpRequest``, MariaDB,
  Azurite) verifies it with the secrets its settings give (``wpmsync.secrets``).
- functions -> WordPress: ``wpmsync.cache.clean`` signs a clean-cache call with the secrets its
  settings give; WordPress's ``/wpmsync/v1/clean-cache`` route verifies it with its constants.

The documented steps: (1) functions previous=old, current=new; (2) WordPress the same; (3) the
functions drop the previous secret; (4) WordPress drops it. At every step, and while one side is
still one step behind (an instance whose Key Vault cache has not expired, a web server not yet
given the new wp-config, a message signed just before the step), every correctly signed message
is accepted. The pairing the order of the steps rules out is refused, which shows the walk
would notice a gap.
"""
from __future__ import annotations

from itertools import pairwise
from typing import Any

import pytest

from blueprints import hooks
from test_cache import _Route, route  # noqa: F401  (fixture: a stand-in clean-cache endpoint)
from test_functions import answer, app, call, http  # noqa: F401  (fixture: the app on MariaDB + Azurite)
from test_wordpress_plugin import ENDPOINT, KEY, Plugged
from wpmsync import cache
from wpmsync.secrets import get_secrets, reset_secrets

OLD = "old-hook-secret-0123456789abcdef"
NEW = "new-hook-secret-fedcba9876543210"

# (what each side holds) -> its settings: the functions' environment, WordPress's constants
FUNCTIONS = {
    "old": {"WPMSYNC_HOOK_SECRET": OLD, "WPMSYNC_HOOK_SECRET_PREVIOUS": ""},
    "new+old": {"WPMSYNC_HOOK_SECRET": NEW, "WPMSYNC_HOOK_SECRET_PREVIOUS": OLD},
    "new": {"WPMSYNC_HOOK_SECRET": NEW, "WPMSYNC_HOOK_SECRET_PREVIOUS": ""},
}
WORDPRESS: dict[str, dict[str, str]] = {
    "old": {"WPMSYNC_HOOK_SECRET": OLD},
    "new+old": {"WPMSYNC_HOOK_SECRET": NEW, "WPMSYNC_HOOK_SECRET_PREVIOUS": OLD},
    "new": {"WPMSYNC_HOOK_SECRET": NEW},
}
# (step, functions, WordPress) after each step of the documented rotation
STEPS = [
    ("before", "old", "old"),
    ("1. functions: previous=old, current=new", "new+old", "old"),
    ("2. WordPress: previous=old, current=new", "new+old", "new+old"),
    ("3. functions: previous removed", "new", "new+old"),
    ("4. WordPress: previous removed", "new", "new"),
]


def must_accept() -> set[tuple[str, str, str]]:
    """(direction, sender's state, receiver's state) for every message the rotation can produce.
    Only one side changes per step, so a side still one step behind (a functions instance whose
    Key Vault cache has not expired, a web server without the new wp-config, a message signed
    just before the step) is paired with the other side exactly as after the previous step: the
    states after each step, in both directions, are all the pairings there are."""
    return {pair for _, f, w in STEPS
            for pair in (("wordpress->functions", w, f), ("functions->wordpress", f, w))}


# Dropping the functions' previous secret while WordPress still signs with the old one only
# (step 3 before step 2 is done everywhere): the gap the order of the steps exists to avoid.
OUT_OF_ORDER = {("wordpress->functions", "old", "new"), ("functions->wordpress", "new", "old")}


def use_functions_settings(monkeypatch: pytest.MonkeyPatch, state: str) -> None:
    for name, value in FUNCTIONS[state].items():
        monkeypatch.setenv(name, value)
    reset_secrets()


def wordpress_constants(state: str) -> dict[str, str]:
    return {"WPMSYNC_ENDPOINT": ENDPOINT, "WPMSYNC_FUNCTION_KEY": KEY, **WORDPRESS[state]}


SIGN_HOOK_AND_CLEAN = """
    $plugin = Wpmsync_Plugin::instance();
    $plugin->client->send_hook('user_removed', ['user_id' => $args['user_ed'], 'blog_id' => $args['site_editors']]);
    $statuses = [];
    foreach ($args['calls'] as $state => $c) {
        $req = new WP_REST_Request('POST', '/wpmsync/v1/clean-cache');
        $req->set_body($c['body']);
        $req->set_header('Content-Type', 'application/json');
        foreach ($c['headers'] as $k => $v) { $req->set_header($k, $v); }
        $statuses[$state] = rest_do_request($req)->get_status();
    }
    return $statuses;"""


def functions_sign_clean_cache(monkeypatch: pytest.MonkeyPatch, env: dict[str, str],
                               ids: dict[str, int]) -> dict[str, dict[str, Any]]:
    """For each functions state: the clean-cache call ``cache.clean`` makes with the secrets its
    settings give."""
    calls = {}
    for state in FUNCTIONS:
        use_functions_settings(monkeypatch, state)
        _Route.calls = []
        assert cache.clean([ids["user1"]], [ids["site_plain"]], get_secrets().hook_secrets(), env=env) == 1
        (_, headers, body), = _Route.calls
        calls[state] = {"body": body.decode(), "headers": {k: v for k, v in headers.items()
                                                           if k.lower().startswith("x-wpmsync-")}}
    return calls


def test_hook_secret_rotation_has_no_gap_in_either_direction(app, route, tmp_path, monkeypatch):  # noqa: F811
    wp = Plugged(app, tmp_path)
    clean_calls = functions_sign_clean_cache(monkeypatch, route, app.ids)
    outcome: dict[tuple[str, str, str], bool] = {}
    for w_state in WORDPRESS:
        wp.configure(constants=wordpress_constants(w_state))
        statuses = wp.run(SIGN_HOOK_AND_CLEAN, calls=clean_calls)[0]
        for f_state, status in statuses.items():
            assert status in (200, 401), status
            outcome[("functions->wordpress", f_state, w_state)] = status == 200
        (hook,) = wp.requests()
        for f_state in FUNCTIONS:
            use_functions_settings(monkeypatch, f_state)
            headers = {k: v for k, v in hook["headers"].items() if k.lower().startswith("x-wpmsync-")}
            status, body = answer(call(hooks.hook, http("POST", "hooks", hook["body"].encode(), headers=headers)))
            assert status in (200, 401), body
            outcome[("wordpress->functions", w_state, f_state)] = status == 200

    headers_sent = {s: c["headers"]["X-Wpmsync-Signature"].count("sha256=") for s, c in clean_calls.items()}
    assert headers_sent == {"old": 1, "new+old": 2, "new": 1}  # both secrets only mid-rotation
    refused = sorted(case for case in must_accept() if not outcome[case])
    assert not refused, f"refused during the rotation: {refused}"
    assert not any(outcome[case] for case in OUT_OF_ORDER), "the walk must be able to see a gap"
    # The whole matrix: a message is accepted exactly when the sender's and the receiver's
    # secrets share one, in both languages.
    for (_, sender, receiver), ok in outcome.items():
        assert ok is bool(set(sender.split("+")) & set(receiver.split("+"))), (sender, receiver)


def test_steps_describe_a_rotation_from_old_to_new():
    """The walk above is the documented one: one side changes per step, functions first."""
    assert STEPS[0][1:] == ("old", "old") and STEPS[-1][1:] == ("new", "new")
    for (_, f0, w0), (_, f1, w1) in pairwise(STEPS):
        assert (f0 != f1) != (w0 != w1)
    assert [s[1] for s in STEPS[1:3]] == ["new+old", "new+old"]  # the functions lead
    assert len(must_accept()) == 10 and not must_accept() & OUT_OF_ORDER
