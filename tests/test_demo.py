"""The README's demo command keeps working: a network built by WordPress, synced through the
Functions app's handlers and the queue on Azurite."""
from __future__ import annotations

import json
import os
import subprocess
import sys

from conftest import DB_PREFIX, LANE_DB_ENV, ROOT
from wpfixture import drop_database


def test_demo_syncs_every_site_through_the_functions():
    db = f"{DB_PREFIX}demo"
    # The demo's own settings only, on the lane's server (host, port, TLS).
    env = {k: v for k, v in os.environ.items() if not k.startswith("WPMSYNC_") and k != "AzureWebJobsStorage"}
    env.update(LANE_DB_ENV)
    try:
        done = subprocess.run([sys.executable, "-m", "wpmsync", "demo", "--users", "5", "--sites", "2",
                               "--db", db, "--json"], cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=300)
        assert done.returncode == 0, done.stderr
        report = json.loads(done.stdout)
        assert report["job"]["state"] == "done" and report["job"]["memberships_added"] == 14  # 5 users x 3 sites - 1
        assert report["new_user"]["added"] == 2 and report["role"]["roles_set"] == 3
        preview = report["undo_preview"]  # 14 memberships = 28 rows, plus primary_blog / source_domain
        assert preview["dry_run"] and preview["conflicts"] == 0 and preview["restored"] >= 28
        assert set(report["after"].values()) == {7}  # admin + 5 users + newcomer on every site
        assert report["wordpress_sees"] == 7 * 4
    finally:
        drop_database(db)
