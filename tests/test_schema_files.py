"""Committed schema/ files must match the code, and the supergraph must compose; compose file sanity."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from nexuscart.cli import subgraph_sdl
from nexuscart.registry import SUBGRAPHS

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("name", [s.name for s in SUBGRAPHS])
async def test_committed_subgraph_sdl_matches_the_code(name: str) -> None:
    committed = (ROOT / "schema" / f"{name}.graphql").read_text()
    assert committed == await subgraph_sdl(name), f"schema/{name}.graphql is stale: run `make schema`"


def test_supergraph_composes_and_matches_the_committed_one() -> None:
    result = subprocess.run([shutil.which("node") or "node", "compose.mjs", "--check"], cwd=ROOT / "router",
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_supergraph_yaml_lists_every_subgraph() -> None:
    config = yaml.safe_load((ROOT / "supergraph.yaml").read_text())
    assert set(config["subgraphs"]) == {s.name for s in SUBGRAPHS}
    for name, entry in config["subgraphs"].items():
        assert entry["schema"]["file"] == f"./schema/{name}.graphql"
