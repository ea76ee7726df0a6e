"""The router's per-client-IP rate limit, on a second router with a tiny limit over the same subgraphs.

That router runs two gateway workers (FORK=2) and counts in the platform's Redis, so the limit holds for the
client as a whole, whichever worker each of its connections lands on."""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator

import httpx
import pytest

from nexuscart.infra import free_port, node_binary, wait_for_port
from nexuscart.launcher import REPO_ROOT, ROUTER_DIR

LIMIT = 5


def wait_until_ready(url: str, proc: subprocess.Popen, timeout: float = 60) -> None:
    """The supergraph is loaded (the port opens before that)."""
    deadline = time.monotonic() + timeout
    with httpx.Client() as http:
        while http.get(url).status_code != 200:
            assert proc.poll() is None and time.monotonic() < deadline, "the router never became ready"
            time.sleep(0.05)  # polling interval of the readiness probe, not a stand-in for it


@contextlib.contextmanager
def private_router(settings: dict[str, str]) -> Iterator[str]:
    """A second gateway over the supergraph, with `settings` on top of this process's environment (the
    gateway CLI's own PORT/HOST/FORK removed); yields its /graphql URL once the supergraph is loaded."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("PORT", "HOST", "FORK")}
    env.update({"ROUTER_PORT": str(port), "ROUTER_HOST": "127.0.0.1", **settings})
    # Its own process group: in fork mode the gateway's workers must go with it (see nexuscart/launcher.py).
    proc = subprocess.Popen([node_binary(), str(ROUTER_DIR / "node_modules/@graphql-hive/gateway/dist/bin.js"),
                             "supergraph", str(REPO_ROOT / "schema/supergraph.graphql")], cwd=ROUTER_DIR, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_for_port("127.0.0.1", port, 60, proc)
        wait_until_ready(f"http://127.0.0.1:{port}/readiness", proc)
        yield f"http://127.0.0.1:{port}/graphql"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:  # a forked gateway may ignore SIGTERM once it has served (2.15.1)
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.fixture(scope="module")
def strict_router(platform) -> Iterator[str]:
    with private_router({"ROUTER_RATE_LIMIT_PER_MINUTE": str(LIMIT), "FORK": "2",
                         "REDIS_URL": platform.infra.redis_url,
                         **{f"NEXUSCART_{name.upper()}_URL": platform.subgraph_url(name)
                            for name in platform.config.subgraph_ports}}) as url:
        yield url


async def test_request_over_the_limit_is_rate_limited_across_workers(strict_router: str) -> None:
    answers = []
    for _ in range(LIMIT + 2):
        # A new connection each time: the workers share the listening socket, so these spread over both.
        async with httpx.AsyncClient() as http:
            answers.append(await http.post(strict_router, json={"query": "{ categories { id } }"}))
    assert [a.status_code for a in answers] == [200] * LIMIT + [429, 429], [a.text for a in answers]
    for limited in answers[LIMIT:]:
        [error] = limited.json()["errors"]
        assert error["extensions"]["code"] == "RATE_LIMITED"
        assert error["message"] == f"Rate limit exceeded: at most {LIMIT} requests per minute per client."
        assert 1 <= int(limited.headers["retry-after"]) <= 60
    async with httpx.AsyncClient() as http:
        health = await http.get(strict_router.replace("/graphql", "/health"))
    assert health.status_code == 200  # health checks are never limited
