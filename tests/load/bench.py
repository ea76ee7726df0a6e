"""`make bench`: boots the platform with demo data on free ports and measures the hot paths.

Prints requests/s, p50 and p99 per scenario, and writes them to bench-results.json. Timings are
reported, never asserted. Env: BENCH_DURATION (seconds per scenario, default 15), BENCH_CONCURRENCY
(default 16), BENCH_ROUTER_URL / BENCH_CATALOG_URL (+ BENCH_TOKEN) to measure a running platform instead.

Scenarios: anonymous browse through the router (its short-TTL response cache answers), the same signed in
(router cache bypassed: planning, both subgraphs, their Redis-backed response caches), the same without
`seller` (one subgraph), straight to catalog, and a cache-busting filter (real execution everywhere).
"""
from __future__ import annotations

import itertools
import os
import sys
import tempfile
from pathlib import Path

import orjson

from tests.load.httpload import LoadResult, graphql_body, run_load

BROWSE_WITH_SELLER = """query Browse { products(first: 20) { edges { node { name brand category { name }
  seller { email } variants { sku price { amount currency } } } } } }"""
BROWSE_UNCACHED = """query BrowseFiltered($max: String) { products(first: 20, filter: {priceMax: $max}) {
  edges { node { name brand category { name } seller { email } variants { sku price { amount currency } } } } } }"""
BROWSE_WITHOUT_SELLER = """query BrowseDirect { products(first: 20) { edges { node { name brand category { name }
  variants { sku price { amount currency } } } } } }"""


async def browse_scenarios(router_url: str, catalog_url: str, concurrency: int, duration: float,
                           token: str | None) -> list[LoadResult]:
    with_seller, without_seller = graphql_body(BROWSE_WITH_SELLER), graphql_body(BROWSE_WITHOUT_SELLER)

    unique = itertools.count()

    def uncached(_: int) -> tuple[bytes, dict[str, str]]:
        # A distinct priceMax per request (all above every demo price, so pages stay full) misses the page
        # cache and both response caches' catalog side: this measures real execution, not Redis.
        return graphql_body(BROWSE_UNCACHED, {"max": f"{5000 + next(unique) / 100:.2f}"}), {}

    scenarios = [("browse products(first:20) via router, anonymous", router_url, with_seller, {})]
    if token:
        signed_in = {"authorization": f"Bearer {token}"}
        scenarios += [
            # A token bypasses the router's response cache: planning, fan-out and both subgraphs run.
            ("browse via router, signed in", router_url, with_seller, signed_in),
            # Router overhead = the next two: one-subgraph query through the router vs straight to catalog.
            ("browse via router, signed in, no seller", router_url, without_seller, signed_in),
            ("browse direct to catalog, signed in, no seller", catalog_url, without_seller, signed_in),
        ]
    else:
        scenarios.append(("browse direct to catalog, no seller", catalog_url, without_seller, {}))
    results = [await run_load(name, url, lambda _, b=body, h=headers: (b, h), concurrency=concurrency,
                              duration=duration) for name, url, body, headers in scenarios]
    results.append(await run_load("browse, cache-busting filter, via router", router_url, uncached,
                                  concurrency=concurrency, duration=duration))
    return results


def _customer_token(data_dir: Path) -> str:
    """A CUSTOMER access token signed with the booted platform's key (a signed-in shopper)."""
    from kernel.auth import TokenIssuer
    from kernel.settings import Settings
    keys = data_dir / "keys"
    issuer = TokenIssuer.from_settings(Settings(jwt_private_key_file=keys / "jwt-private.pem",
                                                access_token_ttl_seconds=3600))
    return issuer.issue(1, ["CUSTOMER"])


def main() -> int:
    duration = float(os.environ.get("BENCH_DURATION", 15))
    concurrency = int(os.environ.get("BENCH_CONCURRENCY", 16))
    router_url, catalog_url = os.environ.get("BENCH_ROUTER_URL"), os.environ.get("BENCH_CATALOG_URL")
    platform = None
    token = os.environ.get("BENCH_TOKEN")
    if not (router_url and catalog_url):
        from nexuscart.launcher import Platform, PlatformConfig
        data_dir = Path(tempfile.mkdtemp(prefix="nexuscart-bench-"))
        print(f"booting the platform with demo data in {data_dir} ...", flush=True)
        # One load generator is one client IP: the per-IP router limit would measure itself, not the platform.
        platform = Platform(PlatformConfig.ephemeral(data_dir, seed=True, quiet=True,
                                                     extra_env={"ROUTER_RATE_LIMIT_PER_MINUTE": "0"})).start()
        router_url, catalog_url = platform.router_url, platform.subgraph_url("catalog")
        token = _customer_token(data_dir)
    try:
        import uvloop
        results = uvloop.run(browse_scenarios(router_url, catalog_url, concurrency, duration, token))
    finally:
        if platform is not None:
            platform.stop()
    print(f"\nNexusCart benchmark ({duration:.0f}s per scenario, {os.cpu_count()} CPUs)")
    for result in results:
        print(result.row())
        if result.sample_error:
            print(f"    first error: {result.sample_error}")
    Path("bench-results.json").write_bytes(orjson.dumps([r.as_dict() for r in results], option=orjson.OPT_INDENT_2))
    return 1 if any(r.errors for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
