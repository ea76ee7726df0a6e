"""`nexuscart` command line: run the platform, serve one subgraph, relay, migrate, seed, export schemas."""
from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from nexuscart.registry import SUBGRAPHS, get_subgraph, migration_plan

REPO_ROOT = Path(__file__).resolve().parent.parent


def _raise_keyboard_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def cmd_run(args: argparse.Namespace) -> int:
    from nexuscart.infra import InfraError
    from nexuscart.launcher import Platform, PlatformConfig, StartupError

    data_dir = Path(os.environ.get("NEXUSCART_DATA_DIR", REPO_ROOT / ".data")).resolve()
    # Explicit handlers: a launcher started in the background (or by a supervisor) may inherit an ignored
    # SIGINT, and SIGTERM should stop the platform as cleanly as Ctrl-C does.
    signal.signal(signal.SIGINT, _raise_keyboard_interrupt)
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    platform: Platform | None = None
    started = time.monotonic()
    try:
        # `make run` is for development: any page may call the API (production lists its origins), and the
        # `stripe` provider works out of the box against localstripe when no STRIPE_API_KEY is set.
        config = PlatformConfig.from_environment(data_dir, local_stripe=True, extra_env={
            "ROUTER_CORS_ORIGINS": os.environ.get("ROUTER_CORS_ORIGINS", "*")})
        platform = Platform(config,
                            report=lambda line: print(line, file=sys.stderr, flush=True))
        platform.start()
        embedded = [n for n, v in (("Postgres", "DATABASE_URL"), ("Redis", "REDIS_URL"),
                                   ("Kafka", "KAFKA_BOOTSTRAP_SERVERS")) if not os.environ.get(v)]
        print(f"""
NexusCart is up (ready in {time.monotonic() - started:.1f} s).
  GraphQL endpoint : {platform.router_url.replace('127.0.0.1', 'localhost')}
  GraphiQL         : open {platform.router_url.replace('127.0.0.1', 'localhost')} in a browser
  Subgraphs        : {', '.join(f'{s.name} :{platform.config.subgraph_ports[s.name]}' for s in SUBGRAPHS)}
  Embedded         : {', '.join(embedded) or 'none'} (data in {data_dir})
  Demo logins      : admin@nexuscart.dev / admin-demo-pass, customer@nexuscart.dev / customer-demo-pass
Press Ctrl-C to stop.""", flush=True)
        return platform.wait()
    except KeyboardInterrupt:
        return 0
    except (StartupError, InfraError) as exc:
        print(f"nexuscart: {exc}", file=sys.stderr, flush=True)
        return 1
    finally:
        # A second Ctrl-C must not cut the stop short (it takes a few seconds, and leaves nothing behind).
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if platform is not None and platform.running:
            print("\nstopping NexusCart...", file=sys.stderr, flush=True)
            stopping = time.monotonic()
            platform.stop()
            print(f"NexusCart stopped in {time.monotonic() - stopping:.1f} s.", file=sys.stderr, flush=True)


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    subgraph = get_subgraph(args.subgraph)
    workers = int(os.environ.get(f"NEXUSCART_{subgraph.name.upper()}_WORKERS", args.workers or subgraph.workers))
    uvicorn.run(subgraph.app_factory, factory=True, host=args.host, port=args.port, workers=workers,
                loop="uvloop", http="httptools", ws="websockets", log_level="warning", access_log=False,
                lifespan="on",
                # In-flight requests finish; open subscriptions are closed after this (the launcher's whole stop
                # stays under 5 s).
                timeout_graceful_shutdown=2,
                # Callers (the router, peers) pool keep-alive connections and drop idle ones within seconds; the
                # server must never close first, or a request sent on a connection it is closing fails ("socket
                # hang up" in the router, seen once in the flash-sale bench with uvicorn's default 5 s).
                timeout_keep_alive=75)
    return 0


def _run_async(coro_factory: Callable[[asyncio.Event], Awaitable[None]]) -> int:
    """Run a worker-style process until SIGINT/SIGTERM, then exit as soon as it has closed what it holds."""
    import uvloop

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await coro_factory(stop)

    uvloop.run(main())
    # Its connections, consumers and offsets are closed and committed by now. The interpreter's own teardown of a
    # process this size costs about a second of the platform's 5 s stop budget, and has nothing left to do.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def cmd_relay(args: argparse.Namespace) -> int:
    from kernel.logs import configure_logging
    from kernel.settings import get_settings
    from workers.health import serve_health
    from workers.outbox_relay import relay_health, run_relay

    settings = get_settings()
    settings.service_name = "outbox-relay"
    configure_logging("outbox-relay", settings.log_level)

    async def relay_with_health(stop: asyncio.Event) -> None:
        relay = asyncio.ensure_future(run_relay(settings, [s.name for s in SUBGRAPHS], stop=stop))
        if not settings.relay_health_port:
            await relay
            return
        # Stalled = no successful round for three idle polls plus the longest backoff.
        health = asyncio.ensure_future(serve_health(
            "outbox-relay", settings.relay_health_port, relay_health(3 * settings.outbox_idle_poll_seconds + 30)))
        try:
            await relay
        finally:
            health.cancel()

    return _run_async(relay_with_health)


def cmd_worker(args: argparse.Namespace) -> int:
    from kernel.logs import configure_logging
    from kernel.settings import get_settings
    from workers.health import serve_health
    from workers.runtime import Worker

    settings = get_settings()
    settings.service_name = "worker"
    configure_logging("worker", settings.log_level)
    worker = Worker(settings, only=set(args.only.split(",")) if args.only else None)

    async def run_with_health(stop: asyncio.Event) -> None:
        health = (asyncio.ensure_future(serve_health("worker", settings.worker_health_port, worker.health(),
                                                     worker.readiness()))
                  if settings.worker_health_port else None)
        try:
            await worker.run(stop)
        finally:
            if health is not None:
                health.cancel()

    return _run_async(run_with_health)


def cmd_migrate(args: argparse.Namespace) -> int:
    from kernel.migrate import migrate_all
    from kernel.settings import get_settings

    settings = get_settings()
    settings.require_peers("database_url")
    applied = asyncio.run(migrate_all(settings.database_url, migration_plan()))
    for schema, names in applied.items():
        print(f"{schema}: {', '.join(names) if names else 'up to date'}")
    return 0


def cmd_seed(args: argparse.Namespace) -> int:
    from kernel.logs import configure_logging
    from kernel.settings import get_settings
    from nexuscart.seed import seed_demo_data

    settings = get_settings()
    configure_logging("seed", settings.log_level)
    print(asyncio.run(seed_demo_data(settings)), flush=True)
    return 0


def cmd_reindex(args: argparse.Namespace) -> int:
    from kernel.logs import configure_logging
    from kernel.settings import get_settings
    from nexuscart.reindex import reindex

    settings = get_settings()
    configure_logging("reindex", settings.log_level)
    print(asyncio.run(reindex(settings)), flush=True)
    return 0


def cmd_retrain_recommendations(args: argparse.Namespace) -> int:
    from kernel.db import create_engine, create_session_factory
    from kernel.logs import configure_logging
    from kernel.redis import create_redis
    from kernel.settings import get_settings
    from subgraphs.recommendations.service import MIN_TRAINING_INTERACTIONS, retrain_now

    settings = get_settings()
    configure_logging("retrain-recommendations", settings.log_level)
    if settings.recommendations_model_dir is None:
        print("RECOMMENDATIONS_MODEL_DIR is not set: there is no model registry to train into", file=sys.stderr)
        return 2

    async def run() -> Any:
        engine, redis = create_engine(settings), create_redis(settings)
        try:
            return await retrain_now(create_session_factory(engine), redis, settings)
        finally:
            await redis.aclose()
            await engine.dispose()

    outcome = asyncio.run(run())
    if outcome is None:
        print(f"not retrained: fewer than {MIN_TRAINING_INTERACTIONS} stored interactions", flush=True)
        return 0
    verdict = "promoted" if outcome.promoted else "saved, not promoted (its offline metrics are below the current's)"
    metrics = ", ".join(f"{k}={v:.3f}" for k, v in outcome.metrics.items() if isinstance(v, float))
    print(f"{outcome.version}: {verdict}; {metrics}", flush=True)
    return 0


async def subgraph_sdl(name: str) -> str:
    result = await get_subgraph(name).schema().execute("{ _service { sdl } }")
    if result.errors:
        raise RuntimeError(f"{name}: {result.errors}")
    return result.data["_service"]["sdl"].rstrip() + "\n"


def cmd_export_schema(args: argparse.Namespace) -> int:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for subgraph in SUBGRAPHS:
        path = out / f"{subgraph.name}.graphql"
        path.write_text(asyncio.run(subgraph_sdl(subgraph.name)))
        print(f"wrote {path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="nexuscart")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="boot the whole platform").set_defaults(func=cmd_run)
    serve = sub.add_parser("serve", help="serve one subgraph")
    serve.add_argument("subgraph")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, required=True)
    serve.add_argument("--workers", type=int, default=0, help="default: the subgraph's registry setting")
    serve.set_defaults(func=cmd_serve)
    sub.add_parser("relay", help="publish outbox events to Kafka").set_defaults(func=cmd_relay)
    worker = sub.add_parser("worker", help="run the domains' event consumers and periodic jobs (the order saga)")
    worker.add_argument("--only", default="", help="comma-separated consumer/task names (default: all)")
    worker.set_defaults(func=cmd_worker)
    sub.add_parser("migrate", help="apply every domain's migrations").set_defaults(func=cmd_migrate)
    sub.add_parser("seed", help="create the demo data once").set_defaults(func=cmd_seed)
    sub.add_parser("reindex", help=("rebuild the search index from the catalog (no downtime) and refresh "
                                    "recommendations' copy of the products")).set_defaults(
        func=cmd_reindex)
    sub.add_parser("retrain-recommendations", help="train a recommendation model from the stored interactions; "
                   "promoted only when its offline metrics are at least the current model's").set_defaults(
        func=cmd_retrain_recommendations)
    export = sub.add_parser("export-schema", help="write each subgraph's SDL to schema/")
    export.add_argument("--out", default=str(REPO_ROOT / "schema"))
    export.set_defaults(func=cmd_export_schema)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
