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
                          "run_batch", "poisoned_batch", "reconcile_drift", "reconcile_full"}
    from wpfixture.local_host import LocalFunctions
    assert set(LocalFunctions("secret").functions) == set(names)  # the local runner serves them all
    bindings = {n: [b.type for b in f.get_bindings()] for n, f in names.items()}
    assert "queueTrigger" in bindings["run_batch"] and "timerTrigger" in bindings["reconcile_drift"]
    assert "timerTrigger" in bindings["reconcile_full"]


def test_health_reports_the_network_and_no_secret(net, monkeypatch):
    monkeypatch.setenv("WPMSYNC_DB_NAME", net.db)
    monkeypatch.setenv("WPMSYNC_DB_PASSWORD", "")
    resp = _call("health", func.HttpRequest("GET", "/api/health", body=b""))
    body = json.loads(resp.get_body())
    assert resp.status_code == 200 and body["status"] == "ok"
    assert body["sites"] == 6 and body["settings"] == {"new_user": False, "new_site": False, "role_sync": False}


def test_health_says_what_is_wrong_without_any_connection_detail(monkeypatch, caplog):
    """Anonymous: the answer names the kind of fault and a correlation id; the user, host, port
    and database name are in the log under that id, never in the answer (issue 11)."""
    monkeypatch.setenv("WPMSYNC_DB_NAME", "wpmsync_no_such_db")
    monkeypatch.setenv("WPMSYNC_DB_PASSWORD", "s3cret-value")
    monkeypatch.setenv("WPMSYNC_DB_PORT", "3306")
    resp = _call("health", func.HttpRequest("GET", "/api/health", body=b""))
    text = resp.get_body().decode()
    body = json.loads(text)
    assert resp.status_code == 503 and body["error"].startswith("the WordPress database cannot be reached")
    for detail in ("wpmsync_no_such_db", "s3cret-value", "root", "127.0.0.1", "3306", "1045"):
        assert detail not in text.replace(body["correlation_id"], ""), detail
    logged = [r for r in caplog.records if getattr(r, "correlation_id", None) == body["correlation_id"]]
    assert logged and "wpmsync_no_such_db" in logged[0].getMessage()
