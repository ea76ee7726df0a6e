"""The paths the healthchecks and probes call exist in the processes they probe."""
from __future__ import annotations

import ast

from starlette.routing import Route

from tests.deploy.facts import REPO
from workers.health import health_app

PROBE_PATHS = {"/health", "/ready"}


def test_every_subgraph_app_serves_the_probe_paths():
    """kernel/app.py's create_app builds every subgraph's routes; read them from its source rather than building an
    app (which would configure the process's logging and need a database address)."""
    tree = ast.parse((REPO / "kernel/app.py").read_text())
    paths = {call.args[0].value for call in ast.walk(tree)
             if isinstance(call, ast.Call) and getattr(call.func, "id", None) == "Route"
             and call.args and isinstance(call.args[0], ast.Constant)}
    assert paths >= PROBE_PATHS


def test_worker_and_relay_health_servers_serve_the_probe_paths():
    app = health_app("probe", lambda: (True, {}))
    assert {r.path for r in app.routes if isinstance(r, Route)} >= PROBE_PATHS
