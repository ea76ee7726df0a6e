"""Boots the whole platform as child processes: subgraphs, the outbox relay, the worker and the router.

Used by `make run` (persistent data dir, fixed ports) and by the end-to-end tests (temporary data
dir, free ports). Ctrl-C or `stop()` ends every child.
"""
from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from kernel.auth import ensure_keypair
from kernel.migrate import migrate_all
from nexuscart.infra import Infrastructure, free_port, node_binary, run_blocking, start_infrastructure
from nexuscart.registry import SUBGRAPHS, migration_plan

log = logging.getLogger("nexuscart.launcher")

REPO_ROOT = Path(__file__).resolve().parent.parent
_GATEWAY_CLI_ENV = ("PORT", "HOST", "CONFIG_PATH", "POLLING", "FORK")
_GRACE_SECONDS = 10.0
_ROUTER_GRACE_SECONDS = 3.0


def _signal_group(proc: subprocess.Popen, sig: signal.Signals) -> None:
    """Each child leads its own session (start_new_session), so its pid is its process group id."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
ROUTER_DIR = REPO_ROOT / "router"


@dataclasses.dataclass
class PlatformConfig:
    data_dir: Path
    router_port: int = 4000
    subgraph_ports: dict[str, int] = dataclasses.field(default_factory=lambda: {s.name: s.port for s in SUBGRAPHS})
    seed: bool = True
    start_router: bool = True
    extra_env: dict[str, str] = dataclasses.field(default_factory=dict)
    quiet: bool = False

    @classmethod
    def ephemeral(cls, data_dir: Path, **kwargs: Any) -> PlatformConfig:
        """Free ports everywhere: for tests, next to a running `make run`."""
        return cls(data_dir=data_dir, router_port=free_port(),
                   subgraph_ports={s.name: free_port() for s in SUBGRAPHS}, **kwargs)


class Platform:
    def __init__(self, config: PlatformConfig) -> None:
        self.config = config
        self.infra: Infrastructure | None = None
        self.children: dict[str, subprocess.Popen] = {}
        self.env: dict[str, str] = {}
        self.relay_health_url: str | None = None
        self.worker_health_urls: dict[str, str] = {}  # "worker-1" -> its /health
        self._spawn_args: dict[str, tuple[list[str], Path, dict[str, str] | None, tuple[str, ...]]] = {}

    @property
    def router_url(self) -> str:
        return f"http://127.0.0.1:{self.config.router_port}/graphql"

    def subgraph_url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.config.subgraph_ports[name]}/graphql"

    def start(self) -> Platform:
        cfg = self.config
        try:
            self.infra = start_infrastructure(
                cfg.data_dir, database_url=os.environ.get("DATABASE_URL"), redis_url=os.environ.get("REDIS_URL"),
                kafka_bootstrap_servers=os.environ.get("KAFKA_BOOTSTRAP_SERVERS"))
            private_key, public_key = ensure_keypair(cfg.data_dir / "keys")
            self.env = {**os.environ, "DATABASE_URL": self.infra.database_url, "REDIS_URL": self.infra.redis_url,
                        "KAFKA_BOOTSTRAP_SERVERS": self.infra.kafka_bootstrap_servers,
                        "JWT_PRIVATE_KEY_FILE": str(private_key), "JWT_PUBLIC_KEY_FILE": str(public_key),
                        # Internal endpoints: orders reads carts, addresses and coupons; promotions creates
                        # flash-sale orders.
                        "CART_SERVICE_URL": f"http://127.0.0.1:{cfg.subgraph_ports['cart']}",
                        "USERS_SERVICE_URL": f"http://127.0.0.1:{cfg.subgraph_ports['users']}",
                        "CATALOG_SERVICE_URL": f"http://127.0.0.1:{cfg.subgraph_ports['catalog']}",
                        "ORDERS_SERVICE_URL": f"http://127.0.0.1:{cfg.subgraph_ports['orders']}",
                        "PROMOTIONS_SERVICE_URL": f"http://127.0.0.1:{cfg.subgraph_ports['promotions']}",
                        **cfg.extra_env}
            run_blocking(migrate_all(self.infra.database_url, migration_plan()))
            if cfg.seed:
                self._run_to_completion("seed", [sys.executable, "-m", "nexuscart.cli", "seed"])
            for subgraph in SUBGRAPHS:
                self._spawn(subgraph.name, [sys.executable, "-m", "nexuscart.cli", "serve", subgraph.name,
                                            "--port", str(cfg.subgraph_ports[subgraph.name])])
            relay_port = free_port()
            self._spawn("relay", [sys.executable, "-m", "nexuscart.cli", "relay"],
                        extra_env={"RELAY_HEALTH_PORT": str(relay_port)})
            # Saga workers: every process joins every consumer group, so Kafka splits the partitions between
            # them. One Python process saturated a core draining a checkout burst (67 orders/s); two use both.
            for n in range(1, int(os.environ.get("NEXUSCART_WORKER_PROCESSES", "2")) + 1):
                worker_port = free_port()
                self._spawn(f"worker-{n}", [sys.executable, "-m", "nexuscart.cli", "worker"],
                            extra_env={"WORKER_HEALTH_PORT": str(worker_port)})
                self.worker_health_urls[f"worker-{n}"] = f"http://127.0.0.1:{worker_port}/health"
            for subgraph in SUBGRAPHS:
                self._wait_healthy(subgraph.name, f"http://127.0.0.1:{cfg.subgraph_ports[subgraph.name]}/health")
            self.relay_health_url = f"http://127.0.0.1:{relay_port}/health"
            self._wait_healthy("relay", self.relay_health_url)
            for name, url in self.worker_health_urls.items():
                self._wait_healthy(name, url)
            if cfg.start_router:
                router_env = {"ROUTER_PORT": str(cfg.router_port), "ROUTER_HOST": "127.0.0.1",
                              # Two gateway workers: the router's JavaScript is the browse bottleneck on
                              # this 2-core box (signed-in browse 285 -> 375 req/s); ROUTER_FORK overrides.
                              "FORK": os.environ.get("ROUTER_FORK", "2"),
                              **{f"NEXUSCART_{name.upper()}_URL": self.subgraph_url(name)
                                 for name in cfg.subgraph_ports}}
                # Spawned directly (not via npx, which would not pass SIGTERM on), with the gateway CLI's own
                # PORT/HOST/... variables removed so they cannot override the config.
                gateway_cli = ROUTER_DIR / "node_modules/@graphql-hive/gateway/dist/bin.js"
                self._spawn("router", [node_binary(), str(gateway_cli),
                                       "supergraph", str(REPO_ROOT / "schema/supergraph.graphql")],
                            cwd=ROUTER_DIR, extra_env=router_env,
                            drop_env=tuple(k for k in _GATEWAY_CLI_ENV if k not in router_env))
                self._wait_healthy("router", f"http://127.0.0.1:{cfg.router_port}/readiness")
        except BaseException:
            self.stop()
            raise
        return self

    def _spawn(self, name: str, argv: list[str], *, cwd: Path = REPO_ROOT, extra_env: dict[str, str] | None = None,
               drop_env: tuple[str, ...] = ()) -> None:
        output = None
        if self.config.quiet:
            # A log file per child rather than /dev/null: it is what one reads when a child misbehaves.
            log_dir = self.config.data_dir / "logs"
            log_dir.mkdir(parents=True, exist_ok=True)
            output = open(log_dir / f"{name}.log", "ab")  # noqa: SIM115 - the child holds it until it exits
        self._spawn_args[name] = (argv, cwd, extra_env, drop_env)
        env = {k: v for k, v in {**self.env, **(extra_env or {})}.items() if k not in drop_env}
        # Own process group per child: Ctrl-C in the terminal reaches us once, and we stop children in order.
        self.children[name] = subprocess.Popen(argv, cwd=cwd, env=env, stdout=output, stderr=subprocess.STDOUT
                                               if output else None, start_new_session=True)
        if output is not None:
            output.close()  # the child has its own descriptor now

    def _run_to_completion(self, name: str, argv: list[str]) -> None:
        result = subprocess.run(argv, cwd=REPO_ROOT, env=self.env)
        if result.returncode != 0:
            raise RuntimeError(f"{name} failed with exit code {result.returncode}")

    def _wait_healthy(self, name: str, url: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        proc = self.children[name]
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with code {proc.returncode} during start-up")
            try:
                if httpx.get(url, timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)  # re-check the health endpoint; the loop ends on success or the deadline
        raise TimeoutError(f"{name} not healthy at {url} after {timeout}s")

    def kill(self, name: str) -> None:
        """SIGKILL one child (crash tests: no chance to finish what it was doing)."""
        proc = self.children[name]
        _signal_group(proc, signal.SIGKILL)
        proc.wait(timeout=10)

    def restart(self, name: str, health_url: str | None = None) -> None:
        """Start a stopped or killed child again with the arguments it first had."""
        argv, cwd, extra_env, drop_env = self._spawn_args[name]
        self._spawn(name, argv, cwd=cwd, extra_env=extra_env, drop_env=drop_env)
        if health_url:
            self._wait_healthy(name, health_url)

    def stop(self) -> None:
        """SIGTERM every child's process group, then SIGKILL what is still there after its grace period.

        Groups, not pids: the router forks gateway workers, and those must not outlive it. The router gets
        a short grace: it is stateless, and Hive Gateway in fork mode ignores SIGTERM once it has served a
        request (seen with 2.15.1), so waiting longer would only delay every Ctrl-C.
        """
        for proc in self.children.values():
            _signal_group(proc, signal.SIGTERM)
        started = time.monotonic()
        for name, proc in self.children.items():
            grace = _ROUTER_GRACE_SECONDS if name == "router" else _GRACE_SECONDS
            try:
                proc.wait(timeout=max(0.1, grace - (time.monotonic() - started)))
            except subprocess.TimeoutExpired:
                log.warning("child did not stop; killing", extra={"child": name})
                _signal_group(proc, signal.SIGKILL)
                proc.wait(timeout=5)
        self.children.clear()
        if self.infra is not None:
            self.infra.stop()
            self.infra = None

    def wait(self) -> int:
        """Block until a child dies (then report it) or we are interrupted."""
        while True:
            for name, proc in self.children.items():
                if proc.poll() is not None:
                    print(f"nexuscart: {name} exited with code {proc.returncode}; stopping everything",
                          file=sys.stderr)
                    return proc.returncode or 1
            time.sleep(0.5)  # supervising loop: checks child liveness twice a second
