"""Hive Gateway vs Grafbase over the same platform, back to back (docs/router-evaluation.md).

Boots the bench's platform (demo data, free ports, Hive Gateway as its router), starts the Grafbase gateway next
to it over the same subgraphs (the launcher's config and command line), then for each round runs every scenario
through Hive, then through Grafbase: signed-in browse (bench/run.py BROWSE_WITH_SELLER), the same with a
cache-busting filter, the stock check anonymous and signed in, and purchaseFlashSale at 64 and 256 clients
(bench/flash_sale_bench.py, a fresh sale per run). Prints one row per run with the gateway's CPU ms per request
(bench/cpu.py) first, and writes them to router-compare.json in the working directory.

    cd router-grafbase && npm ci
    .venv/bin/python router-grafbase/compare_routers.py --rounds 3 --duration 10
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import random
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx

# Run as a script from anywhere: the repository root (bench, nexuscart) must be importable.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.cpu import CpuProbe
from bench.flash_sale_bench import BENCH_ENV, BUYERS, _issue_tokens, _open_sale, _purchase_run
from bench.httpload import LoadResult, graphql_body, probe_cpu_with, run_load
from bench.run import BROWSE_UNCACHED, BROWSE_WITH_SELLER, PRODUCT_IDS, STOCK_CHECK, _token
from nexuscart.infra import free_port, stop_process, wait_for_port
from nexuscart.launcher import GRAFBASE_DIR, Platform, PlatformConfig, grafbase_argv, write_grafbase_config

SCENARIOS = ("browse", "stock", "flash")


@contextlib.contextmanager
def grafbase_next_to(platform: Platform) -> Iterator[tuple[str, subprocess.Popen]]:
    """The Grafbase gateway over `platform`'s subgraphs: (its /graphql URL, its process)."""
    port = free_port()
    config = write_grafbase_config(platform.config.data_dir / "grafbase.toml",
                                   {name: platform.subgraph_url(name) for name in platform.config.subgraph_ports})
    proc = subprocess.Popen(grafbase_argv(config, port), cwd=GRAFBASE_DIR, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_for_port("127.0.0.1", port, 60, proc)
        yield f"http://127.0.0.1:{port}/graphql", proc
    finally:
        stop_process(proc)


class BothRoutersProbe(CpuProbe):
    """bench/cpu.py's groups, with the Grafbase process (not a launcher child) as "grafbase"."""

    def __init__(self, platform: Platform, grafbase: subprocess.Popen) -> None:
        super().__init__(platform)
        self._grafbase_pid = grafbase.pid

    def snapshot(self) -> dict[str, float]:
        import psutil
        totals = super().snapshot()
        try:
            totals["grafbase"] = sum(psutil.Process(self._grafbase_pid).cpu_times()[:2])
        except psutil.NoSuchProcess:
            totals["grafbase"] = 0.0
        return totals


def report(engine: str, result: LoadResult, rows: list[dict], note: str = "") -> None:
    gateway_cpu = (result.cpu_ms or {}).get("router" if engine == "hive" else "grafbase", 0.0)
    rows.append({"engine": engine, "gateway_cpu_ms": gateway_cpu, "note": note, **result.as_dict()})
    print(f"{engine:<8} gateway CPU {gateway_cpu:5.2f} ms/req  {result.name:<34} c={result.concurrency:<3} "
          f"{result.rps:7.1f} req/s  p50 {result.percentile(50):7.1f} ms  p99 {result.percentile(99):7.1f} ms  "
          f"errors {result.errors} {note}", flush=True)


async def compare(platform: Platform, routers: dict[str, str], rounds: int, duration: float,
                  only: tuple[str, ...]) -> list[dict]:
    rows: list[dict] = []
    data_dir = platform.config.data_dir
    signed_in = {"authorization": f"Bearer {_token(data_dir, 1, 'CUSTOMER')}"}
    async with httpx.AsyncClient(timeout=30) as http:
        edges = (await http.post(routers["hive"], json={"query": PRODUCT_IDS})).json()["data"]["products"]["edges"]
    variant_ids = [v["id"] for e in edges for v in e["node"]["variants"]]
    rng = random.Random(3)
    unique = itertools.count()
    browse = graphql_body(BROWSE_WITH_SELLER)
    load_scenarios: list[tuple[str, str, Callable[[int], tuple[bytes, dict[str, str]]]]] = [
        ("browse", "browse signed in", lambda _: (browse, signed_in)),
        ("browse", "browse signed in, cache-busting", lambda _: (graphql_body(
            BROWSE_UNCACHED, {"max": f"{5000 + next(unique) / 100:.2f}"}), signed_in)),
        ("stock", "stock check anonymous", lambda _: (graphql_body(STOCK_CHECK, {"id": rng.choice(variant_ids)}), {})),
        ("stock", "stock check signed in", lambda _: (graphql_body(
            STOCK_CHECK, {"id": rng.choice(variant_ids)}), signed_in)),
    ]
    buyers = [_token(data_dir, 100_000 + n, "CUSTOMER") for n in range(BUYERS)] if "flash" in only else []
    admin = _token(data_dir, 2, "ADMIN")

    async def flash(url: str, concurrency: int) -> tuple[LoadResult, str]:
        async with httpx.AsyncClient(timeout=60) as http:
            sale_id = await _open_sale(http, url, admin)
        pairs = await _issue_tokens(platform.subgraph_url("promotions"), sale_id, buyers, int(duration * 1_500))
        result, statuses = await _purchase_run("flash sale: purchaseFlashSale", url, sale_id, pairs, buyers,
                                               concurrency=concurrency, duration=duration)
        return result, str(dict(statuses))

    for _ in range(rounds):
        for group, name, make_request in load_scenarios:
            if group in only:
                for engine, url in routers.items():
                    report(engine, await run_load(name, url, make_request, concurrency=16, duration=duration), rows)
        if "flash" in only:
            for concurrency in (64, 256):
                for engine, url in routers.items():
                    result, statuses = await flash(url, concurrency)
                    report(engine, result, rows, statuses)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per run")
    parser.add_argument("--only", default=",".join(SCENARIOS), help=f"comma-separated subset of {SCENARIOS}")
    args = parser.parse_args(argv)
    only = tuple(s.strip() for s in args.only.split(",") if s.strip())
    data_dir = Path(tempfile.mkdtemp(prefix="nexuscart-router-compare-"))
    print(f"booting the platform with demo data in {data_dir} ...", flush=True)
    platform = Platform(PlatformConfig.ephemeral(data_dir, seed=True, quiet=True, extra_env={
        "ROUTER_RATE_LIMIT_PER_MINUTE": "0", "ROUTER_ENGINE": "hive", **BENCH_ENV})).start()
    try:
        with grafbase_next_to(platform) as (grafbase_url, grafbase):
            probe_cpu_with(BothRoutersProbe(platform, grafbase))
            rows = asyncio.run(compare(platform, {"hive": platform.router_url, "grafbase": grafbase_url},
                                       args.rounds, args.duration, only))
    finally:
        platform.stop()
    Path("router-compare.json").write_text(json.dumps(rows, indent=1))
    return 1 if any(row["errors"] for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
