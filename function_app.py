"""Azure Functions entry point (Python v2 programming model).

Thin on purpose: each blueprint parses, authenticates, calls ``wpmsync`` and answers.
- ``blueprints/hooks.py``: signed WordPress hook callbacks (``POST /api/hooks``)
- ``blueprints/actions.py``: manual actions, job status, settings, health
- ``blueprints/batches.py``: the batch queue and its poison queue
- ``blueprints/reconcile.py``: the timer that repairs drift
"""
from __future__ import annotations

import azure.functions as func

from blueprints import actions, batches, hooks, reconcile

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
for blueprint in (hooks.bp, actions.bp, batches.bp, reconcile.bp):
    app.register_functions(blueprint)
