"""The router's per-client-IP rate limit, on a second router with a tiny limit over the same subgraphs."""
from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator

import httpx
import pytest

from nexuscart.infra import free_port, node_binary, wait_for_port
from nexuscart.launcher import REPO_ROOT, ROUTER_DIR


@pytest.fixture(scope="module")
def strict_router(platform) -> Iterator[str]:  # noqa: ANN001
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("PORT", "HOST", "FORK")}
    env.update({"ROUTER_PORT": str(port), "ROUTER_HOST": "127.0.0.1", "ROUTER_RATE_LIMIT_PER_MINUTE": "5",
                **{f"NEXUSCART_{name.upper()}_URL": platform.subgraph_url(name)
                   for name in platform.config.subgraph_ports}})
    proc = subprocess.Popen([node_binary(), str(ROUTER_DIR / "node_modules/@graphql-hive/gateway/dist/bin.js"),
                             "supergraph", str(REPO_ROOT / "schema/supergraph.graphql")], cwd=ROUTER_DIR, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port("127.0.0.1", port, 30, proc)
        yield f"http://127.0.0.1:{port}/graphql"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


async def test_sixth_request_in_a_minute_is_rate_limited(strict_router: str) -> None:
    async with httpx.AsyncClient() as http:
        answers = [await http.post(strict_router, json={"query": "{ categories { id } }"}) for _ in range(6)]
        assert [a.status_code for a in answers[:5]] == [200] * 5
        assert answers[5].status_code == 429
        assert answers[5].json()["errors"][0]["extensions"]["code"] == "RATE_LIMITED"
        health = await http.get(strict_router.replace("/graphql", "/health"))
        assert health.status_code == 200  # health checks are never limited
