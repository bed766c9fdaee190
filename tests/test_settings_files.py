"""Every setting the code reads is in local.settings.sample.json, and nothing else is."""
from __future__ import annotations

import json
import re

from conftest import ROOT

HOST_SETTINGS = {"FUNCTIONS_WORKER_RUNTIME"}  # read by the Functions host, not by our code


def settings_read_by_code() -> set[str]:
    names: set[str] = set()
    for path in [*ROOT.glob("wpmsync/*.py"), *ROOT.glob("blueprints/*.py"), ROOT / "function_app.py"]:
        text = path.read_text()
        names |= set(re.findall(r'["%](WPMSYNC_[A-Z_]+)["%]', text))
        names |= set(re.findall(r'"(AzureWebJobsStorage)"', text))
    return names


def test_sample_settings_are_exactly_what_the_code_reads():
    sample = json.loads((ROOT / "local.settings.sample.json").read_text())["Values"]
    read = settings_read_by_code()
    assert "WPMSYNC_RECONCILE_SCHEDULE" in read and "WPMSYNC_DB_HOST" in read
    assert set(sample) - HOST_SETTINGS == read


def test_host_json_queue_settings_match_the_code():
    host = json.loads((ROOT / "host.json").read_text())
    queues = host["extensions"]["queues"]
    assert queues["messageEncoding"] == "none"  # the app sends plain JSON text
    assert 1 <= queues["maxDequeueCount"] <= 10
