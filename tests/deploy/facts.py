"""What the deployment files are checked against: the registry, the settings, the CLI and the router's config.

Read from the code, never restated, so a new subgraph, setting or router variable reaches these checks by itself.
"""
from __future__ import annotations

import contextlib
import io
import re
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from kernel.settings import Settings
from nexuscart import cli
from nexuscart.registry import SUBGRAPHS

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
K8S = DEPLOY / "k8s"

# Standard OpenTelemetry SDK variables (the SDK reads them, not kernel/settings.py): the OTLP collector's address
# and the service name a process reports its spans under.
OTEL_VARIABLES = frozenset({"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_SERVICE_NAME"})


def registry_ports() -> dict[str, int]:
    return {s.name: s.port for s in SUBGRAPHS}


def setting_variables() -> frozenset[str]:
    """Environment variables a Python process reads: each setting's name upper-cased (case-insensitive)."""
    return frozenset(name.upper() for name in Settings.model_fields)


def peer_url_variables() -> dict[str, str]:
    """Settings that address a peer subgraph over internal HTTP (`<NAME>_SERVICE_URL`; the defaults are loopback
    addresses, wrong in any container), with the URL each must have: http://<subgraph>:<registry port>."""
    ports = registry_ports()
    wanted = {}
    for variable in setting_variables():
        match = re.fullmatch(r"([A-Z0-9_]+)_SERVICE_URL", variable)
        if match:
            subgraph = match.group(1).lower()
            wanted[variable] = f"http://{subgraph}:{ports[subgraph]}"
    return wanted


def unknown_python_variables(names: set[str] | list[str]) -> list[str]:
    allowed = setting_variables() | OTEL_VARIABLES
    return sorted(n for n in names if n not in allowed)


@cache
def router_variables() -> frozenset[str]:
    """Every variable router/gateway.config.mjs reads (`env.X`, `envInt('X', ..)`, `envBool('X', ..)`), plus the
    per-subgraph URL overrides it derives from the supergraph (NEXUSCART_<NAME>_URL)."""
    source = (REPO / "router" / "gateway.config.mjs").read_text()
    names = set(re.findall(r"\benv\.([A-Z][A-Z0-9_]*)", source))
    names |= set(re.findall(r"\benv(?:Int|Bool)\(\s*'([A-Z][A-Z0-9_]*)'", source))
    return frozenset(names | {router_url_variable(s.name) for s in SUBGRAPHS})


def router_url_variable(subgraph: str) -> str:
    return "NEXUSCART_" + re.sub(r"[^A-Za-z0-9]", "_", subgraph).upper() + "_URL"


def router_readiness_path() -> str:
    """The gateway's readiness endpoint: `readinessCheckEndpoint` in its config, else Hive Gateway's default."""
    source = (REPO / "router" / "gateway.config.mjs").read_text()
    match = re.search(r"readinessCheckEndpoint:\s*'([^']+)'", source)
    return match.group(1) if match else "/readiness"


def router_liveness_path() -> str:
    source = (REPO / "router" / "gateway.config.mjs").read_text()
    match = re.search(r"healthCheckEndpoint:\s*'([^']+)'", source)
    return match.group(1) if match else "/healthcheck"


def cli_accepts(argv: list[str]) -> bool:
    """True when `nexuscart <argv>` names a real subcommand (argparse exits 0 on --help, 2 on an unknown one)."""
    assert argv[0] == "nexuscart", argv
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        try:
            cli.main([*argv[1:2], "--help"])
        except SystemExit as exit_:
            return exit_.code == 0
    return False


def serve_target(command: list[str]) -> tuple[str, int] | None:
    """(subgraph, port) of a `nexuscart serve <name> ... --port <port>` command, else None."""
    if command[:2] != ["nexuscart", "serve"]:
        return None
    return command[2], int(command[command.index("--port") + 1])


def env_file_variables(path: Path) -> set[str]:
    names = set()
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            names.add(line.split("=", 1)[0].strip())
    return names


def load_yaml_documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
