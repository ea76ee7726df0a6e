"""Boots the whole platform as child processes: subgraphs, the outbox relay, the workers and the router.

Used by `make run` (persistent data dir, fixed ports) and by the end-to-end tests (temporary data dir, free
ports). The launcher owns its children:

- each child leads its own session, so a terminal's Ctrl-C reaches the launcher only, and the launcher stops
  them in order: the router, then subgraphs and workers (they drain in-flight work and commit offsets), then the
  relay, the broker, Redis and Postgres, one line each;
- each child ends with the launcher if it dies without stopping them (SIGKILL, OOM): PR_SET_PDEATHSIG
  (kernel.process);
- ports are checked before anything starts; a busy one is named with the variable that moves it;
- "up" means ready: every subgraph reaches Postgres and Redis, every consumer group has all its partitions
  assigned, the relay runs, and the router answers a query.
"""
from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import json
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any

import httpx

from kernel.auth import ensure_keypair
from kernel.migrate import migrate_all
from kernel.process import DIE_WITH_PARENT_ENV, child_preexec
from nexuscart.infra import (
    ROUTER_DIR,
    InfraError,
    Infrastructure,
    free_port,
    node_binary,
    run_blocking,
    signal_group,
    start_infrastructure,
    stop_process,
    wait_stopped,
)
from nexuscart.localstripe import LocalStripe, start_localstripe
from nexuscart.registry import SUBGRAPHS, migration_plan
from nexuscart.smtp_sink import SmtpSink, start_smtp_sink

log = logging.getLogger("nexuscart.launcher")

REPO_ROOT = ROUTER_DIR.parent
# ROUTER_ENGINE=grafbase (opt-in; docs/router-evaluation.md): the Grafbase CLI's `dev` server, which runs the
# Grafbase gateway engine. The standalone gateway binary is not on npm; the CLI is (router-grafbase/package.json).
GRAFBASE_DIR = REPO_ROOT / "router-grafbase"
GRAFBASE_BINARY = GRAFBASE_DIR / "node_modules/@grafbase/cli-x86_64-unknown-linux-musl/grafbase"
ROUTER_ENGINES = ("hive", "grafbase")
# LOG_LEVEL too: it is the services' (INFO, DEBUG, ...), and Hive Gateway's logger refuses to start on an
# upper-case level; the router's own is ROUTER_LOG_LEVEL.
_GATEWAY_CLI_ENV = ("PORT", "HOST", "CONFIG_PATH", "POLLING", "FORK", "LOG_LEVEL")
# Stop budget (the whole stop stays under 5 s): the router is stateless, and Hive Gateway in fork mode may ignore
# SIGTERM once it has served a request (seen with 2.15.1), so it gets little; subgraphs finish in-flight requests
# (uvicorn's graceful timeout is 2 s) and workers drain their batch (workers/runtime.py DRAIN_SECONDS).
_ROUTER_GRACE_SECONDS = 1.0
_SERVICE_GRACE_SECONDS = 3.0


class StartupError(RuntimeError):
    """The platform cannot start; the message says why in one line, for the operator."""


def port_variable(name: str) -> str:
    """The environment variable `nexuscart run` reads for a subgraph's port."""
    return f"NEXUSCART_{name.upper()}_PORT"


@dataclasses.dataclass
class PlatformConfig:
    data_dir: Path
    router_port: int = 4000
    subgraph_ports: dict[str, int] = dataclasses.field(default_factory=lambda: {s.name: s.port for s in SUBGRAPHS})
    seed: bool = True
    start_router: bool = True
    extra_env: dict[str, str] = dataclasses.field(default_factory=dict)
    quiet: bool = False
    # `make run` without STRIPE_API_KEY: start localstripe so the `stripe` provider works with test cards.
    local_stripe: bool = False
    # Without SMTP_URL: a local SMTP sink that keeps every email as a .eml file under <data dir>/mail.
    local_smtp: bool = True

    @classmethod
    def from_environment(cls, data_dir: Path, **kwargs: Any) -> PlatformConfig:
        """`make run`: the default ports, each moved by its variable (ROUTER_PORT, NEXUSCART_<SUBGRAPH>_PORT)."""
        try:
            return cls(data_dir=data_dir, router_port=int(os.environ.get("ROUTER_PORT", 4000)),
                       subgraph_ports={s.name: int(os.environ.get(port_variable(s.name), s.port)) for s in SUBGRAPHS},
                       **kwargs)
        except ValueError as exc:
            raise StartupError(f"a port variable is not a number ({exc})") from None

    @classmethod
    def ephemeral(cls, data_dir: Path, **kwargs: Any) -> PlatformConfig:
        """Free ports everywhere: for tests, next to a running `make run`."""
        return cls(data_dir=data_dir, router_port=free_port(),
                   subgraph_ports={s.name: free_port() for s in SUBGRAPHS}, **kwargs)

    def named_ports(self) -> list[tuple[int, str, str]]:
        """(port, what listens there, the variable that moves it)."""
        ports = [(self.subgraph_ports[s.name], s.name, port_variable(s.name)) for s in SUBGRAPHS]
        if self.start_router:
            ports.insert(0, (self.router_port, "router", "ROUTER_PORT"))
        return ports


def router_engine(env: Mapping[str, str]) -> str:
    """ROUTER_ENGINE: `hive` (Hive Gateway, router/; the default) or `grafbase` (router-grafbase/)."""
    engine = env.get("ROUTER_ENGINE", "").strip().lower() or "hive"
    if engine not in ROUTER_ENGINES:
        raise StartupError(f"ROUTER_ENGINE must be one of {', '.join(ROUTER_ENGINES)}, got {engine!r}")
    return engine


def write_grafbase_config(path: Path, subgraph_urls: Mapping[str, str], cors_origins: str = "") -> Path:
    """The Grafbase gateway's config: router-grafbase/gateway.toml, CORS from ROUTER_CORS_ORIGINS (read as Hive
    Gateway reads it), then each subgraph's HTTP URL, WebSocket URL and schema file (Grafbase composes the
    subgraph schemas itself). Subscriptions go to the subgraphs over graphql-transport-ws: they speak no SSE."""
    # A JSON string of these values (URLs, paths, origins) is also a valid TOML basic string.
    parts = [(GRAFBASE_DIR / "gateway.toml").read_text()]
    origins = [origin.strip().rstrip("/") for origin in cors_origins.split(",") if origin.strip()]
    if origins:
        # Any origin ("*", `make run` only) goes without credentials: Grafbase refuses to start with both, where
        # Hive Gateway reflects the caller's origin.
        any_origin = "*" in origins
        parts.append(f"""
[cors]
allow_origins = {json.dumps("any" if any_origin else origins)}
allow_credentials = {json.dumps(not any_origin)}
allow_headers = ["content-type", "authorization", "x-api-key", "x-request-id", "accept"]
expose_headers = ["retry-after", "x-request-id"]
max_age = "600s"
""")
    for name, url in subgraph_urls.items():
        schema = REPO_ROOT / "schema" / f"{name}.graphql"
        if not schema.exists():
            raise StartupError(f"no schema file for subgraph {name} at {schema} (run: make schema)")
        websocket_url = "ws" + url.removeprefix("http")
        parts.append(f"""
[subgraphs.{name}]
url = {json.dumps(url)}
websocket_url = {json.dumps(websocket_url)}
subscription_protocol = "websocket"
schema_path = {json.dumps(str(schema))}
""")
    path.write_text("".join(parts))
    return path


def grafbase_argv(config_path: Path, port: int) -> list[str]:
    """The Grafbase gateway on 127.0.0.1:`port` with `config_path`; StartupError if its CLI is not installed."""
    if not GRAFBASE_BINARY.exists():
        raise StartupError(f"ROUTER_ENGINE=grafbase needs the Grafbase CLI at {GRAFBASE_BINARY}: run `npm ci` in "
                           f"{GRAFBASE_DIR.name}/")
    return [str(GRAFBASE_BINARY), "dev", "--config", str(config_path), "--listen-address", f"127.0.0.1:{port}"]


def busy_port(port: int) -> bool:
    with socket.socket() as probe:
        # SO_REUSEADDR as the servers set it: a port in TIME_WAIT after the previous run is not busy.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as exc:
            return exc.errno == errno.EADDRINUSE
    return False


def check_ports(config: PlatformConfig) -> None:
    for port, owner, variable in config.named_ports():
        if busy_port(port):
            raise StartupError(f"port {port} ({owner}) is already in use: stop what uses it, or set {variable} "
                               f"to a free port")


class _DataDirLock:
    """One launcher per data dir: a second `make run` on the same data would stop the first one's servers."""

    def __init__(self, data_dir: Path) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        self.file: IO[str] = open(data_dir / "launcher.lock", "a+")  # noqa: SIM115 - held for the platform's life
        try:
            fcntl.flock(self.file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.file.close()
            raise StartupError(f"another `nexuscart run` is using {data_dir}; stop it first, or set "
                               f"NEXUSCART_DATA_DIR to another directory") from None

    def release(self) -> None:
        self.file.close()  # the lock goes with the descriptor (and with the process, however it ends)


@dataclasses.dataclass
class _Child:
    argv: list[str]
    cwd: Path
    extra_env: dict[str, str] | None
    drop_env: tuple[str, ...]
    death_signal: int
    ready_url: str | None


class Platform:
    def __init__(self, config: PlatformConfig, *, report: Callable[[str], None] | None = None) -> None:
        self.config = config
        self.infra: Infrastructure | None = None
        self.children: dict[str, subprocess.Popen] = {}
        self.env: dict[str, str] = {}
        self.relay_health_url: str | None = None
        self.worker_health_urls: dict[str, str] = {}  # "worker-1" -> its /health
        self._spawned: dict[str, _Child] = {}
        self._lock: _DataDirLock | None = None
        self.local_stripe: LocalStripe | None = None
        self.smtp_sink: SmtpSink | None = None
        # Where stop lines and supervision notices go (`make run`: the terminal); None: the log.
        self._report = report or (lambda line: log.info(line))

    @property
    def running(self) -> bool:
        """Something is started that `stop()` would stop."""
        return bool(self.children) or self.infra is not None

    @property
    def router_url(self) -> str:
        return f"http://127.0.0.1:{self.config.router_port}/graphql"

    def subgraph_url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.config.subgraph_ports[name]}/graphql"

    def start(self) -> Platform:
        """Everything, in order, then wait until all of it is ready. Call from the main thread: children end when
        the thread that started them does."""
        cfg = self.config
        check_ports(cfg)
        try:
            self._lock = _DataDirLock(cfg.data_dir)
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
                        # The cart asks inventory about a variant its projection has not heard of yet.
                        "INVENTORY_SERVICE_URL": f"http://127.0.0.1:{cfg.subgraph_ports['inventory']}",
                        # Orders asks shipping for the shipping price at placeOrder.
                        "SHIPPING_SERVICE_URL": f"http://127.0.0.1:{cfg.subgraph_ports['shipping']}",
                        # Recommendations' model registry: trained by the seed and the worker, served by the subgraph.
                        "RECOMMENDATIONS_MODEL_DIR": os.environ.get("RECOMMENDATIONS_MODEL_DIR",
                                                                    str(cfg.data_dir / "models" / "recommendations")),
                        DIE_WITH_PARENT_ENV: "1",
                        **cfg.extra_env}
            stripe_webhook_secret = self._start_local_stripe()
            self._start_smtp_sink()
            run_blocking(migrate_all(self.infra.database_url, migration_plan()))
            if cfg.seed:
                self._run_to_completion("seed", [sys.executable, "-m", "nexuscart.cli", "seed"])
            for subgraph in SUBGRAPHS:
                port = cfg.subgraph_ports[subgraph.name]
                self._spawn(subgraph.name, [sys.executable, "-m", "nexuscart.cli", "serve", subgraph.name,
                                            "--port", str(port)], ready_url=f"http://127.0.0.1:{port}/ready")
            relay_port = free_port()
            self.relay_health_url = f"http://127.0.0.1:{relay_port}/health"
            self._spawn("relay", [sys.executable, "-m", "nexuscart.cli", "relay"],
                        extra_env={"RELAY_HEALTH_PORT": str(relay_port)},
                        ready_url=f"http://127.0.0.1:{relay_port}/ready")
            # Saga workers: every process joins every consumer group, so Kafka splits the partitions between
            # them. One Python process saturated a core draining a checkout burst (67 orders/s); two use both.
            for n in range(1, int(os.environ.get("NEXUSCART_WORKER_PROCESSES", "2")) + 1):
                worker_port = free_port()
                self._spawn(f"worker-{n}", [sys.executable, "-m", "nexuscart.cli", "worker"],
                            extra_env={"WORKER_HEALTH_PORT": str(worker_port)},
                            ready_url=f"http://127.0.0.1:{worker_port}/ready")
                self.worker_health_urls[f"worker-{n}"] = f"http://127.0.0.1:{worker_port}/health"
            if cfg.start_router:
                self._spawn_router()  # at once: it loads the supergraph while the subgraphs boot
            self._wait_ready()
            if self.local_stripe is not None and stripe_webhook_secret:
                self.local_stripe.register_webhook(f"http://127.0.0.1:{cfg.subgraph_ports['payments']}/webhooks/stripe",
                                                   stripe_webhook_secret)
        except BaseException:
            self.stop()
            raise
        return self

    def _start_local_stripe(self) -> str | None:
        """localstripe for `make run` without a Stripe key; returns the webhook secret the services verify with."""
        if not self.config.local_stripe or self.env.get("STRIPE_API_KEY"):
            return None
        self.local_stripe = start_localstripe(log_file=self.config.data_dir / "logs" / "localstripe.log")
        secret = self.env.get("STRIPE_WEBHOOK_SECRET") or "whsec_" + secrets.token_hex(16)  # tests choose theirs
        self.env.update({"PAYMENT_PROVIDERS": self.env.get("PAYMENT_PROVIDERS", "simulated,stripe"),
                         "STRIPE_API_KEY": self.local_stripe.api_key, "STRIPE_API_BASE": self.local_stripe.url,
                         "STRIPE_WEBHOOK_SECRET": secret})
        return secret

    def _start_smtp_sink(self) -> None:
        """The SMTP sink when no SMTP_URL is set: notifications' email goes there and stays as .eml files."""
        if not self.config.local_smtp or self.env.get("SMTP_URL"):
            return
        mail_dir = self.config.data_dir / "mail"
        self.smtp_sink = start_smtp_sink(mail_dir, port=free_port(), preexec_fn=child_preexec(),
                                         log_file=self.config.data_dir / "logs" / "smtp-sink.log")
        self.env["SMTP_URL"] = self.smtp_sink.url
        self._report(f"  email: no SMTP_URL set, so messages are kept as .eml files in {mail_dir}")

    def _spawn_router(self) -> None:
        if router_engine(self.env) == "grafbase":
            self._spawn_grafbase_router()
            return
        cfg = self.config
        router_env = {"ROUTER_PORT": str(cfg.router_port), "ROUTER_HOST": "127.0.0.1",
                      # Two gateway workers: the router's JavaScript is the browse bottleneck on this 2-core
                      # box (signed-in browse 285 -> 375 req/s); ROUTER_FORK overrides.
                      "FORK": os.environ.get("ROUTER_FORK", "2"),
                      # Its info lines (start, each worker's shutdown steps) repeat what the launcher prints once.
                      "ROUTER_LOG_LEVEL": os.environ.get("ROUTER_LOG_LEVEL", "warn"),
                      **{f"NEXUSCART_{name.upper()}_URL": self.subgraph_url(name) for name in cfg.subgraph_ports}}
        # Spawned directly (not via npx, which would not pass signals on), with the gateway CLI's own
        # PORT/HOST/... variables removed so they cannot override the config. SIGKILL when the launcher dies:
        # the gateway's forked workers exit as soon as their primary is gone.
        gateway_cli = ROUTER_DIR / "node_modules/@graphql-hive/gateway/dist/bin.js"
        supergraph = REPO_ROOT / "schema/supergraph.graphql"
        self._spawn("router", [node_binary(), str(gateway_cli), "supergraph", str(supergraph)],
                    cwd=ROUTER_DIR, extra_env=router_env,
                    drop_env=tuple(k for k in _GATEWAY_CLI_ENV if k not in router_env),
                    death_signal=signal.SIGKILL, ready_url=f"http://127.0.0.1:{cfg.router_port}/readiness")

    def _spawn_grafbase_router(self) -> None:
        """ROUTER_ENGINE=grafbase: its config is written into the data dir (each platform has its own ports).
        WebSocket clients connect to /ws there, not /graphql."""
        cfg = self.config
        config_path = write_grafbase_config(cfg.data_dir / "grafbase.toml",
                                            {name: self.subgraph_url(name) for name in cfg.subgraph_ports},
                                            self.env.get("ROUTER_CORS_ORIGINS", ""))
        self._spawn("router", grafbase_argv(config_path, cfg.router_port), cwd=GRAFBASE_DIR,
                    death_signal=signal.SIGKILL, ready_url=f"http://127.0.0.1:{cfg.router_port}/health")

    def _spawn(self, name: str, argv: list[str], *, cwd: Path = REPO_ROOT, extra_env: dict[str, str] | None = None,
               drop_env: tuple[str, ...] = (), death_signal: int = signal.SIGTERM,
               ready_url: str | None = None) -> None:
        output = None
        if self.config.quiet:
            # A log file per child rather than /dev/null: it is what one reads when a child misbehaves.
            log_dir = self.config.data_dir / "logs"
            log_dir.mkdir(parents=True, exist_ok=True)
            output = open(log_dir / f"{name}.log", "ab")  # noqa: SIM115 - the child holds it until it exits
        self._spawned[name] = _Child(argv, cwd, extra_env, drop_env, death_signal, ready_url)
        env = {k: v for k, v in {**self.env, **(extra_env or {})}.items() if k not in drop_env}
        # Own session per child: Ctrl-C in the terminal reaches us once, and we stop children in order.
        self.children[name] = subprocess.Popen(argv, cwd=cwd, env=env, stdout=output,
                                               stderr=subprocess.STDOUT if output else None,
                                               start_new_session=True, preexec_fn=child_preexec(death_signal))
        if output is not None:
            output.close()  # the child has its own descriptor now

    def _run_to_completion(self, name: str, argv: list[str]) -> None:
        proc = subprocess.Popen(argv, cwd=REPO_ROOT, env=self.env, start_new_session=True,
                                preexec_fn=child_preexec(signal.SIGTERM))
        try:
            returncode = proc.wait()
        except BaseException:
            stop_process(proc)
            raise
        if returncode != 0:
            raise StartupError(f"{name} failed with exit code {returncode}")

    def _probe(self, url: str) -> httpx.Response | None:
        try:
            return httpx.get(url, timeout=2)
        except httpx.HTTPError:
            return None

    def _wait_ready(self) -> None:
        """Every child ready (see the module docstring), or a clear error: which one exited, or is not ready."""
        timeout = float(os.environ.get("NEXUSCART_START_TIMEOUT_SECONDS", 180))
        deadline = time.monotonic() + timeout
        waiting: dict[str, str] = {name: child.ready_url for name, child in self._spawned.items() if child.ready_url}
        while True:
            for name in list(waiting):
                proc = self.children[name]
                if proc.poll() is not None:
                    hint = f"; see {self.config.data_dir / 'logs' / name}.log" if self.config.quiet else ""
                    raise StartupError(f"{name} exited with code {proc.returncode} during start-up{hint}")
                response = self._probe(waiting[name])
                if response is not None and response.status_code == 200:
                    del waiting[name]
            if not waiting and self._consumer_groups_complete() and self._router_answers():
                return
            if time.monotonic() > deadline:
                raise StartupError(f"not ready after {timeout:.0f}s (NEXUSCART_START_TIMEOUT_SECONDS): "
                                   f"{', '.join(waiting) or 'consumer groups or router'}")
            time.sleep(0.2)  # readiness is polled; the loop ends when all is ready, a child dies, or the deadline

    def _consumer_groups_complete(self) -> bool:
        """The workers together own every partition of every consumer group (each one alone may own none)."""
        owned: dict[str, set[str]] = {}
        totals: dict[str, int] = {}
        for url in self.worker_health_urls.values():
            response = self._probe(url.replace("/health", "/ready"))
            if response is None or response.status_code != 200:
                return False
            for group, state in response.json().get("groups", {}).items():
                owned.setdefault(group, set()).update(state["assigned"] or ())
                totals[group] = state["partitions"] or 0
        return all(len(owned[group]) >= total for group, total in totals.items())

    def _router_answers(self) -> bool:
        if not self.config.start_router:
            return True
        try:
            response = httpx.post(self.router_url, json={"query": "{ __typename }"}, timeout=5)
        except httpx.HTTPError:
            return False
        return response.status_code == 200 and not response.json().get("errors")

    def kill(self, name: str) -> None:
        """SIGKILL one child (crash tests: no chance to finish what it was doing)."""
        proc = self.children[name]
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)

    def restart(self, name: str, health_url: str | None = None) -> None:
        """Start a stopped or killed child again with the arguments it first had; with `health_url`, wait until
        that answers 200 (its /health: alive; its /ready: ready)."""
        child = self._spawned[name]
        self._spawn(name, child.argv, cwd=child.cwd, extra_env=child.extra_env, drop_env=child.drop_env,
                    death_signal=child.death_signal, ready_url=child.ready_url)
        if health_url:
            deadline = time.monotonic() + 60
            url = health_url
            while time.monotonic() < deadline:
                if self.children[name].poll() is not None:
                    raise StartupError(f"{name} exited with code {self.children[name].returncode} on restart")
                response = self._probe(url)
                if response is not None and response.status_code == 200:
                    return
                time.sleep(0.1)  # polled until ready or the deadline
            raise StartupError(f"{name} not ready at {url} after 60s")

    def _stop_group(self, names: list[str], grace: float) -> None:
        """SIGTERM to each one's process group at once (groups: the router and uvicorn fork workers), then one
        line per process as it ends; SIGKILL for what is still there after `grace` seconds."""
        procs = {n: self.children.pop(n) for n in names if n in self.children}
        started = time.monotonic()
        for proc in procs.values():
            signal_group(proc, signal.SIGTERM)
        for name, proc in procs.items():
            wait_stopped(proc, max(0.1, grace - (time.monotonic() - started)))
            self._report(f"  stopped {name:<12} {time.monotonic() - started:4.1f} s")

    def stop(self) -> None:
        """Router; then subgraphs and workers together (in-flight requests finish, consumers commit offsets); then
        the relay (so events written meanwhile still go out); then the broker, Redis and Postgres."""
        self._stop_group(["router"], _ROUTER_GRACE_SECONDS)
        self._stop_group([n for n in self.children if n != "relay"], _SERVICE_GRACE_SECONDS)
        self._stop_group(["relay"], _SERVICE_GRACE_SECONDS)
        if self.smtp_sink is not None:
            started = time.monotonic()
            self.smtp_sink.stop()
            self.smtp_sink = None
            self._report(f"  stopped {'smtp-sink':<12} {time.monotonic() - started:4.1f} s")
        if self.local_stripe is not None:
            started = time.monotonic()
            self.local_stripe.stop()
            self.local_stripe = None
            self._report(f"  stopped {'localstripe':<12} {time.monotonic() - started:4.1f} s")
        if self.infra is not None:
            self.infra.stop(lambda name, seconds: self._report(f"  stopped {name:<12} {seconds:4.1f} s"))
            self.infra = None
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def wait(self) -> int:
        """Block until a child dies (then report it) or we are interrupted. An embedded server that dies (the
        broker, Redis, Postgres) is started again on the same address: the services reconnect to it."""
        while True:
            for name, proc in self.children.items():
                if proc.poll() is not None:
                    self._report(f"nexuscart: {name} exited with code {proc.returncode}; stopping everything")
                    return proc.returncode or 1
            for server in self.infra.embedded if self.infra else ():
                if not server.alive():
                    self._report(f"nexuscart: embedded {server.name} exited; starting it again")
                    try:
                        server.start()
                    except InfraError as exc:  # e.g. a killed Postgres' backends still hold its memory
                        self._report(f"nexuscart: {server.name} did not start again ({exc}); trying again")
            time.sleep(0.5)  # supervising loop: checks child liveness twice a second
