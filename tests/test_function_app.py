"""The Functions app's user code, called with real ``func.HttpRequest`` objects."""
from __future__ import annotations

import json

import azure.functions as func

import function_app
from blueprints import actions


def _call(name: str, req: func.HttpRequest) -> func.HttpResponse:
    return getattr(actions, name).build().get_user_function()(req)


def test_the_app_indexes_every_function():
    """What the host would index: the functions and their triggers."""
    names = {f.get_function_name(): f for f in function_app.app.get_functions()}
    assert set(names) == {"hook", "sync", "site_sync", "plan", "settings", "network_options", "unsync", "users_sync",
                          "job_status", "undo", "journal", "health",
                          "run_batch", "poisoned_batch", "reconcile_drift"}
    from wpfixture.local_host import LocalFunctions
    assert set(LocalFunctions("secret").functions) == set(names)  # the local runner serves them all
    bindings = {n: [b.type for b in f.get_bindings()] for n, f in names.items()}
    assert "queueTrigger" in bindings["run_batch"] and "timerTrigger" in bindings["reconcile_drift"]


def test_health_reports_the_network_and_no_secret(net, monkeypatch):
    monkeypatch.setenv("WPMSYNC_DB_NAME", net.db)
    monkeypatch.setenv("WPMSYNC_DB_PASSWORD", "")
    resp = _call("health", func.HttpRequest("GET", "/api/health", body=b""))
    body = json.loads(resp.get_body())
    assert resp.status_code == 200 and body["status"] == "ok"
    assert body["sites"] == 6 and body["settings"] == {"new_user": False, "new_site": False, "role_sync": False}


def test_health_says_what_is_wrong_without_the_password(monkeypatch):
    monkeypatch.setenv("WPMSYNC_DB_NAME", "wpmsync_no_such_db")
    monkeypatch.setenv("WPMSYNC_DB_PASSWORD", "s3cret-value")
    resp = _call("health", func.HttpRequest("GET", "/api/health", body=b""))
    text = resp.get_body().decode()
    assert resp.status_code == 503 and "wpmsync_no_such_db" in text and "s3cret-value" not in text
